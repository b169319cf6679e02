"""The integer-label recipes by name, for the paths that compute row statistics their own way.

:mod:`~lsbench.losses.chunked`, :mod:`~lsbench.losses.linear` and
:mod:`lsbench.parallel.vocab` take ``recipe=<name>`` and the recipe's own
keyword parameters (with the defaults of its public function), validate them
with the recipe's ``check_params``, and map their statistics to losses with
its ``rows_from_stats`` and ``reduce``: no formula or default is written here.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses.recipes import fastai, fastreid, off_target, speech_transformer, uniform

MODULES = {m.__name__.rsplit(".", 1)[-1]: m for m in (uniform, off_target, fastai, speech_transformer, fastreid)}
SUPPORTED = tuple(MODULES)


def public_function(recipe: str):
    return getattr(MODULES[recipe], recipe)


class Prepared(NamedTuple):
    safe: jax.Array  # labels with masked rows mapped to 0
    mask: jax.Array | None  # rows that count (None: all)
    label_weight: jax.Array | None  # uniform's class weight of each row's label, or None
    closed: dict  # the keyword arguments of the recipe's rows_from_stats


def resolve(recipe: str, params: dict, *, path: str, exclude=()) -> dict:
    """``params`` completed with the recipe's defaults; unknown recipes and names raise."""
    if recipe not in MODULES:
        raise ValueError(
            f"{path} supports the integer-label recipes {SUPPORTED}, got recipe={recipe!r}"
            " (tf_onehot takes dense labels and distillation teacher logits: use RECIPES[...] for them)"
        )
    fn = public_function(recipe)
    accepted = [k for k in P.keyword_defaults(fn) if k not in exclude]
    try:
        return P.bind_params(fn, params, accepted=accepted)
    except TypeError as err:
        raise TypeError(f"{path} {recipe}: {err}") from None


def prepare(recipe: str, p: dict, logits, labels, *, path: str, num_classes=None,
            logits_name: str = "logits") -> Prepared:
    """Check the labels against ``logits`` (anything with ``shape``/``dtype``) and the parameters."""
    k = logits.shape[-1] if num_classes is None else num_classes
    stand_in = jax.ShapeDtypeStruct(tuple(logits.shape[:-1]) + (k,), logits.dtype)
    _, safe, mask = P.prepare_labels(labels, stand_in, ignore_index=p["ignore_index"], where=p["where"],
                                     logits_name=logits_name)
    numeric = {n: v for n, v in p.items() if n not in ("ignore_index", "where")}
    weight = MODULES[recipe].check_params(k, **numeric)
    label_weight = None
    if recipe == "uniform":
        if p.get("weight_mode", "example") != "example":
            raise ValueError(f"{path} supports uniform's weight_mode='example' only (weight_mode='torch' needs "
                             "the class-weighted row sum: use RECIPES['uniform'])")
        if weight is not None:
            label_weight = jnp.take(weight.astype(P.compute_dtype(logits.dtype)), safe, mode="fill")
    closed_names = [n for n in inspect.signature(MODULES[recipe].rows_from_stats).parameters
                    if n not in ("stats", "num_classes", "label_weight", "class_weight_sum")]
    return Prepared(safe, mask, label_weight, {n: p[n] for n in closed_names if n in p})


def rows(recipe: str, stats: P.RowStats, num_classes: int, closed: dict, label_weight=None, mask=None):
    """Masked per-row losses of ``recipe`` from row statistics (the recipe's own closed form)."""
    extra = {} if label_weight is None else {"label_weight": label_weight}
    return P.apply_mask(MODULES[recipe].rows_from_stats(stats, num_classes, **closed, **extra), mask)


def reduce(recipe: str, per_row, mask, label_weight=None):
    """The recipe's own reduction of its masked per-row losses (the mean over kept rows unless it has one)."""
    reduce = getattr(MODULES[recipe], "reduce", P.masked_mean)
    return reduce(per_row, mask) if label_weight is None else reduce(per_row, mask, label_weight)
