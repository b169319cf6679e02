"""Models and the distillation training loop of the Müller et al. (2019) reproduction.

* :class:`MLP` -- a fully connected ReLU network with optional input and hidden
  dropout (Müller/Hinton's MNIST teacher is ``MLP(784, (1200, 1200), 10,
  dropout=0.5, input_dropout=0.2)``, the student ``MLP(784, (800, 800), 10)``).
  ``features(x)`` is the penultimate layer (the last hidden activations, after
  ReLU, before the last linear layer); ``head`` is that last layer.
* :func:`build_model` -- an :class:`MLP` or the pets experiment's
  :class:`lsbench.models.FastaiHead` from a JSON-able architecture dict.
* :func:`penultimate_and_logits` -- eval-mode penultimate activations and
  logits (one jitted function per model structure, fixed batch shape).
* :func:`last_layer` -- the last layer's weight matrix ``[D, K]`` (its columns
  are the class *templates* ``w_k`` of Müller et al.) and bias.
* :func:`make_distillation_loss` / :func:`fit_distill` -- the student loss
  ``β·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − β)·CE(s, y)``, its KL part from
  ``RECIPES["distillation"]`` and its CE part from ``RECIPES["uniform"]`` with
  ε = 0, trained with exactly the optimiser and determinism conventions of
  :func:`lsbench.train.fit` (one-cycle Adam from
  :func:`lsbench.train.make_optimizer`; shuffles from ``SeedSequence([seed, 0])``,
  dropout keys ``fold_in(key(seed), step)``). :func:`lsbench.train.fit` itself
  cannot be used because its loss sees only ``(logits, labels)``, and a
  student's loss also needs the teacher's logits of the same batch.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "MLP",
    "build_model",
    "penultimate_and_logits",
    "last_layer",
    "make_distillation_loss",
    "fit_distill",
]


class MLP(nnx.Module):
    """``x -> [dropout_in] -> (Linear -> ReLU -> [dropout])×L -> Linear`` logits ``[N, K]``."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, *,
                 dropout: float = 0.0, input_dropout: float = 0.0, rngs: nnx.Rngs):
        widths = [int(in_features), *(int(h) for h in hidden)]
        if len(widths) < 2:
            raise ValueError("MLP needs at least one hidden layer (the penultimate layer)")
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.head = nnx.Linear(widths[-1], int(num_classes), rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs) if dropout else None
        self.drop_in = nnx.Dropout(input_dropout, rngs=rngs) if input_dropout else None

    def features(self, x, *, rngs=None):
        """The penultimate layer: the last hidden ReLU activations (dropout only in train mode)."""
        if self.drop_in is not None:
            x = self.drop_in(x, rngs=rngs)
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
            if self.drop is not None:
                x = self.drop(x, rngs=rngs)
        return x

    def __call__(self, x, *, rngs=None):
        return self.head(self.features(x, rngs=rngs))


def build_model(arch: Mapping[str, Any], in_features: int, num_classes: int, seed: int) -> nnx.Module:
    """``arch = {"kind": "mlp", "hidden", "dropout", "input_dropout"}`` or
    ``{"kind": "fastai_head", "hidden", "ps", "linear_bias"}``; parameters drawn from ``nnx.Rngs(seed)``."""
    rngs = nnx.Rngs(int(seed))
    kind = arch["kind"]
    if kind == "mlp":
        return MLP(in_features, arch["hidden"], num_classes, dropout=arch.get("dropout", 0.0),
                   input_dropout=arch.get("input_dropout", 0.0), rngs=rngs)
    if kind == "fastai_head":
        from lsbench.models.head import FastaiHead

        return FastaiHead(in_features, num_classes, hidden=int(arch["hidden"]), ps=float(arch["ps"]),
                          linear_bias=bool(arch["linear_bias"]), rngs=rngs)
    raise ValueError(f"unknown architecture kind {kind!r}")


def _features(model, x):
    if hasattr(model, "features"):
        return model.features(x)
    # lsbench.models.FastaiHead in eval mode: BN -> (dropout off) -> fc1 -> ReLU -> BN -> | fc2
    h = jax.nn.relu(model.fc1(model.bn1(x)))
    return model.bn2(h)


def last_layer(model) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W [D, K], b [K] or None)`` of the layer that maps the penultimate activations to logits."""
    layer = model.head if hasattr(model, "head") else model.fc2
    w = np.asarray(layer.kernel[...], np.float64)
    b = None if layer.bias is None else np.asarray(layer.bias[...], np.float64)
    return w, b


@functools.lru_cache(maxsize=32)
def _embed_fn(graphdef):
    @jax.jit
    def run(state, x):
        model = nnx.merge(graphdef, state, copy=True)
        h = _features(model, x)
        layer = model.head if hasattr(model, "head") else model.fc2
        return h, layer(h)

    return run


def penultimate_and_logits(model: nnx.Module, x: np.ndarray, batch_size: int = 500
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode ``(penultimate [N, D], logits [N, K])`` float32 (the argument keeps its mode)."""
    model = nnx.clone(model)
    model.eval()
    graphdef, state = nnx.split(model)
    run = _embed_fn(graphdef)
    x = np.asarray(x)
    n = len(x)
    if n == 0:
        raise ValueError("no examples")
    bs = min(batch_size, n)
    hs, zs = [], []
    for start in range(0, n, bs):
        xb = x[start:start + bs]
        k = len(xb)
        if k < bs:
            xb = np.concatenate([xb, np.zeros((bs - k, *xb.shape[1:]), xb.dtype)])
        h, z = run(state, xb)
        hs.append(np.asarray(h)[:k])
        zs.append(np.asarray(z)[:k])
    return np.concatenate(hs).astype(np.float32), np.concatenate(zs).astype(np.float32)


