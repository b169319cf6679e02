"""``python -m lsbench reproduce pets``: data, features, planning, training, recording.

The experiment is described in :mod:`lsbench.experiments.pets`; every setting of its runs is a
field of :class:`~lsbench.experiments.pets.config.PetsConfig`, which the flags override.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from lsbench import provenance as prov
from lsbench.experiments import records
from lsbench.experiments.pets.config import (PROFILES, RUN_SPECS, PetsConfig, RunSpec, from_args, get_config,
                                             run_settings)
from lsbench.experiments.pets.model import array_digest, load_cached_features, npz_bytes, pets_net
from lsbench.experiments.pets.protocol import aggregate, augment_batch, format_table, heldout_split
from lsbench.experiments.settings import to_dict
from lsbench.published import PETS_ANCHORS

__all__ = ["UsageError", "Experiment", "add_arguments", "run", "default_out"]

RESULTS_SCHEMA = "lsbench/pets-results/1"
RUN_SCHEMA = "lsbench/pets-run/1"
FEATURES_VERSION = 1

_REPO_ROOT = Path(__file__).resolve().parents[3]


def default_out(profile: str, per_class_limit: int | None = None) -> Path:
    """``paper/results/pets-<profile>.json`` in the lsbench checkout (else under the cwd);
    ``pets-<profile>-limit<N>.json`` for a ``--per-class-limit N`` quick run, so quick runs
    never collide with the full one."""
    base = _REPO_ROOT if (_REPO_ROOT / "paper").is_dir() else Path.cwd()
    suffix = f"-limit{per_class_limit}" if per_class_limit else ""
    return base / "paper" / "results" / f"pets-{profile}{suffix}.json"


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``reproduce pets``; each overrides one field of :func:`~.config.get_config`
    (:data:`~.config.FLAGS`), whose values are the defaults shown."""
    from lsbench.experiments import pets as package

    cfg = get_config()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (package.__doc__ or "").split("\n\n**Recording.**")[0]
    g = parser.add_argument_group("what to run")
    g.add_argument("--profile", choices=PROFILES, default=None,
                   help="frozen: cached EfficientNet-Lite0 features + fastai head (default on CPU); "
                        "fastai: ResNet-34 + augmentation, needs --weights (default on an accelerator)")
    g.add_argument("--recipes", nargs="+", metavar="NAME", default=list(cfg.recipes),
                   help=f"runs to do, from {', '.join(RUN_SPECS)} (default: all)")
    g.add_argument("--seeds", nargs="+", type=int, default=list(cfg.seeds), metavar="K",
                   help=f"seeds (default: {' '.join(map(str, cfg.seeds))})")
    g.add_argument("--epsilon", type=float, default=cfg.epsilon,
                   help="ε of the fixed-ε recipes (uniform, off_target, fastai, tf_onehot, "
                        f"speech_transformer; default {cfg.epsilon:g})")
    t = cfg.train
    g = parser.add_argument_group("training (fastai v1 fit_one_cycle defaults)")
    g.add_argument("--epochs", type=int, default=t.epochs, help=f"default {t.epochs} (fit_one_cycle({t.epochs}))")
    g.add_argument("--batch-size", type=int, default=t.batch_size, help=f"default {t.batch_size}")
    g.add_argument("--lr", type=float, default=t.lr, help=f"peak learning rate (default {t.lr:g})")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay,
                   help=f"decoupled weight decay (default {t.weight_decay:g})")
    g = parser.add_argument_group("data and models")
    g.add_argument("--data-dir", default=None,
                   help="Oxford-IIIT Pet (official layout or archives); default $LSBENCH_DATA_DIR")
    g.add_argument("--download", action="store_true",
                   help="allow downloading the official archives if no local copy is found")
    g.add_argument("--per-class-limit", type=int, default=None, metavar="N",
                   help="use only the first N images of each class in each split (quick runs)")
    g.add_argument("--image-size", type=int, default=cfg.data.image_size,
                   help=f"image side in pixels (default {cfg.data.image_size})")
    g.add_argument("--weights", default=None, metavar="PATH",
                   help="fastai profile: torchvision ResNet-34 state dict (.pth or .safetensors)")
    g.add_argument("--from-scratch", action="store_true",
                   help="fastai profile: train ResNet-34 from random initialisation (a different "
                        "experiment; every parameter is trained)")
    g.add_argument("--cache-dir", default=None,
                   help="decoded images and cached features (default $LSBENCH_CACHE_DIR or ~/.cache/lsbench)")
    g = parser.add_argument_group("output")
    g.add_argument("--out", default=None, metavar="PATH",
                   help="results file (default paper/results/pets-<profile>.json, or "
                        "pets-<profile>-limit<N>.json with --per-class-limit N); per-run records go to "
                        "<dir>/runs/<stem>/")
    g.add_argument("--force", action="store_true", help="redo runs that are already recorded")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


class UsageError(ValueError):
    """Bad command-line input: reported without a traceback, exit status 2."""


def _resolve_profile(profile: str | None) -> str:
    if profile is not None:
        return profile
    import jax

    return "frozen" if jax.default_backend() == "cpu" else "fastai"


