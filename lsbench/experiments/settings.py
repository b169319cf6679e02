"""Helpers for the experiments' configuration trees (frozen dataclasses, Flax-examples style).

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Inner:
...     lr: float = 0.1
>>> @dataclasses.dataclass(frozen=True)
... class Outer:
...     seeds: tuple = (0, 1)
...     inner: Inner = Inner()
>>> to_dict(replace(Outer(), "inner.lr", 0.5))
{'seeds': [0, 1], 'inner': {'lr': 0.5}}
>>> field(Outer(), "inner.lr")
0.1
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["RunSpec", "to_dict", "field", "replace"]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One trained model of an experiment: a name, the ``lsbench.losses`` recipe and its parameters.

    ``uses_epsilon``: the experiment's ``--epsilon`` is added to ``params`` (pets' fixed-ε rows).

    >>> s = RunSpec.of("uniform", "uniform", {}, "ε/K on every class", uses_epsilon=True)
    >>> s.loss(0.1)
    {'recipe': 'uniform', 'params': {'epsilon': 0.1}}
    """

    name: str
    recipe: str
    params: tuple  # sorted (key, value) pairs
    description: str
    uses_epsilon: bool = False

    @classmethod
    def of(cls, name: str, recipe: str, params: dict, description: str, uses_epsilon: bool = False) -> "RunSpec":
        return cls(name, recipe, tuple(sorted(params.items())), description, uses_epsilon)

    def loss_params(self, epsilon: float | None = None) -> dict:
        p = dict(self.params)
        if self.uses_epsilon:
            if epsilon is None:
                raise ValueError(f"run {self.name!r} takes the experiment's epsilon; none given")
            p["epsilon"] = float(epsilon)
        return p

    def loss(self, epsilon: float | None = None) -> dict:
        """``{"recipe", "params"}`` as run records store it."""
        return {"recipe": self.recipe, "params": self.loss_params(epsilon)}


def to_dict(cfg: Any) -> Any:
    """A JSON-able copy of a config tree (dataclasses become dicts, tuples lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (tuple, list)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def field(cfg: Any, path: str) -> Any:
    """``field(cfg, "train.lr")`` is ``cfg.train.lr``."""
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def replace(cfg: Any, path: str, value: Any) -> Any:
    """A copy of ``cfg`` with the field at the dotted ``path`` set to ``value`` (a list becomes a
    tuple); the dataclasses on the way are rebuilt, so their own validation runs."""
    head, _, rest = path.partition(".")
    if rest:
        return dataclasses.replace(cfg, **{head: replace(getattr(cfg, head), rest, value)})
    return dataclasses.replace(cfg, **{head: tuple(value) if isinstance(value, list) else value})
