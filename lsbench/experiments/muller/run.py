"""``python -m lsbench reproduce muller``: plan, train what is missing, record, aggregate, report.

The experiment is described in :mod:`lsbench.experiments.muller`; every setting is a field of
:class:`~lsbench.experiments.muller.config.MullerConfig`, which the flags override.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lsbench import provenance as prov
from lsbench.experiments import compare, records, workdir
from lsbench.experiments.muller import analysis as ana
from lsbench.experiments.muller import training
from lsbench.experiments.muller.aggregate import (aggregate_calibration, aggregate_distillation,
                                                  aggregate_representations, caveats, figure_data, student_name)
from lsbench.experiments.muller.config import (DATASETS, DEFAULT_DATASETS, DISTILLATION_DATASETS, SPECS,
                                               MullerConfig, Spec, run_settings)
from lsbench.experiments.muller.data import (DataCtx, DatasetSkipped, class_names, load_mnist_like,
                                             load_pets_features)
from lsbench.experiments.muller.flags import UsageError, add_arguments, from_args
from lsbench.experiments.muller.terminal import format_report
from lsbench.experiments.pets import flags as pets_flags
from lsbench.experiments.settings import to_dict
from lsbench.published import MULLER_PUBLISHED

__all__ = ["UsageError", "Job", "Experiment", "add_arguments", "run"]

RESULTS_SCHEMA = "lsbench/muller-results/1"
RUN_SCHEMA = "lsbench/muller-run/1"
#: Paths whose changes do not make the tree dirty for --record: generated outputs and work directories.
GIT_IGNORE = (*prov.OUTPUT_PATHS, "lsbench-runs/")


def run(args) -> int:
    """Entry point of ``python -m lsbench reproduce muller``."""
    try:
        exp = Experiment(args, from_args(args))
        if args.allow_dirty and not args.record:
            raise UsageError("--allow-dirty only applies with --record")
        if args.record:
            prov.require_clean_tree(args.allow_dirty, ignore=GIT_IGNORE, what="the Müller reference results")
        dirs = [exp.out_dir, exp.cache_root] + ([exp.reference_dir, exp.reference_fig_dir] if args.record else [])
        try:
            prov.check_writable(*dirs)
        except OSError as exc:
            raise UsageError(f"{exc.strerror}; pick another --workdir / --cache-dir") from exc
        # SIGTERM (e.g. `kill`) ends the run like Ctrl-C: the results files are marked "interrupted".
        with workdir.WorkdirLock(exp.out_dir, wait=args.wait, log=exp.log), workdir.sigterm_as_interrupt(), \
                workdir.disk_full_guard(exp.out_dir):
            return exp.main()
    except (UsageError, prov.DirtyTreeError, workdir.LockHeld) as exc:
        print(f"lsbench reproduce muller: {exc}", file=sys.stderr)
        return 2
    except workdir.DiskFull as exc:
        print(f"lsbench reproduce muller: {exc.strerror}", file=sys.stderr)
        return 2

# --------------------------------------------------------------------------- jobs


@dataclasses.dataclass
class Job:
    kind: str  # "classifier" | "student"
    dataset: str
    name: str
    seed: int
    path: Path
    key: str = ""
    spec: Spec | None = None
    arch: Mapping[str, Any] | None = None  # classifier: the architecture it trains
    teacher: str | None = None  # student: teacher spec name, or None (student-none)
    temperature: float | None = None

    @property
    def ident(self) -> tuple:
        return (self.dataset, self.name, self.seed)



# --------------------------------------------------------------------------- the experiment


class Experiment:
    """One invocation: load data, plan, train what is missing, record, print.

    ``cfg`` (:class:`~.config.MullerConfig`) holds every setting; ``args`` only the invocation's
    paths and switches (output/figure/cache dirs, ``--force``, progress).
    """

    def __init__(self, args, cfg: MullerConfig):
        self.args, self.cfg = args, cfg
        self.quick = cfg.quick
        self.experiments = list(cfg.experiments)
        self.seeds = list(cfg.seeds)
        self.temperatures = list(cfg.temperatures)
        self.cal_specs = cfg.calibration_specs
        self.teachers = cfg.teachers
        self.datasets_for: dict[str, list[str]] = {}
        self.notes: list[str] = []
        for e in self.experiments:
            if cfg.datasets is None:
                ds = list(DEFAULT_DATASETS[e])
            else:
                ds = list(cfg.datasets)
            if e == "distillation":
                dropped = [d for d in ds if d not in DISTILLATION_DATASETS]
                if dropped:
                    self.notes.append(f"distillation: {', '.join(dropped)} not run (Müller's teacher/student "
                                      f"MLPs are defined for {', '.join(DISTILLATION_DATASETS)} only)")
                ds = [d for d in ds if d in DISTILLATION_DATASETS]
            self.datasets_for[e] = ds
        if not any(self.datasets_for.values()):
            raise UsageError("no data set to run: " + "; ".join(self.notes))
        # fresh runs, results and figures go to the work directory; the reference only with --record
        self.out_dir = Path(args.workdir) if args.workdir else workdir.default_workdir("muller")
        self.fig_dir = self.out_dir / "figures"
        self.reference_dir = Path(args.out_dir) if args.out_dir else prov.REPO_ROOT / "paper" / "results"
        self.reference_fig_dir = (Path(args.figures_dir) if args.figures_dir
                                  else self.reference_dir.parent / "figures")
        self.code_sha256 = workdir.code_sha256("muller")
        if args.cache_dir:
            self.cache_root = Path(args.cache_dir).expanduser()
        else:
            from lsbench.data.pets import default_cache_dir

            self.cache_root = default_cache_dir()
        self.runs_root = self.out_dir / "runs" / "muller"
        self.progress = not args.no_progress
        self.t_start = time.perf_counter()
        self.started = prov.utc_now()
        self.times = {"data": 0.0, "classifiers": 0.0, "students": 0.0}
        self.trained: list[list] = []
        self.skipped: list[list] = []
        self.records: dict[Path, dict] = {}
        self.logits: dict[tuple, np.ndarray] = {}
        self.data: dict[str, DataCtx] = {}
        self.skipped_datasets: dict[str, str] = {}
        self.figure_files: list[str] = []

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # -- main
    def main(self) -> int:
        for n in self.notes:
            self.log(n)
        self.load_data()
        if not self.data:
            self.log("lsbench reproduce muller: no data set could be loaded: "
                     + "; ".join(f"{d}: {r}" for d, r in self.skipped_datasets.items()))
            return 2
        jobs, problems = self.plan()
        if problems:
            self.log(records.mismatch_message("muller", self.runs_root, problems, "--out-dir"))
            return 2
        self.provenance = prov.collect(
            files={label: p for d in self.data.values() for label, p in d.files.items()},
            files_root=self.cache_root, git_ignore=GIT_IGNORE, seeds=list(self.seeds),
            cache_dir=prov.portable_path(self.cache_root), code_sha256=self.code_sha256,
            code_files=workdir.code_files("muller"), cpu_identity=workdir.cpu_identity())
        status = "complete"
        with workdir.save_on_interrupt(lambda: self.write_all("interrupted"), self.log, self.trained,
                                       self.runs_root):
            self.execute(jobs)
        results = self.write_all(status)
        if "representations" in results:
            self.figure_files = self.draw_figure(results["representations"])
            if self.figure_files:
                results["representations"]["figure_files"] = [os.path.relpath(f, self.out_dir)
                                                              for f in self.figure_files]
                prov.atomic_write_json(self.out_dir / "muller-representations.json", results["representations"])
        print(format_report(results, self.temperatures, self.cfg.beta))
        comparison = self.compare()
        if self.args.record:
            self.record_reference(results)
        total = time.perf_counter() - self.t_start
        print(f"\n{len(self.trained)} run(s) trained, {len(self.skipped)} already recorded; results in "
              f"{self.out_dir} (muller-{{{','.join(self.experiments)}}}.json); wall time {total:.1f} s "
              f"(data {self.times['data']:.1f}, classifiers {self.times['classifiers']:.1f}, "
              f"students {self.times['students']:.1f}); 1-min load average at the end "
              f"{prov.cpu_info()['load_avg_1m']}")
        if self.args.check and not compare.agrees(comparison):
            self.log(f"lsbench reproduce muller --check: the fresh runs do not agree with the reference "
                     f"({comparison['verdict']})")
            return 1
        return 0

    def compare(self) -> dict:
        """This invocation's runs against the reference's records of the same files (printed and saved
        as ``<workdir>/comparison.json`` / ``comparison.txt``; rule: :mod:`lsbench.experiments.compare`)."""
        def as_run(rec: Mapping) -> dict:
            return {"name": f"{rec['dataset']}/{rec['name']}", "seed": rec["seed"], "loss": rec.get("loss"),
                    "test": rec.get("test"), "config": rec.get("config")}

        fresh, reference = [], []
        for path in sorted({j.path for e in self.experiments for j in self.jobs_for(e)}):
            rec = self.records.get(path)
            if rec is None:
                continue
            fresh.append(as_run(rec))
            ref = records.read_record(self.reference_dir / path.relative_to(self.out_dir))
            if ref is not None:
                reference.append(as_run(ref))
        metrics = ("error", "nll", "brier", "ece", "nll_ts", "brier_ts", "ece_ts", "temperature")
        ref_results = next((r for r in (records.read_record(self.reference_dir / f"muller-{e}.json")
                                        for e in self.experiments) if r), None) or {}
        doc = compare.compare_runs(fresh, reference, metrics, fresh_provenance=self.provenance,
                                   reference_provenance=compare.reference_provenance(ref_results))
        doc["reference_dir"] = prov.portable_path(self.reference_dir)
        return compare.publish(doc, self.out_dir)

    # -- data
    def load_data(self) -> None:
        t0 = time.perf_counter()
        needed = list(dict.fromkeys(d for e in self.experiments for d in self.datasets_for[e]))
        for d in needed:
            try:
                if d == "pets":
                    ctx = load_pets_features(self.cache_root, [self.out_dir, pets_flags.default_workdir("frozen"),
                                                               pets_flags.default_out("frozen").parent],
                                             self.cfg.setups[d])
                else:
                    ctx = load_mnist_like(d, self.cfg.setups[d])
            except DatasetSkipped as exc:
                self.skipped_datasets[d] = prov.portable_text(str(exc), self.cache_root)
                self.log(f"{d}: skipped -- {exc}")
                continue
            setup = ctx.setup.to_dict()
            ctx.common = {"experiment": "muller", "dataset": d, "quick": self.quick, "data": ctx.identity,
                          "split": setup["split"], "arch": setup["arch"], "teacher": setup["teacher"],
                          "student": setup["student"],
                          "train": setup["train"], "ece_bins": self.cfg.ece_bins,
                          "projection_classes": list(self.cfg.projection_classes),
                          "settings": run_settings(self.cfg)}
            ctx.common_key = prov.digest(ctx.common)
            self.data[d] = ctx
        self.times["data"] += time.perf_counter() - t0

    # -- planning
    def classifier_specs(self, experiment: str, dataset: str) -> list[str]:
        if experiment == "calibration":
            return list(self.cal_specs)
        if experiment == "distillation":
            return list(self.teachers)
        return list(self.cfg.representation_specs)

    def classifier_job(self, d: str, name: str, seed: int, role: str = "classifier") -> Job:
        """The run of spec ``name``; ``role="teacher"``: as a distillation teacher, which is its own run
        (``teacher-<name>``, the setup's teacher architecture) where that differs from the classifiers'."""
        ctx = self.data[d]
        spec = SPECS[name]
        own_teacher = role == "teacher" and to_dict(ctx.setup.teacher_arch) != to_dict(ctx.setup.arch)
        run_name = f"teacher-{name}" if own_teacher else name
        key = prov.digest({"common_key": ctx.common_key, "kind": "classifier", "name": run_name,
                           "loss": spec.loss(), "seed": int(seed), "code_sha256": self.code_sha256})
        return Job("classifier", d, run_name, int(seed), self.runs_root / d / f"{run_name}-seed{seed}.json", key,
                   spec=spec, arch=ctx.setup.teacher_arch if own_teacher else ctx.setup.arch)

    def student_job(self, d: str, teacher: str | None, t: float | None, seed: int) -> Job:
        ctx = self.data[d]
        name = student_name(teacher, t)
        teacher_key = self.classifier_job(d, teacher, seed, "teacher").key if teacher else None
        key = prov.digest({"common_key": ctx.common_key, "kind": "student", "name": name, "teacher": teacher,
                           "teacher_run_key": teacher_key, "temperature": t,
                           "beta": self.cfg.beta if teacher else 0.0, "seed": int(seed),
                           "code_sha256": self.code_sha256})
        return Job("student", d, name, int(seed), self.runs_root / d / f"{name}-seed{seed}.json", key,
                   teacher=teacher, temperature=t)

    def jobs_for(self, experiment: str) -> list[Job]:
        jobs = []
        for d in self.datasets_for[experiment]:
            if d not in self.data:
                continue
            role = "teacher" if experiment == "distillation" else "classifier"
            for seed in self.seeds:
                jobs += [self.classifier_job(d, n, seed, role) for n in self.classifier_specs(experiment, d)]
                if experiment == "distillation":
                    jobs.append(self.student_job(d, None, None, seed))
                    jobs += [self.student_job(d, n, t, seed) for n in self.teachers for t in self.temperatures]
        return jobs

    def plan(self) -> tuple[list[Job], list[str]]:
        todo: dict[Path, Job] = {}
        problems, seen = [], set()
        for e in self.experiments:
            for job in self.jobs_for(e):
                if job.path in seen:
                    continue
                seen.add(job.path)
                rec = records.read_record(job.path) if job.path.exists() else None
                if rec is not None and rec.get("run_key") == job.key:
                    self.records[job.path] = rec
                    if not self.args.force:
                        self.skipped.append([job.dataset, job.name, job.seed])
                        continue
                elif job.path.exists() and not self.args.force:
                    why = "unreadable" if rec is None else records.describe_mismatch(rec, self.data[job.dataset].common)
                    if why != "different run_key":
                        problems.append(f"{job.dataset}/{job.path.name}: {why}")
                        continue
                    # same configuration, so other code made it: retrain, never reuse
                    self.log(f"{job.dataset}/{job.path.name}: recorded by other code; retraining")
                todo[job.path] = job
        order = {n: i for i, n in enumerate(SPECS)}
        jobs = sorted(todo.values(), key=lambda j: (j.kind != "classifier", DATASETS.index(j.dataset), j.seed,
                                                    order.get(j.name, len(order)), j.name))
        return jobs, problems

    # -- training
    def execute(self, jobs: list[Job]) -> None:
        from tqdm.auto import tqdm

        if not jobs:
            return
        self.log(f"{len(jobs)} run(s) to train, {len(self.skipped)} already recorded (records in {self.runs_root})")
        with tqdm(total=len(jobs), desc="muller runs", unit="run", disable=not self.progress) as bar:
            for job, rec in self.train_seeds(jobs):
                bar.set_postfix_str(f"{job.dataset} {job.name} seed {job.seed}")
                if job.kind == "classifier":
                    line = (f"ECE {rec['test']['ece'] * 100:.2f} % (after TS {rec['test']['ece_ts'] * 100:.2f} %, "
                            f"T = {rec['temperature']:.2f}), tightness {rec['tightness']['test']['ratio']:.3f}")
                else:
                    line = f"held-out error {rec['heldout']['error'] * 100:.2f} %"
                self.trained.append([job.dataset, job.name, job.seed])
                self.write_all("running")
                bar.update(1)
                bar.write(f"  {job.dataset:<6} {job.name:<34} seed {job.seed}: test error "
                          f"{rec['test']['error'] * 100:.2f} %, {line} [{rec['wall_time_s']['train']:.1f} s]",
                          file=sys.stderr)

    def train_seeds(self, jobs: list[Job]):
        """Train ``jobs`` (planned order) and yield ``(job, record)`` as each finishes.

        The one per-seed loop of the experiment: jobs that differ only in their seed (same data set,
        kind and name; their splits have the same sizes, so the shapes agree) are trained together,
        all seeds in one vmapped program (:mod:`.training`: :func:`lsbench.train.fit_seeds`); each is
        then evaluated and recorded on its own. A job alone in its group is trained by :func:`lsbench.train.fit`.
        """
        groups: dict[tuple, list[Job]] = {}
        for job in jobs:
            groups.setdefault((job.kind, job.dataset, job.name), []).append(job)
        for group in groups.values():
            fitted = training.fit_group(self, group) if len(group) > 1 else [None]
            for job, done in zip(group, fitted):
                yield job, (self.train_classifier(job, done) if job.kind == "classifier"
                            else self.train_student(job, done))

    def _logits_path(self, job: Job) -> Path:
        return self.cache_root / "muller" / "logits" / f"{job.dataset}-{job.name}-seed{job.seed}-{job.key}.npz"

    def train_classifier(self, job: Job, done: tuple | None = None) -> dict:
        """Train (unless :func:`.training.fit_group` did: ``done``), evaluate and record a classifier."""
        from lsbench import metrics
        from lsbench.experiments.muller.models import last_layer, penultimate_and_logits

        t_all = time.perf_counter()
        ctx = self.data[job.dataset]
        split = ctx.split(job.seed)
        spec = job.spec
        trained, log, t_train = training.fit_one(self, job, done)
        t0 = time.perf_counter()
        h, z = penultimate_and_logits(trained, ctx.x)
        y = ctx.y
        temperature = metrics.fit_temperature(z[split.held], y[split.held])
        test = metrics.evaluate(z[split.test], y[split.test], temperature=temperature, n_bins=self.cfg.ece_bins)
        held = metrics.evaluate(z[split.held], y[split.held], temperature=temperature, n_bins=self.cfg.ece_bins,
                                with_bins=False)
        w, _ = last_layer(trained)
        sub = ana.template_subspace_basis(w.T)
        tight = {"train": ana.cluster_tightness(h[split.train], y[split.train]),
                 "test": ana.cluster_tightness(h[split.test], y[split.test]),
                 "train_templates": ana.cluster_tightness(h[split.train] @ sub, y[split.train]),
                 "test_templates": ana.cluster_tightness(h[split.test] @ sub, y[split.test]),
                 "train_geometry": ana.template_geometry(h[split.train], y[split.train], w.T),
                 "test_geometry": ana.template_geometry(h[split.test], y[split.test], w.T)}
        classes = [c for c in self.cfg.projection_classes if c < ctx.num_classes]
        templates = w[:, classes].T
        basis = ana.template_plane_basis(templates)
        proj = {"classes": classes, "basis": "orthonormal basis of the plane through the templates "
                                             "(lsbench.experiments.muller.analysis.template_plane_basis)"}
        for part, idx in (("train", split.train), ("test", split.test)):
            sel = np.concatenate([idx[y[idx] == c][:self.cfg.projection_train_per_class if part == "train" else None]
                                  for c in classes])
            coords, tcoords = ana.project_onto_plane(h[sel], templates, basis)
            proj[part] = {"coords": np.round(coords, 4).tolist(), "labels": y[sel].astype(int).tolist()}
        proj["templates"] = np.round(tcoords, 4).tolist()
        proj["template_norms"] = [float(v) for v in np.linalg.norm(templates, axis=1)]
        logits_file = self._logits_path(job)
        buf = io.BytesIO()
        np.savez(buf, logits=z)
        prov.atomic_write_bytes(logits_file, buf.getvalue())
        self.logits[job.ident] = z
        t_eval = time.perf_counter() - t0
        rec = {
            "schema": RUN_SCHEMA, "kind": "classifier", "dataset": job.dataset, "name": job.name,
            "seed": job.seed, "run_key": job.key, "common_key": ctx.common_key, "loss": spec.loss(),
            "description": spec.description, "arch": to_dict(job.arch), "config": ctx.common,
            "split": {**split.sizes(), "train_digest": prov.digest(split.train.tolist()),
                      "held_digest": prov.digest(split.held.tolist()),
                      "test_digest": prov.digest(split.test.tolist())},
            "train_log": log, "temperature": temperature, "heldout": held, "test": test, "tightness": tight,
            "projection": proj, "logits_sha256": prov.sha256_file(logits_file),
            "wall_time_s": {"train": round(t_train, 3), "eval": round(t_eval, 3)},
            "finished_utc": prov.utc_now(), "provenance": records.provenance_brief(self.provenance),
        }
        self.save_record(job, rec)
        self.times["classifiers"] += time.perf_counter() - t_all
        return rec

    def teacher_logits(self, d: str, teacher: str, seed: int) -> np.ndarray:
        tjob = self.classifier_job(d, teacher, seed, "teacher")
        if tjob.ident in self.logits:
            return self.logits[tjob.ident]
        rec = self.records.get(tjob.path) or (records.read_record(tjob.path) if tjob.path.exists() else None)
        path = self._logits_path(tjob)
        if rec is not None and rec.get("run_key") == tjob.key and path.is_file() \
                and prov.sha256_file(path) == rec.get("logits_sha256"):
            with np.load(path, allow_pickle=False) as z:
                self.logits[tjob.ident] = np.asarray(z["logits"], np.float32)
            return self.logits[tjob.ident]
        self.log(f"  teacher logits of {d}/{teacher} seed {seed} are not cached ({path}); retraining the teacher")
        self.train_classifier(tjob)
        self.trained.append([d, teacher, seed])
        return self.logits[tjob.ident]

    def train_student(self, job: Job, done: tuple | None = None) -> dict:
        """Train (unless :func:`.training.fit_group` did: ``done``), evaluate and record a student."""
        from lsbench import metrics
        from lsbench.experiments.muller.models import penultimate_and_logits

        t_all = time.perf_counter()
        ctx = self.data[job.dataset]
        split = ctx.split(job.seed)
        teacher_key = None if job.teacher is None else \
            self.classifier_job(job.dataset, job.teacher, job.seed, "teacher").key
        trained, log, t_train = training.fit_one(self, job, done)
        t0 = time.perf_counter()
        _, z = penultimate_and_logits(trained, ctx.x[np.concatenate([split.held, split.test])])
        zh, zt = z[:len(split.held)], z[len(split.held):]
        y = ctx.y
        temperature = metrics.fit_temperature(zh, y[split.held])
        test = metrics.evaluate(zt, y[split.test], temperature=temperature, n_bins=self.cfg.ece_bins)
        held = metrics.evaluate(zh, y[split.held], temperature=temperature, n_bins=self.cfg.ece_bins, with_bins=False)
        rec = {
            "schema": RUN_SCHEMA, "kind": "student", "dataset": job.dataset, "name": job.name, "seed": job.seed,
            "run_key": job.key, "common_key": ctx.common_key,
            "loss": {"form": "beta * T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - beta) * CE(s, y)",
                     "kl": "RECIPES['distillation']", "ce": "RECIPES['uniform'] (epsilon = 0)",
                     "beta": self.cfg.beta if job.teacher else 0.0, "temperature": job.temperature},
            "teacher": job.teacher, "teacher_run_key": teacher_key, "kd_temperature": job.temperature,
            "beta": self.cfg.beta if job.teacher else 0.0, "config": ctx.common,
            "split": {**split.sizes(), "test_digest": prov.digest(split.test.tolist())},
            "train_log": log, "temperature": temperature, "heldout": held, "test": test,
            "wall_time_s": {"train": round(t_train, 3), "eval": round(time.perf_counter() - t0, 3)},
            "finished_utc": prov.utc_now(), "provenance": records.provenance_brief(self.provenance),
        }
        self.save_record(job, rec)
        self.times["students"] += time.perf_counter() - t_all
        return rec

    # -- recording
    def save_record(self, job: Job, record: dict) -> None:
        record = {**record, "code_sha256": self.code_sha256}
        prov.assert_no_absolute_paths(record, "a Müller run record")
        records.save_record(job.path, record, self.log)
        self.records[job.path] = record

    def _recorded(self, job: Job) -> dict | None:
        rec = self.records.get(job.path)
        return rec if rec is not None and rec.get("run_key") == job.key else None

    def results_for(self, experiment: str, status: str) -> dict:
        datasets: dict[str, Any] = {}
        runs_index = []
        for d in self.datasets_for[experiment]:
            if d not in self.data:
                datasets[d] = {"status": "skipped", "reason": self.skipped_datasets.get(d), "verdict": None}
                continue
            ctx = self.data[d]
            jobs = [j for j in self.jobs_for(experiment) if j.dataset == d]
            recs = {j.path: self._recorded(j) for j in jobs}
            missing = sum(r is None for r in recs.values())
            by_name: dict[str, list] = {}
            students: dict[tuple, list] = {}
            for j in jobs:
                r = recs[j.path]
                if r is None:
                    continue
                runs_index.append({"dataset": d, "name": j.name, "seed": j.seed, "run_key": j.key,
                                   "file": os.path.relpath(j.path, self.out_dir)})
                if j.kind == "classifier":
                    by_name.setdefault(j.spec.name, []).append(r)
                else:
                    students.setdefault((j.teacher, j.temperature), []).append(r)
            if experiment == "calibration":
                agg = aggregate_calibration(by_name, self.classifier_specs(experiment, d))
            elif experiment == "distillation":
                agg = aggregate_distillation({n: by_name.get(n, []) for n in self.teachers}, students,
                                             self.temperatures)
            else:
                agg = aggregate_representations({n: by_name.get(n, []) for n in self.cfg.representation_specs})
                agg["figure"] = figure_data(by_name, min(self.seeds), self.cfg.projection_classes,
                                            lambda classes, d=d: class_names(d, classes))
            datasets[d] = {"status": "ok" if not missing else "incomplete",
                           "reason": None if not missing else f"{missing} run(s) not recorded yet",
                           "config": ctx.common, "common_key": ctx.common_key, **agg}
        per = {d: v["verdict"] for d, v in datasets.items() if v.get("status") == "ok"}
        skipped = {d: why for d, why in self.skipped_datasets.items() if d in self.datasets_for.get(experiment, [])}
        return {
            "schema": RESULTS_SCHEMA, "experiment": experiment, "published": MULLER_PUBLISHED[experiment],
            "source": MULLER_PUBLISHED["source"], "caveats": caveats(self.cfg, experiment, skipped),
            "verdict_rule": ana.VERDICT_RULE,
            "verdict": {"verdict": ana.combine_datasets(per) if per else ana.INCONCLUSIVE, "per_dataset": per},
            "datasets": datasets, "seeds": list(self.seeds), "quick": self.quick,
            "temperatures": [float(t) for t in self.temperatures] if experiment == "distillation" else None,
            "beta": self.cfg.beta if experiment == "distillation" else None,
            "experiment_config": to_dict(self.cfg),
            "runs": runs_index, "provenance": self.provenance,
            "invocation": {
                "started_utc": self.started, "finished_utc": prov.utc_now() if status != "running" else None,
                "status": status,
                "requested": {"experiments": self.experiments, "datasets": self.datasets_for, "seeds": self.seeds,
                              "temperatures": self.temperatures, "force": bool(self.args.force),
                              "quick": self.quick},
                "trained": list(self.trained), "skipped": list(self.skipped),
                "wall_time_s": {**{k: round(v, 3) for k, v in self.times.items()},
                                "total": round(time.perf_counter() - self.t_start, 3)},
            },
            "runs_dir": os.path.relpath(self.runs_root, self.out_dir),
        }

    def write_all(self, status: str) -> dict:
        results = {}
        for e in self.experiments:
            results[e] = self.results_for(e, status)
            results[e]["code_sha256"] = self.code_sha256
            prov.assert_no_absolute_paths(results[e], f"muller-{e}.json")
            prov.atomic_write_json(self.out_dir / f"muller-{e}.json", results[e])
        return results

    def record_reference(self, results: Mapping[str, dict]) -> None:
        """``--record``: results files, this invocation's run records and the figures to the reference."""
        keep = set()
        for e, res in results.items():
            for run in res["runs"]:
                src = self.out_dir / run["file"]
                keep.add(run["file"])
                prov.atomic_write_bytes(self.reference_dir / run["file"], src.read_bytes())
        for old in (self.reference_dir / "runs" / "muller").glob("*/*-seed*.json"):
            if old.relative_to(self.reference_dir).as_posix() not in keep:
                old.unlink()
        for f in self.figure_files:
            prov.atomic_write_bytes(self.reference_fig_dir / Path(f).name, Path(f).read_bytes())
        for e, res in results.items():
            doc = dict(res)
            if doc.get("figure_files"):
                doc["figure_files"] = [os.path.relpath(self.reference_fig_dir / Path(f).name, self.reference_dir)
                                       for f in self.figure_files]
            prov.atomic_write_json(self.reference_dir / f"muller-{e}.json", doc)
        self.log(f"recorded as the reference: {self.reference_dir} (figures in {self.reference_fig_dir})")

    def draw_figure(self, res: Mapping) -> list[str]:
        data = {d: v["figure"] for d, v in res["datasets"].items() if v.get("status") in ("ok", "incomplete")
                and v.get("figure", {}).get("panels")}
        if not data:
            return []
        from lsbench.report.muller import render_figure

        paths = render_figure(data, self.fig_dir / "muller_representations")
        self.log(f"figure: {', '.join(paths)}")
        return paths

    # -- report