def _validate(args) -> str:
    """The profile, once the command line is checked (:class:`UsageError` listing every problem)."""
    problems = []
    unknown = [r for r in args.recipes if r not in RUN_SPECS]
    if unknown:
        problems.append(f"unknown recipe(s) {unknown}; choose from {list(RUN_SPECS)}")
    seeds = list(dict.fromkeys(args.seeds))
    if any(s < 0 for s in seeds):
        problems.append(f"seeds must be >= 0, got {seeds}")
    if not (math.isfinite(args.epsilon) and 0 <= args.epsilon <= 1):
        problems.append(f"--epsilon must be in [0, 1], got {args.epsilon}")
    if args.per_class_limit is not None and args.per_class_limit < 1:
        problems.append(f"--per-class-limit must be >= 1, got {args.per_class_limit}")
    if args.image_size < 32:
        problems.append(f"--image-size must be >= 32, got {args.image_size}")
    profile = _resolve_profile(args.profile)
    if profile == "fastai":
        if args.weights is None and not args.from_scratch:
            problems.append(
                "the fastai profile fine-tunes a pretrained ResNet-34: pass --weights PATH (a torchvision "
                "ResNet-34 state dict, e.g. resnet34-b627a593.pth from "
                "https://download.pytorch.org/models/resnet34-b627a593.pth). Training ResNet-34 from "
                "random initialisation is a different experiment; ask for it with --from-scratch.")
        if args.weights is not None and args.from_scratch:
            problems.append("--weights and --from-scratch exclude each other")
        if args.weights is not None and not Path(args.weights).is_file():
            problems.append(f"--weights {args.weights}: no such file")
    elif args.weights is not None or args.from_scratch:
        problems.append("--weights/--from-scratch belong to --profile fastai "
                        "(the frozen profile uses EfficientNet-Lite0's packaged weights)")
    if problems:
        raise UsageError("\n".join(problems))
    return profile


def run(args) -> int:
    """Entry point of ``python -m lsbench reproduce pets``."""
    try:
        cfg = from_args(args, _validate(args))
    except (UsageError, ValueError) as exc:
        print(f"lsbench reproduce pets: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out(cfg.profile, cfg.data.per_class_limit)
    return Experiment(args, cfg, out).main()


# --------------------------------------------------------------------------- the experiment


class Experiment:
    """One invocation: resolve inputs, plan, train what is missing, record, print.

    ``cfg`` (:class:`~.config.PetsConfig`) holds every setting of the runs; ``args`` only the
    invocation's paths and switches (data/cache dirs, weights, ``--force``, progress).
    """

    def __init__(self, args, cfg: PetsConfig, out: Path):
        self.args, self.cfg, self.out = args, cfg, out
        self.profile, self.recipes, self.seeds = cfg.profile, list(cfg.recipes), list(cfg.seeds)
        self.runs_dir = out.parent / "runs" / out.stem
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
        from lsbench.data.pets import PetsDataError

        try:
            self.load_data()
            self.prepare_inputs()
        except (PetsDataError, UsageError, FileNotFoundError, ValueError) as exc:
            self.log(f"lsbench reproduce pets: {exc}")
            return 2
        plan, problems = self.plan()
        if problems:
            self.log(records.mismatch_message("pets", self.runs_dir, problems, "--out"))
            return 2
        self.provenance = self.collect_provenance()
        status = "complete"
        try:
            self.execute(plan)
        except KeyboardInterrupt:
            status = "interrupted"
            self.write_results(status)
            self.log(f"\ninterrupted: {len(self.trained)} run(s) recorded in this invocation "
                     f"(in {self.runs_dir}); rerun the same command to resume.")
            raise
        aggregates = self.write_results(status)
        print(format_table(aggregates, order=list(RUN_SPECS), baseline=self.cfg.protocol.baseline))
        total = time.perf_counter() - self.t_start
        print(f"\n{len(self.trained)} run(s) trained, {len(self.skipped)} already recorded; "
              f"results: {self.out}  (wall time {total:.1f} s: data {self.times['data']:.1f}, "
              f"features {self.times['features']:.1f}, training {self.times['training']:.1f})")
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
        from lsbench.models.efficientnet_lite import (efficientnet_lite0_weights_path, extract_features,
                                                      load_efficientnet_lite0)

        t0 = time.perf_counter()
        self.weights_path = efficientnet_lite0_weights_path()
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
            model = load_efficientnet_lite0(self.weights_path)
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
                "loss": spec.loss(self.cfg.epsilon)}

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
                        problems.append(f"{path.name}: {why}")
                        continue
                todo.append((spec, seed, key))
        return todo, problems

    def collect_provenance(self) -> dict:
        files = {"annotations/trainval.txt": self.data_root / "annotations" / "trainval.txt",
                 "annotations/test.txt": self.data_root / "annotations" / "test.txt"}
        if self.weights_path is not None:
            files["weights"] = self.weights_path
        return prov.collect(files=files, seeds=list(self.seeds), data_dir=str(self.data_root),
                            cache_dir=str(self._cache_root()))

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
            else:
                runs.append(rec)
        order = {n: i for i, n in enumerate(RUN_SPECS)}
        runs.sort(key=lambda r: (order.get(r["name"], len(order)), r["name"], r["seed"]))
        return runs, ignored

    def write_results(self, status: str) -> dict:
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
        prov.atomic_write_json(self.out, results)
        return aggregates
