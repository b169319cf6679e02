"""``python -m lsbench reproduce pets``: data, features, planning, training, recording.

The experiment is described in :mod:`lsbench.experiments.pets`; every setting of its runs is a
field of :class:`~lsbench.experiments.pets.config.PetsConfig`, which the flags override.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from lsbench import provenance as prov
from lsbench.experiments import compare, records, workdir
from lsbench.experiments.pets.config import RUN_SPECS, PetsConfig, RunSpec, from_args, run_settings
from lsbench.experiments.pets.flags import UsageError, add_arguments, default_out, default_workdir, validate
from lsbench.experiments.pets.model import array_digest, load_cached_features, npz_bytes, pets_net
from lsbench.experiments.pets.protocol import METRICS, aggregate, augment_batch, format_table, heldout_split
from lsbench.experiments.settings import to_dict
from lsbench.published import PETS_ANCHORS

__all__ = ["UsageError", "Experiment", "add_arguments", "run", "default_out", "default_workdir"]

RESULTS_SCHEMA = "lsbench/pets-results/1"
RUN_SCHEMA = "lsbench/pets-run/1"
FEATURES_VERSION = 1

#: Paths whose changes do not make the tree dirty for --record: generated outputs and work directories.
GIT_IGNORE = (*prov.OUTPUT_PATHS, "lsbench-runs/")


def run(args) -> int:
    """Entry point of ``python -m lsbench reproduce pets``."""
    try:
        cfg = from_args(args, validate(args))
    except (UsageError, ValueError) as exc:
        print(f"lsbench reproduce pets: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out(cfg.profile, cfg.data.per_class_limit)
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

    def run_path(self, name: str, seed: int) -> Path:
        return self.runs_dir / f"{name}-seed{seed}.json"

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
            print(format_table(aggregates, order=list(RUN_SPECS), baseline=self.cfg.protocol.baseline))
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
        kw = dict(image_size=a.image_size, per_class_limit=a.per_class_limit, download=a.download,
                  cache_dir=self.cache_dir, progress=self.progress)
        self.trainval = load_pets(self.data_root, "trainval", **kw)
        self.test = load_pets(self.data_root, "test", **kw)
        for split, name in ((self.trainval, "trainval"), (self.test, "test")):
            if len(split) == 0:
                raise UsageError(f"the {name} split is empty")
        self.num_classes = len(self.trainval.names)
        self.split_ids = {
            name: {"images_sha256": array_digest(s.images), "labels_sha256": array_digest(s.labels),
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
        """Pooled Lite0 features of both splits: from ``<cache>/features/`` where present, else
        extracted (both missing splits in one pass, one compilation) and saved atomically."""
        from lsbench.models.efficientnet_lite import (efficientnet_lite_weights_path, extract_features,
                                                      load_efficientnet_lite)

        t0 = time.perf_counter()
        self.weights_path = efficientnet_lite_weights_path("lite0")
        self.weights_sha = prov.sha256_file(self.weights_path)
        self.features, self.feature_keys, paths, missing = {}, {}, {}, []
        for name, split in (("trainval", self.trainval), ("test", self.test)):
            key = self.feature_keys[name] = self._feature_key(name)
            path = paths[name] = self._cache_root() / "features" / f"pets-lite0-{name}-{key}.npz"
            feats = load_cached_features(path, split.labels, self.log)
            if feats is None:
                missing.append(name)
            else:
                self.features[name] = feats
                self.log(f"features ({name}): cached {path}")
        if missing:
            splits = {"trainval": self.trainval, "test": self.test}
            model = load_efficientnet_lite("lite0", self.weights_path)
            images = np.concatenate([splits[n].images for n in missing]) if len(missing) > 1 \
                else splits[missing[0]].images
            feats = np.asarray(extract_features(images, model, batch_size=self.cfg.feature_batch_size,
                                                pooling=self.cfg.pooling,
                                                progress=self.progress), np.float32)
            del images, model
            if not np.isfinite(feats).all():
                raise ValueError("EfficientNet-Lite0 produced non-finite features")
            start = 0
            for n in missing:
                k = len(splits[n])
                self.features[n] = feats[start:start + k]
                start += k
                prov.atomic_write_bytes(paths[n], npz_bytes(features=self.features[n],
                                                             labels=np.asarray(splits[n].labels)))
                self.log(f"features ({n}): saved {paths[n]}")
        self.times["features"] += time.perf_counter() - t0

    def _feature_key(self, name: str) -> str:
        import jax

        return prov.digest({
            "version": FEATURES_VERSION, "model": self.cfg.backbone, "weights_sha256": self.weights_sha,
            "pooling": self.cfg.pooling, "preprocess": "(x - 127) / 128, eval-mode BN", "split": name,
            "images": self.split_ids[name], "backend": jax.default_backend(),
        }, length=24)

    def prepare_fastai(self) -> None:
        a = self.args
        if a.weights is not None:
            self.weights_path = Path(a.weights)
            self.weights_sha = prov.sha256_file(self.weights_path)
            from lsbench.models import load_resnet34

            self.body = load_resnet34(self.weights_path)
        else:
            self.weights_path, self.weights_sha, self.body = None, None, None

    def common_config(self) -> dict:
        """What every run of this invocation shares: the whole configuration (``settings``, hashed
        into ``common_key`` and so into every run key) and the identity of the data and weights."""
        a, cfg = self.args, self.cfg
        if self.profile == "frozen":
            backbone = {"name": cfg.backbone, "weights": cfg.backbone_weights,
                        "weights_sha256": self.weights_sha, "pooling": cfg.pooling, "frozen": True,
                        "bn_mode": "eval (running statistics), features cached",
                        "augmentation": None}
            data_ids = {n: {**self.split_ids[n], "features_key": self.feature_keys[n]}
                        for n in ("trainval", "test")}
        else:
            aug = cfg.augment
            backbone = {"name": cfg.backbone, "weights_sha256": self.weights_sha,
                        "from_scratch": bool(a.from_scratch), "pooling": cfg.pooling,
                        "frozen": not a.from_scratch,
                        "bn_mode": "train (batch statistics); BN affine trained (fastai train_bn)"
                        if not a.from_scratch else "train",
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
            "protocol": {"heldout_fraction": cfg.protocol.heldout_fraction,
                         "heldout": "stratified by class, seeded by the run seed; used only to fit T",
                         "train_on": "trainval minus held-out", "report_on": "test",
                         "ece_bins": cfg.protocol.ece_bins, "baseline": cfg.protocol.baseline},
            "train": cfg.train.to_dict(),
            "settings": run_settings(cfg),
        }

    def run_config(self, spec: RunSpec, seed: int) -> dict:
        return {"common_key": self.common_key, "name": spec.name, "seed": int(seed),
                "loss": spec.loss(self.cfg.epsilon), "code_sha256": self.code_sha256}

    # -- planning
    def plan(self) -> tuple[list[tuple[RunSpec, int, str]], list[str]]:
        """``([(spec, seed, run_key) to train], [mismatch descriptions])`` without touching any file."""
        todo, problems = [], []
        for seed in self.seeds:
            for name in self.recipes:
                spec = RUN_SPECS[name]
                key = prov.digest(self.run_config(spec, seed))
                path = self.run_path(name, seed)
                if path.exists():
                    rec = records.read_record(path)
                    if rec is not None and rec.get("run_key") == key and not self.args.force:
                        self.skipped.append([name, seed])
                        continue
                    if not self.args.force:
                        why = "unreadable" if rec is None else records.describe_mismatch(
                            rec, self.common, self.run_config(spec, seed)["loss"])
                        if why != "different run_key":
                            problems.append(f"{path.name}: {why}")
                            continue
                        # same configuration and loss, so other code made it: retrain, never reuse
                        self.log(f"{path.name}: recorded by other code (code_sha256 "
                                 f"{str(rec.get('code_sha256'))[:12]} != {self.code_sha256[:12]}); retraining")
                todo.append((spec, seed, key))
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
        return {f"features/{n}": array_digest(f) for n, f in sorted(self.features.items())}

    # -- training
    def execute(self, plan) -> None:
        from tqdm.auto import tqdm

        if not plan:
            return
        self.log(f"{len(plan)} run(s) to train, {len(self.skipped)} already recorded "
                 f"({self.profile} profile, records in {self.runs_dir})")
        splits = {}
        with tqdm(total=len(plan), desc="runs", unit="run", disable=not self.progress) as bar:
            for spec, seed, key in plan:
                bar.set_postfix_str(f"{spec.name} seed {seed}")
                if seed not in splits:
                    splits[seed] = heldout_split(self.trainval.labels, seed, self.cfg.protocol.heldout_fraction)
                t0 = time.perf_counter()
                record = self.train_one(spec, seed, key, splits[seed])
                self.times["training"] += time.perf_counter() - t0
                self.save_record(record)
                self.trained.append([spec.name, seed])
                self.write_results("running")
                bar.update(1)
                err = record["test"]["error"] * 100
                bar.write(f"  {spec.name:<20} seed {seed}: test error {err:.2f} %, "
                          f"NLL {record['test']['nll']:.3f}, ECE {record['test']['ece'] * 100:.2f} % "
                          f"(after TS {record['test']['ece_ts'] * 100:.2f} %, T = {record['temperature']:.2f}) "
                          f"[{record['wall_time_s']['train']:.1f} s]", file=sys.stderr)

    def _inputs(self, which: str):
        if self.profile == "frozen":
            return self.features["trainval" if which != "test" else "test"]
        return (self.trainval if which != "test" else self.test).images

    def build_model(self, seed: int):
        from flax import nnx

        from lsbench.models import FastaiHead

        rngs = nnx.Rngs(seed)
        if self.profile == "frozen":
            width = self.features["trainval"].shape[1]
            return FastaiHead(width, self.num_classes, **self._head_kwargs(), rngs=rngs), nnx.Param
        from lsbench.models import ResNet34

        body = nnx.clone(self.body) if self.body is not None else ResNet34(rngs=nnx.Rngs(seed + 10_000))
        head = FastaiHead(2 * ResNet34.num_features, self.num_classes, **self._head_kwargs(), rngs=rngs)
        model = pets_net(body, head, self.cfg.pooling)
        if self.args.from_scratch:
            return model, nnx.Param
        return model, nnx.All(nnx.Param, nnx.Any(nnx.PathContains("head"), nnx.PathContains("bn")))

    def _head_kwargs(self) -> dict:
        h = self.cfg.head
        return {"hidden": h.hidden, "ps": h.ps, "linear_bias": h.linear_bias}

    def train_one(self, spec: RunSpec, seed: int, key: str, split) -> dict:
        from lsbench import metrics
        from lsbench.train import fit, make_loss, predict

        train_idx, held_idx = split
        x_tv = self._inputs("trainval")
        y_tv = np.asarray(self.trainval.labels)
        x_test, y_test = self._inputs("test"), np.asarray(self.test.labels)
        loss = make_loss(spec.recipe, spec.loss_params(self.cfg.epsilon), self.num_classes)
        model, trainable = self.build_model(seed)
        transform = None
        if self.profile == "fastai":
            size, aug = self.cfg.data.image_size, self.cfg.augment
            transform = lambda xb, rng: augment_batch(xb, rng, size, aug)  # noqa: E731
        t0 = time.perf_counter()
        trained, log = fit(model, {"image": x_tv[train_idx], "label": y_tv[train_idx]}, loss, self.cfg.train, seed=seed,
                           trainable=trainable, batch_transform=transform, progress=self.progress,
                           desc=f"{spec.name} seed {seed}")
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        bs, bins = self.cfg.eval_batch_size, self.cfg.protocol.ece_bins
        z_held = predict(trained, x_tv[held_idx], batch_size=bs)
        z_test = predict(trained, x_test, batch_size=bs)
        temperature = metrics.fit_temperature(z_held, y_tv[held_idx])
        test = metrics.evaluate(z_test, y_test, temperature=temperature, n_bins=bins)
        held = metrics.evaluate(z_held, y_tv[held_idx], n_bins=bins, with_bins=False)
        t_eval = time.perf_counter() - t0
        rc = self.run_config(spec, seed)
        return {
            "schema": RUN_SCHEMA,
            "name": spec.name,
            "seed": int(seed),
            "run_key": key,
            "common_key": self.common_key,
            "code_sha256": self.code_sha256,
            "loss": rc["loss"],
            "description": spec.description,
            "config": self.common,
            "split": {"n_train": int(len(train_idx)), "n_heldout": int(len(held_idx)), "n_test": int(len(y_test)),
                      "heldout_digest": prov.digest(held_idx.tolist())},
            "train_log": log,
            "temperature": temperature,
            "heldout": held,
            "test": test,
            "wall_time_s": {"train": round(t_train, 3), "eval": round(t_eval, 3)},
            "finished_utc": prov.utc_now(),
            "provenance": records.provenance_brief(self.provenance),
        }

    # -- recording
    def save_record(self, record: dict) -> None:
        prov.assert_no_absolute_paths(record, "a pets run record")
        records.save_record(self.run_path(record["name"], record["seed"]), record, self.log)

    def recorded_runs(self) -> tuple[list[dict], list[dict]]:
        runs, ignored = [], []
        if not self.runs_dir.is_dir():
            return runs, ignored
        for path in sorted(self.runs_dir.glob("*-seed*.json")):
            rec = records.read_record(path)
            if rec is None or rec.get("schema") != RUN_SCHEMA:
                ignored.append({"file": path.name, "reason": "unreadable or not a pets run record"})
            elif rec.get("common_key") != self.common_key:
                ignored.append({"file": path.name, "reason": "different configuration (common_key "
                                f"{rec.get('common_key')} != {self.common_key})"})
            elif rec.get("code_sha256") != self.code_sha256:
                ignored.append({"file": path.name, "reason": "made by other code (code_sha256 "
                                f"{rec.get('code_sha256')} != {self.code_sha256})"})
            else:
                runs.append(rec)
        order = {n: i for i, n in enumerate(RUN_SPECS)}
        runs.sort(key=lambda r: (order.get(r["name"], len(order)), r["name"], r["seed"]))
        return runs, ignored

    def write_results(self, status: str) -> dict:
        """Rebuild ``<work>/<stem>.json`` from the work directory's matching records (atomically)."""
        self.results = self.results_document(status)
        prov.assert_no_absolute_paths(self.results, "the pets results file")
        prov.atomic_write_json(self.out, self.results)
        return self.results["aggregates"]

    def results_document(self, status: str) -> dict:
        runs, ignored = self.recorded_runs()
        aggregates, ignored_names = aggregate(runs, self.cfg.protocol.baseline)
        ignored += ignored_names
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
                            "params": aggregates.get(n, {}).get("params"),
                            "description": RUN_SPECS[n].description if n in RUN_SPECS else None}
                        for n in names},
            "seeds": sorted({r["seed"] for r in runs}),
            "runs": [{k: v for k, v in r.items() if k != "config"} for r in runs],
            "aggregates": aggregates,
            "ignored_runs": ignored,
            "provenance": self.provenance,
            "invocation": {
                "started_utc": self.started,
                "finished_utc": prov.utc_now() if status != "running" else None,
                "status": status,
                "requested": {"recipes": list(self.recipes), "seeds": list(self.seeds),
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
        doc = compare.compare_runs(
            self.results["runs"], ref_runs, METRICS, fresh_config=self.common,
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
            path = self.run_path(rec["name"], rec["seed"])
            names.add(path.name)
            prov.atomic_write_bytes(ref_runs / path.name, path.read_bytes())
        for old in ref_runs.glob("*-seed*.json"):
            if old.name not in names:
                old.unlink()
        doc = {**self.results, "runs_dir": os.path.relpath(ref_runs, self.reference.parent)}
        prov.atomic_write_json(self.reference, doc)