# --------------------------------------------------------------------------- distillation


@functools.lru_cache(maxsize=None)
def make_distillation_loss(temperature: float, beta: float) -> Callable:
    """``loss(student_logits, teacher_logits, labels) = β·T²KL + (1 − β)·CE`` (cached per ``(T, β)``).

    ``T²KL`` is ``RECIPES["distillation"].loss`` (batchmean), ``CE`` is
    ``RECIPES["uniform"].loss`` with ε = 0 (mean). ``β = 0`` is plain
    cross-entropy on the labels (the teacher logits are then ignored).
    """
    from lsbench.losses import RECIPES

    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    kd, ce = RECIPES["distillation"].loss, RECIPES["uniform"].loss
    t, b = float(temperature), float(beta)

    def loss(s, teacher, y):
        hard = ce(s, y, epsilon=0.0)
        if b == 0.0:
            return hard
        return b * kd(s, teacher, temperature=t) + (1.0 - b) * hard

    return loss


def _call(model, x, key):
    from lsbench.train import _takes_rngs

    if _takes_rngs(type(model)):
        return model(x, rngs=nnx.Rngs(dropout=key))
    return model(x)


@functools.lru_cache(maxsize=32)
def _distill_step(graphdef, loss_fn, total_steps, config):
    from lsbench.train import make_optimizer
    import optax

    tx = make_optimizer(config, total_steps)

    def loss_of(params, rest, x, t, y, key):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = _call(model, x, key)
        loss = loss_fn(logits, t, y)
        _, _, new_rest = nnx.split(model, nnx.Param, ...)
        wrong = jnp.sum(jnp.argmax(logits, axis=-1) != y)
        return loss, (new_rest, wrong)

    @jax.jit
    def step(params, rest, opt_state, x, t, y, key):
        (loss, (rest, wrong)), grads = jax.value_and_grad(loss_of, has_aux=True)(params, rest, x, t, y, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss, wrong

    return tx, step


def fit_distill(model: nnx.Module, x: np.ndarray, y: np.ndarray, teacher_logits: np.ndarray,
                loss_fn: Callable, config, *, seed: int, progress: bool = True, desc: str = "student"
                ) -> tuple[nnx.Module, list[dict]]:
    """:func:`lsbench.train.fit` for a student: ``loss_fn(student_logits, teacher_logits, labels)``.

    Same optimiser, batching (the last incomplete batch dropped), shuffling
    and dropout seeding as :func:`lsbench.train.fit`; returns ``(trained
    model, per-epoch log)`` with the same log fields.
    """
    from tqdm.auto import tqdm

    from lsbench.train import one_cycle_schedules, steps_per_epoch

    x = np.asarray(x)
    y = np.asarray(y).astype(np.int32)
    t = np.asarray(teacher_logits, np.float32)
    if not (len(x) == len(y) == len(t)):
        raise ValueError(f"x, y and teacher_logits have {len(x)}, {len(y)}, {len(t)} rows")
    steps, bs = steps_per_epoch(len(y), config.batch_size)
    total = steps * config.epochs
    model = nnx.clone(model)
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, step = _distill_step(graphdef, loss_fn, total, config)
    opt_state = tx.init(params)
    lr_sched, _ = one_cycle_schedules(config, total)
    shuffle_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0])))
    dropout_key = jax.random.key(int(seed))
    log, t_step = [], 0
    with tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            order = shuffle_rng.permutation(len(y))
            losses, wrongs = [], []
            for s in range(steps):
                idx = order[s * bs:(s + 1) * bs]
                params, rest, opt_state, loss, wrong = step(
                    params, rest, opt_state, x[idx], t[idx], y[idx], jax.random.fold_in(dropout_key, t_step))
                losses.append(loss)
                wrongs.append(wrong)
                t_step += 1
                bar.update(1)
            losses = np.asarray(jax.device_get(losses), np.float64)
            if not np.isfinite(losses).all():
                raise FloatingPointError(f"non-finite training loss in epoch {epoch + 1} ({desc})")
            entry = {"epoch": epoch + 1, "steps": steps, "loss": float(losses.mean()),
                     "train_error": float(np.sum(jax.device_get(wrongs)) / (steps * bs)),
                     "lr": float(lr_sched(t_step - 1)), "b1": float(opt_state[0].hyperparams["b1"]),
                     "seconds": round(time.perf_counter() - t0, 4)}
            log.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", err=f"{entry['train_error']:.3f}")
    return nnx.merge(graphdef, params, rest), log
