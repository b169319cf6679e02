"""``python -m lsbench reproduce pets``: data, features, planning, training, recording.

The experiment is described in :mod:`lsbench.experiments.pets`; every setting of its runs is a
field of :class:`~lsbench.experiments.pets.config.PetsConfig`, which the flags override.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

from lsbench import provenance as prov
from lsbench.experiments import compare, records, workdir
from lsbench.experiments.pets.config import PROVED_IDENTICAL, RUN_SPECS, SPLIT_TEXT, SPLITS, PetsConfig, RunSpec, from_args, run_settings
from lsbench.experiments.pets.flags import UsageError, add_arguments, default_out, default_workdir, validate
from lsbench.data.features import array_sha256
from lsbench.experiments.pets.model import load_backbone, npz_bytes, pets_net
from lsbench.experiments.pets.protocol import (METRICS, STATISTICS_METHOD, aggregate, augment_batch, evaluate_run, mirror_batch,
                                               format_table, identical_runs, paired_statistics, random_split)
from lsbench.experiments.settings import to_dict
from lsbench.published import PETS_ANCHORS

__all__ = ["UsageError", "Experiment", "add_arguments", "run", "default_out", "default_workdir"]

RESULTS_SCHEMA = "lsbench/pets-results/2"
RUN_SCHEMA = "lsbench/pets-run/2"

#: Paths whose changes do not make the tree dirty for --record: generated outputs and work directories.
GIT_IGNORE = (*prov.OUTPUT_PATHS, "lsbench-runs/")


def run(args) -> int:
    """Entry point of ``python -m lsbench reproduce pets``."""
    try:
        cfg = from_args(args, validate(args))
    except (UsageError, ValueError) as exc:
        print(f"lsbench reproduce pets: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out(cfg.profile, cfg.data.per_class_limit, cfg.backbone)
    work = Path(args.workdir) if args.workdir else workdir.default_workdir(out.stem)
    return Experiment(args, cfg, out, work).main()


# --------------------------------------------------------------------------- the experiment


class Experiment:
    """One invocation: resolve inputs, plan, train what is missing, record, print.

    ``cfg`` (:class:`~.config.PetsConfig`) holds every setting of the runs; ``args`` only the
    invocation's paths and switches (data/cache dirs, weights, ``--force``, progress). Runs are
    trained into ``work`` (``<work>/runs/``, results ``<work>/<out stem>.json``); ``out`` is the
    reference results file, read for the comparison and written only with ``--record``.
    """

    def __init__(self, args, cfg: PetsConfig, out: Path, work: Path):
        self.args, self.cfg, self.reference = args, cfg, out
        self.work = work
        self.out = self.work / out.name
        self.profile, self.recipes, self.seeds = cfg.profile, list(cfg.recipes), list(cfg.seeds)
        self.splits = list(cfg.splits)
        self.runs_dir = self.work / "runs"
        self.code_sha256 = workdir.code_sha256("pets")
        self.progress = not args.no_progress
        self.cache_dir = Path(args.cache_dir).expanduser() if args.cache_dir else None
        self.times = {"data": 0.0, "features": 0.0, "training": 0.0}
        self.t_start = time.perf_counter()
        self.started = prov.utc_now()
        self.trained: list[list] = []
        self.skipped: list[list] = []

    # -- helpers
    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def _cache_root(self) -> Path:
        from lsbench.data.pets import default_cache_dir

        return self.cache_dir if self.cache_dir is not None else default_cache_dir()

    def run_path(self, name: str, split: str, seed: int) -> Path:
        """``<runs>/<name>-<split>-seed<k>.json``; its per-example outputs beside it as ``.npz``."""
        return self.runs_dir / f"{name}-{split}-seed{seed}.json"

    # -- main
    def main(self) -> int:
        """Check, lock, train what is missing, compare with the reference, record if asked."""
        try:
            self.git = self.check_recordable()
            self.check_locations()
            with workdir.WorkdirLock(self.work, wait=self.args.wait, log=self.log), \
                    workdir.sigterm_as_interrupt():
                return self.locked_main()
        except (prov.DirtyTreeError, workdir.LockHeld, UsageError) as exc:
            self.log(f"lsbench reproduce pets: {exc}")
            return 2
        except workdir.DiskFull as exc:
            self.log(f"lsbench reproduce pets: {exc.strerror}")
            return 2

    def check_recordable(self) -> dict | None:
        """With ``--record``: the clean tree's git state (or :class:`~lsbench.provenance.DirtyTreeError`)."""
        if not self.args.record:
            if self.args.allow_dirty:
                raise UsageError("--allow-dirty only applies with --record")
            return None
        return prov.require_clean_tree(self.args.allow_dirty, ignore=GIT_IGNORE,
                                       what=f"the reference {prov.portable_path(self.reference)}")

    def check_locations(self) -> None:
        """Work directory, cache and (with ``--record``) the reference's directory must be writable."""
        dirs = [self.work, self._cache_root()] + ([self.reference.parent] if self.args.record else [])
        try:
            prov.check_writable(*dirs)
        except OSError as exc:
            raise UsageError(f"{exc.strerror}; pick another --workdir / --cache-dir") from exc

    def locked_main(self) -> int:
        from lsbench.data.pets import PetsDataError

        try:
            self.load_data()
            self.prepare_inputs()
        except (PetsDataError, UsageError, FileNotFoundError, ValueError) as exc:
            self.log(f"lsbench reproduce pets: {exc}")
            return 2
        plan, problems = self.plan()
        if problems:
            self.log(records.mismatch_message("pets", self.runs_dir, problems, "--workdir"))
            return 2
        self.provenance = self.collect_provenance()
        with workdir.save_on_interrupt(lambda: self.write_results("interrupted"), self.log, self.trained,
                                       self.runs_dir):
            with workdir.disk_full_guard(self.work):
                self.execute(plan)
        with workdir.disk_full_guard(self.work):
            aggregates = self.write_results("complete")
            for split, agg in aggregates.items():
                print(f"\n{split} split ({SPLIT_TEXT[split]}):")
                print(format_table(agg, order=list(RUN_SPECS), baseline=self.cfg.protocol.baseline,
                                   identities=self.results["identities"].get(split),
                                   statistics=self.results["statistics"]["by_split"].get(split)))
            comparison = self.compare()
            if self.args.record:
                self.record_reference()
        total = time.perf_counter() - self.t_start
        print(f"\n{len(self.trained)} run(s) trained, {len(self.skipped)} already in the work directory; "
              f"results: {self.out}  (wall time {total:.1f} s: data {self.times['data']:.1f}, "
              f"features {self.times['features']:.1f}, training {self.times['training']:.1f})")
        if self.args.record:
            print(f"recorded as the reference: {self.reference}")
        if self.args.check and not compare.agrees(comparison):
            self.log("lsbench reproduce pets --check: the fresh runs do not agree with the reference "
                     f"({comparison['verdict']})")
            return 1
        return 0

    # -- data
    def load_data(self) -> None:
        from lsbench.data.pets import load_pets, resolve_pets_dir

        t0 = time.perf_counter()
        a = self.args
        self.data_root = resolve_pets_dir(a.data_dir, download=a.download, cache_dir=self.cache_dir,
                                          progress=self.progress)
        kw = dict(image_size=self.cfg.data.image_size, per_class_limit=self.cfg.data.per_class_limit, download=a.download,
                  cache_dir=self.cache_dir, progress=self.progress)
        self.trainval = load_pets(self.data_root, "trainval", **kw)
        self.test = load_pets(self.data_root, "test", **kw)
        for split, name in ((self.trainval, "trainval"), (self.test, "test")):
            if len(split) == 0:
                raise UsageError(f"the {name} split is empty")
        self.num_classes = len(self.trainval.names)
        self.split_ids = {
            name: {"images_sha256": array_sha256(s.images), "labels_sha256": array_sha256(s.labels),
                   "n": len(s), "shape": list(s.images.shape)}
            for name, s in (("trainval", self.trainval), ("test", self.test))
        }
        self.times["data"] += time.perf_counter() - t0

    def prepare_inputs(self) -> None:
        if self.profile == "frozen":
            self.prepare_frozen()
        else:
            self.prepare_fastai()
        self.common = self.common_config()
        self.common_key = prov.digest(self.common)

    def prepare_frozen(self) -> None:
        """Pooled backbone features of both splits and, for flip augmentation (``augment.p_flip`` > 0),
        of their mirror images: from the feature cache where present, else extracted and saved
        (:func:`lsbench.data.features.cached_features_with_mirrors`)."""
        from lsbench.data.features import cached_features_with_mirrors
        from lsbench.models.efficientnet_lite import efficientnet_lite_weights_path

        t0 = time.perf_counter()
        name, flip = self.cfg.backbone, self.cfg.augment.p_flip > 0
        self.weights_path = efficientnet_lite_weights_path(name)
        self.features, self.mirrored, self.feature_keys = {}, {}, {}
        for split_name, split in (("trainval", self.trainval), ("test", self.test)):
            # the fastai split trains on test images too: both splits get their mirrors
            res = cached_features_with_mirrors(
                split.images, np.asarray(split.labels), split=split_name, variant=name, pooling=self.cfg.pooling,
                mirrors=flip, cache_dir=self._cache_root(), images_sha256=self.split_ids[split_name]["images_sha256"],
                batch_size=self.cfg.feature_batch_size, progress=self.progress, log=self.log)
            self.weights_sha = res["weights_sha256"]
            self.features[split_name] = res["features"]
            if res["mirrored"] is not None:
                self.mirrored[split_name] = res["mirrored"]
            self.feature_keys[split_name] = dict(res["keys"])
        self.times["features"] += time.perf_counter() - t0

    def prepare_fastai(self) -> None:
        """The fastai profile fine-tunes the backbone's BatchNorm layers on augmented images."""
        self.backbone = load_backbone(self.cfg.backbone)
        self.weights_path = self.backbone.weights_path
        self.weights_sha = prov.sha256_file(self.weights_path)

    def common_config(self) -> dict:
        """What every run of this invocation shares: the whole configuration (``settings``, hashed
        into ``common_key`` and so into every run key) and the identity of the data and weights."""
        a, cfg = self.args, self.cfg
        if self.profile == "frozen":
            backbone = {"name": f"efficientnet-{cfg.backbone}", "weights_sha256": self.weights_sha,
                        "pooling": cfg.pooling, "frozen": True,
                        "bn_mode": "eval (running statistics), features cached",
                        "augmentation": {"flip": cfg.augment.p_flip,
                                         "how": "per example and epoch, the cached features of the mirrored "
                                                "image (reported on the unflipped images)"}}
            data_ids = {n: {**self.split_ids[n], "features_keys": self.feature_keys[n]}
                        for n in ("trainval", "test")}
        else:
            aug = cfg.augment
            backbone = {"name": f"efficientnet-{cfg.backbone}", "weights_sha256": self.weights_sha,
                        "pooling": cfg.pooling, "frozen": True,
                        "bn_mode": "train (batch statistics); BN affine trained (fastai train_bn)",
                        "augmentation": {"random_resized_crop": {"min_scale": aug.min_scale,
                                                                 "ratio": list(aug.ratio)},
                                         "flip": aug.p_flip,
                                         "lighting": {"max": aug.max_lighting, "p": aug.p_lighting}}}
            data_ids = dict(self.split_ids)
        return {
            "experiment": "pets",
            "profile": self.profile,
            "backbone": backbone,
            "head": to_dict(cfg.head),
            "data": {"dataset": cfg.data.dataset,
                     "image_size": cfg.data.image_size, "per_class_limit": cfg.data.per_class_limit,
                     "num_classes": self.num_classes,
                     "n_trainval": len(self.trainval), "n_test": len(self.test), **data_ids},
            "protocol": {"splits": SPLIT_TEXT, "valid_fraction": cfg.protocol.valid_fraction,
                         "temperature": cfg.protocol.temperature,
                         "ece_bins": cfg.protocol.ece_bins, "baseline": cfg.protocol.baseline},
            "train": cfg.train.to_dict(),
            "settings": run_settings(cfg),
        }

    def run_config(self, spec: RunSpec, split: str, seed: int) -> dict:
        return {"common_key": self.common_key, "name": spec.name, "split": split, "seed": int(seed),
                "loss": spec.loss(self.cfg.epsilon), "code_sha256": self.code_sha256}

    # -- planning
    def plan(self) -> tuple[list[tuple[RunSpec, str, int, str]], list[str]]:
        """``([(spec, split, seed, run_key) to train], [mismatch descriptions])`` without touching any file."""
        todo, problems = [], []
        for split, seed, name in itertools.product(self.splits, self.seeds, self.recipes):
            spec = RUN_SPECS[name]
            key = prov.digest(self.run_config(spec, split, seed))
            path = self.run_path(name, split, seed)
            if path.exists():
                rec = records.read_record(path)
                if rec is not None and rec.get("run_key") == key and not self.args.force:
                    self.skipped.append([name, split, seed])
                    continue
                if not self.args.force:
                    why = "unreadable" if rec is None else records.describe_mismatch(
                        rec, self.common, spec.loss(self.cfg.epsilon))
                    if why != "different run_key":
                        problems.append(f"{path.name}: {why}")
                        continue
                    # same configuration and loss, so other code made it: retrain, never reuse
                    self.log(f"{path.name}: recorded by other code (code_sha256 "
                             f"{str(rec.get('code_sha256'))[:12]} != {self.code_sha256[:12]}); retraining")
            todo.append((spec, split, seed, key))
        return todo, problems

    def collect_provenance(self) -> dict:
        files = {"annotations/trainval.txt": self.data_root / "annotations" / "trainval.txt",
                 "annotations/test.txt": self.data_root / "annotations" / "test.txt"}
        if self.weights_path is not None:
            files["weights"] = self.weights_path
        return prov.collect(files=files, files_root=self.data_root, git_ignore=GIT_IGNORE,
                            seeds=list(self.seeds), data_dir=prov.portable_path(self.data_root),
                            cache_dir=prov.portable_path(self._cache_root()), code_sha256=self.code_sha256,
                            code_files=workdir.code_files("pets"), cpu_identity=workdir.cpu_identity(),
                            inputs_sha256=self.inputs_sha256())

    def inputs_sha256(self) -> dict:
        """Content digests of the arrays the heads train on (cached features, not the .npz bytes, which
        carry zip timestamps): equal keys do not imply equal features across machines."""
        if self.profile != "frozen":
            return {}
        return {f"{kind}/{n}": array_sha256(f) for kind, arrays in (("features", self.features),
                                                                     ("mirrored", self.mirrored))
                for n, f in sorted(arrays.items())}

    # -- training
    def execute(self, plan) -> None:
        """Train the plan one (split, recipe) group at a time, all of a group's seeds in one program."""
        from tqdm.auto import tqdm

        if not plan:
            return
        self.log(f"{len(plan)} run(s) to train, {len(self.skipped)} already recorded "
                 f"({self.profile} profile, {self.cfg.backbone}, records in {self.runs_dir})")
        groups: dict[tuple[str, str], list] = {}
        for spec, split, seed, key in plan:
            groups.setdefault((split, spec.name), []).append((seed, key))
        with tqdm(total=len(plan), desc="runs", unit="run", disable=not self.progress) as bar:
            for (split, name), todo in groups.items():
                bar.set_postfix_str(f"{name} ({split} split, {len(todo)} seeds)")
                for record in self.train_group(RUN_SPECS[name], split, todo):
                    self.trained.append([name, split, record["seed"]])
                    bar.update(1)
                    t = record["test"]
                    bar.write(f"  {name:<20} {split:<8} seed {record['seed']}: error {t['error'] * 100:.2f} %, "
                              f"NLL {t['nll']:.3f}, ECE {t['ece'] * 100:.2f} % (after TS {t['ece_ts'] * 100:.2f} %, "
                              f"T = {t['temperature']:.2f})", file=sys.stderr)
                self.write_results("running")

    def split_indices(self, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(train, report)`` indices into :meth:`pool` of ``split`` for ``seed``."""
        if split == "official":
            n_tv = len(self.trainval)
            return np.arange(n_tv), np.arange(n_tv, n_tv + len(self.test))
        return random_split(len(self.trainval) + len(self.test), seed, self.cfg.protocol.valid_fraction)

    def pool(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (features or images) and labels of trainval followed by test."""
        if self.profile == "frozen":
            x = (self.features["trainval"], self.features["test"])
        else:
            x = (self.trainval.images, self.test.images)
        return np.concatenate(x), np.concatenate([np.asarray(self.trainval.labels), np.asarray(self.test.labels)])

    def build_model(self, seed: int):
        """``(untrained model of seed, trainable filter)``: the head (frozen profile) or body + head
        with only the head and the body's BatchNorm trainable (fastai ``train_bn``)."""
        from flax import nnx

        from lsbench.models import FastaiHead
        from lsbench.models.finetune import fastai_trainable

        rngs = nnx.Rngs(seed)
        if self.profile == "frozen":
            width = self.features["trainval"].shape[1]
            return FastaiHead(width, self.num_classes, **self._head_kwargs(), rngs=rngs), nnx.Param
        body = nnx.clone(self.backbone.model)
        width = body.features(self.backbone.preprocess(self.test.images[:1]), self.cfg.pooling).shape[-1]
        head = FastaiHead(width, self.num_classes, **self._head_kwargs(), rngs=rngs)
        model = pets_net(body, head, self.cfg.pooling, self.backbone.preprocess)
        return model, fastai_trainable(model)

    def _head_kwargs(self) -> dict:
        h = self.cfg.head
        return {"hidden": h.hidden, "ps": h.ps, "linear_bias": h.linear_bias}

    def train_group(self, spec: RunSpec, split: str, todo: list[tuple[int, str]]) -> list[dict]:
        """Train ``spec`` for every ``(seed, run_key)`` of ``todo`` together; save and return the records."""
        from lsbench.train import fit_seeds, make_loss, predict

        seeds = [seed for seed, _ in todo]
        x, y = self.pool()
        indices = {seed: self.split_indices(split, seed) for seed in seeds}
        loss = make_loss(spec.recipe, spec.loss_params(self.cfg.epsilon), self.num_classes)
        trainable = self.build_model(seeds[0])[1]
        aug = self.cfg.augment
        if self.profile == "fastai":
            data = [{"image": x[indices[s][0]], "label": y[indices[s][0]]} for s in seeds]
            size = self.cfg.data.image_size
            transform = lambda xb, rng: augment_batch(xb, rng, size, aug)  # noqa: E731
        else:  # rows of the pool, turned into (possibly mirrored) features batch by batch
            data = [{"image": indices[s][0], "label": y[indices[s][0]]} for s in seeds]
            mirrored = (np.concatenate([self.mirrored["trainval"], self.mirrored["test"]])
                        if aug.p_flip > 0 else None)
            transform = lambda rows, rng: mirror_batch(rows, rng, x, mirrored, aug.p_flip)  # noqa: E731
        t0 = time.perf_counter()
        trained = fit_seeds(lambda s: self.build_model(s)[0], data[0] if split == "official" else data, loss,
                            self.cfg.train, seeds, trainable=trainable, batch_transform=transform,
                            progress=self.progress, desc=f"{spec.name} ({split}, {len(seeds)} seeds)")
        t_train = time.perf_counter() - t0
        self.times["training"] += t_train
        out = []
        for (seed, key), (model, log) in zip(todo, trained):
            t0 = time.perf_counter()
            train_idx, report_idx = indices[seed]
            z = predict(model, x[report_idx], batch_size=self.cfg.eval_batch_size)
            test, temps, outputs = evaluate_run(z, y[report_idx], seed, self.cfg.protocol.ece_bins)
            if split == "fastai":
                outputs["index"] = report_idx.astype(np.uint16)
            path = self.run_path(spec.name, split, seed)
            prov.atomic_write_bytes(path.with_suffix(".npz"), npz_bytes(compressed=True, **outputs))
            record = {
                "schema": RUN_SCHEMA, "name": spec.name, "split_name": split, "seed": int(seed), "run_key": key,
                "common_key": self.common_key, "code_sha256": self.code_sha256,
                "loss": spec.loss(self.cfg.epsilon), "description": spec.description, "config": self.common,
                "split": {"n_train": int(len(train_idx)), "n_report": int(len(report_idx)),
                          "report_digest": prov.digest(report_idx.tolist())},
                "train_log": log, "temperature": test["temperature"], "temperatures_2fold": temps,
                "test": test, "outputs": path.with_suffix(".npz").name, "outputs_sha256": array_sha256(
                    *(outputs[k] for k in sorted(outputs))),
                "wall_time_s": {"train_all_seeds": round(t_train, 3), "seeds_trained_together": len(seeds),
                                "eval": round(time.perf_counter() - t0, 3)},
                "finished_utc": prov.utc_now(), "provenance": records.provenance_brief(self.provenance),
            }
            self.save_record(record)
            out.append(record)
        return out

    # -- recording
    def save_record(self, record: dict) -> None:
        prov.assert_no_absolute_paths(record, "a pets run record")
        records.save_record(self.run_path(record["name"], record["split_name"], record["seed"]), record, self.log)

    def recorded_runs(self) -> tuple[list[dict], list[dict]]:
        runs, ignored = [], []
        if not self.runs_dir.is_dir():
            return runs, ignored
        for path in sorted(self.runs_dir.glob("*-seed*.json")):
            rec = records.read_record(path)
            if rec is None or rec.get("schema") != RUN_SCHEMA or not path.with_suffix(".npz").is_file():
                ignored.append({"file": path.name, "reason": "unreadable, not a pets run record or its outputs missing"})
            elif rec.get("common_key") != self.common_key:
                ignored.append({"file": path.name, "reason": "different configuration (common_key "
                                f"{rec.get('common_key')} != {self.common_key})"})
            elif rec.get("code_sha256") != self.code_sha256:
                ignored.append({"file": path.name, "reason": "made by other code (code_sha256 "
                                f"{rec.get('code_sha256')} != {self.code_sha256})"})
            else:
                runs.append(rec)
        order = {n: i for i, n in enumerate(RUN_SPECS)}
        splits = {n: i for i, n in enumerate(SPLITS)}
        runs.sort(key=lambda r: (splits.get(r["split_name"], len(splits)), order.get(r["name"], len(order)),
                                 r["name"], r["seed"]))
        return runs, ignored

    def write_results(self, status: str) -> dict:
        """Rebuild ``<work>/<stem>.json`` from the work directory's matching records (atomically)."""
        self.results = self.results_document(status)
        prov.assert_no_absolute_paths(self.results, "the pets results file")
        prov.atomic_write_json(self.out, self.results)
        return self.results["aggregates"]

    def results_document(self, status: str) -> dict:
        runs, ignored = self.recorded_runs()
        baseline = self.cfg.protocol.baseline
        aggregates, statistics = {}, {}
        for split in dict.fromkeys(r["split_name"] for r in runs):
            of_split = [r for r in runs if r["split_name"] == split]
            aggregates[split], ignored_names = aggregate(of_split, baseline)
            ignored += [{**i, "split": split} for i in ignored_names]
            if status == "complete":
                statistics[split] = paired_statistics(of_split, self.runs_dir, baseline)
        if self.out.exists():
            old = records.read_record(self.out)
            if old is not None and old.get("common_key") not in (None, self.common_key):
                records.keep_replaced(self.out, self.log, "previous results file (another configuration)",
                                      into=self.runs_dir / "replaced")
        names = list(dict.fromkeys(r["name"] for r in runs))
        results = {
            "schema": RESULTS_SCHEMA,
            "experiment": "pets",
            "profile": self.profile,
            "claim": PETS_ANCHORS,
            "common_key": self.common_key,
            "code_sha256": self.code_sha256,
            "config": self.common,
            "experiment_config": to_dict(self.cfg),
            "recipes": {n: {"recipe": RUN_SPECS[n].recipe if n in RUN_SPECS else None,
                            "params": RUN_SPECS[n].loss_params(self.cfg.epsilon) if n in RUN_SPECS else None,
                            "description": RUN_SPECS[n].description if n in RUN_SPECS else None}
                        for n in names},
            "seeds": sorted({r["seed"] for r in runs}),
            "splits": list(aggregates),
            "runs": [{k: v for k, v in r.items() if k != "config"} for r in runs],
            "aggregates": aggregates,
            "statistics": {"method": STATISTICS_METHOD, "by_split": statistics},
            "identities": {split: identical_runs([r for r in runs if r["split_name"] == split], PROVED_IDENTICAL)
                           for split in aggregates},
            "ignored_runs": ignored,
            "provenance": self.provenance,
            "invocation": {
                "started_utc": self.started,
                "finished_utc": prov.utc_now() if status != "running" else None,
                "status": status,
                "requested": {"recipes": list(self.recipes), "seeds": list(self.seeds), "splits": self.splits,
                              "force": bool(self.args.force)},
                "trained": list(self.trained),
                "skipped": list(self.skipped),
                "wall_time_s": {**{k: round(v, 3) for k, v in self.times.items()},
                                "total": round(time.perf_counter() - self.t_start, 3)},
            },
            "runs_dir": os.path.relpath(self.runs_dir, self.out.parent),
        }
        return results

    # -- the reference
    def reference_runs_dir(self) -> Path:
        return self.reference.parent / "runs" / self.reference.stem

    def compare(self) -> dict:
        """Compare the work directory's runs with the reference; print and save the comparison."""
        ref = records.read_record(self.reference) if self.reference.exists() else None
        ref_runs = (ref or {}).get("runs") or []
        def by_split(runs):  # compare keys runs by (name, seed): make the split part of the name
            return [{**r, "name": f"{r.get('split_name')}/{r['name']}"} for r in runs]

        doc = compare.compare_runs(
            by_split(self.results["runs"]), by_split(ref_runs), METRICS, fresh_config=self.common,
            reference_config=(ref or {}).get("config"), fresh_provenance=self.provenance,
            reference_provenance=compare.reference_provenance(ref))
        doc["reference_file"] = prov.portable_path(self.reference)
        if ref is None:
            doc["verdict"] = f"no reference to compare with ({prov.portable_path(self.reference)} not found or unreadable)"
        return compare.publish(doc, self.work, "verdict: " + doc["verdict"] if ref is None else None)

    def record_reference(self) -> None:
        """``--record``: the results file to ``--out`` and exactly this invocation's records to its runs/."""
        ref_runs = self.reference_runs_dir()
        names = set()
        for rec in self.results["runs"]:
            path = self.run_path(rec["name"], rec["split_name"], rec["seed"])
            for f in (path, path.with_suffix(".npz")):
                names.add(f.name)
                prov.atomic_write_bytes(ref_runs / f.name, f.read_bytes())
        for old in [*ref_runs.glob("*-seed*.json"), *ref_runs.glob("*-seed*.npz")]:
            if old.name not in names:
                old.unlink()
        doc = {**self.results, "runs_dir": os.path.relpath(ref_runs, self.reference.parent)}
        prov.atomic_write_json(self.reference, doc)
