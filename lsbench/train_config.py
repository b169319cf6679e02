"""The one-cycle optimiser's settings as plain data (:class:`TrainConfig`), without importing JAX.

:mod:`lsbench.train` re-exports these names and documents what each setting means for the
schedule and the optimiser; the experiments' configuration trees embed a :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

__all__ = ["TrainConfig", "FASTAI_V1", "FASTAI_V2"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one ``fit_one_cycle`` run (plain, hashable data).

    Attributes:
      epochs: passes over the training set (fastai ``fit_one_cycle(4)``: 4).
      batch_size: examples per step; the last incomplete batch is dropped
        (fastai's training loader), and a training set smaller than one batch
        is used as a single batch.
      lr: peak learning rate (fastai ``lr_max``; v1 default ``3e-3``).
      div: the cycle starts at ``lr/div``.
      div_final: the cycle ends at ``lr/div_final``.
      pct_start: fraction of the steps spent warming up.
      moms: Adam ``β1`` at the start, the peak-lr step and the end.
      b2: Adam ``β2``.
      eps: Adam ``ε`` (added to ``sqrt(v̂)``, as PyTorch and optax do).
      weight_decay: decoupled weight decay factor (multiplied by the current lr).
      wd_bn_bias: also decay batch-norm parameters and biases (fastai v1
        ``bn_wd=True``); ``False`` decays only weight matrices/kernels
        (fastai v2 ``wd_bn_bias=False``).
    """

    epochs: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    div: float = 25.0
    div_final: float = 25.0 * 1e4
    pct_start: float = 0.3
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95)
    b2: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 1e-2
    wd_bn_bias: bool = True

    def __post_init__(self):
        object.__setattr__(self, "moms", tuple(float(m) for m in self.moms))
        problems = []
        if int(self.epochs) != self.epochs or self.epochs < 1:
            problems.append(f"epochs must be a positive integer, got {self.epochs}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            problems.append(f"batch_size must be a positive integer, got {self.batch_size}")
        for name in ("lr", "div", "div_final"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                problems.append(f"{name} must be a finite number > 0, got {v}")
        if not 0 <= self.pct_start <= 1:
            problems.append(f"pct_start must be in [0, 1], got {self.pct_start}")
        if len(self.moms) != 3 or not all(0 <= m < 1 for m in self.moms):
            problems.append(f"moms must be three numbers in [0, 1), got {self.moms}")
        if not 0 <= self.b2 < 1:
            problems.append(f"b2 must be in [0, 1), got {self.b2}")
        if not self.eps > 0:
            problems.append(f"eps must be > 0, got {self.eps}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["moms"] = list(self.moms)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        return cls(**{k: (tuple(v) if k == "moms" else v) for k, v in d.items()})


#: fastai v1 (course-v3 ``lesson1-pets``): ``fit_one_cycle(4)`` with ``Learner`` defaults.
FASTAI_V1 = TrainConfig()
#: fastai v2 ``fit_one_cycle`` / ``Adam`` / ``Learner`` defaults.
FASTAI_V2 = TrainConfig(pct_start=0.25, div_final=1e5, eps=1e-5, wd_bn_bias=False)
