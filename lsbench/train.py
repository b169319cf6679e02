r"""fastai-style one-cycle training of a Flax NNX classifier with any ``lsbench`` recipe.

Data flows one way: ``(model, data, loss, config, seed)`` in, ``(trained model,
per-epoch log)`` out (:func:`fit`); the input model is never modified. ``data``
is a mapping of equally long host arrays (``{"image", "label", ...}``) and the
loss is ``loss(logits, batch)`` on the rows of all of them, so distillation
targets (``"teacher_logits"``) or per-example weights ride in the batch; this
is the one training loop of the project (the data-parallel trainer compiles
the same :func:`make_train_step`).

**Optimiser** (:func:`make_optimizer`) -- fastai's ``fit_one_cycle`` with its
default optimiser, checked against the fastai sources (v1
``callbacks/one_cycle.py`` + ``basic_train.py``/``torch_core.py``, v2
``callback/schedule.py`` + ``optimizer.py``):

* learning rate: cosine from ``lr/div`` up to ``lr`` over the first
  ``a1 = ⌊pct_start·n⌋`` steps, then cosine down to ``lr/div_final``
  over the remaining ``n − a1`` (fastai's ``annealing_cos`` /
  ``combined_cos``: ``end + (start − end)/2 · (1 + cos(π·pct))``);
* momentum: the same two cosines from ``moms[0]`` to ``moms[1]`` and back to
  ``moms[2]``, used as Adam's ``β1`` (fastai sets Adam's ``betas[0]`` to the
  scheduled momentum), with the bias correction ``1 − β1(t)^t`` of the
  current ``β1`` as PyTorch's Adam does;
* Adam with ``β2 = 0.99`` and *decoupled* weight decay (fastai ``true_wd``):
  ``p ← p − lr(t)·wd·p − lr(t)·adam(g)``, i.e. ``optax.scale_by_adam`` (its
  ``b1`` injected from the schedule by ``optax.inject_hyperparams``) →
  ``optax.add_decayed_weights`` → ``optax.scale_by_learning_rate``.

The defaults (:data:`FASTAI_V1`) are fastai **v1**, the version of the
course-v3 ``lesson1-pets`` notebook being reproduced: ``pct_start = 0.3``,
final lr ``lr/(div·1e4) = lr/2.5e5``, PyTorch Adam ``eps = 1e-8``, weight
decay on every parameter (``bn_wd=True``). fastai v2 (:data:`FASTAI_V2`) uses
``pct_start = 0.25``, ``div_final = 1e5``, ``eps = 1e-5`` and no decay on
batch-norm and bias parameters (``wd_bn_bias=False``). Both: ``div = 25``,
``moms = (0.95, 0.85, 0.95)``, ``β2 = 0.99``, ``wd = 1e-2``, ``lr = 3e-3``,
batch 64, and the training loader drops the last incomplete batch.

**Determinism** -- everything random derives from ``seed``: the per-epoch
shuffles from ``numpy.random.Generator(PCG64(SeedSequence([seed, 0])))``,
host-side augmentation (``batch_transform``) from ``SeedSequence([seed, 1])``,
dropout from ``jax.random.fold_in(jax.random.key(seed), step)`` (the caller
initialises the model from the seed too). The train step is one
``jax.jit``-compiled function with fixed shapes, cached across runs of the
same model structure, loss and schedule, so on CPU the same seed gives
bit-identical parameters.

Public API: :class:`TrainConfig`, :data:`FASTAI_V1`, :data:`FASTAI_V2`,
:func:`combined_cos`, :func:`one_cycle_schedules`, :func:`make_optimizer`,
:data:`INPUTS`, :data:`LABELS`, :data:`LossFn`, :func:`make_loss`,
:func:`steps_per_epoch`, :func:`apply_model`, :func:`make_train_step`,
:func:`fit`, :func:`fit_seeds`, :func:`predict`.

**Many seeds in one program** -- :func:`fit_seeds` trains one model per seed
with the step of :func:`make_train_step` under ``jax.vmap`` over a leading
seed axis: one compilation per (model structure, loss, schedule), every seed
in the same program. Each seed keeps its own initialisation (``model_fn(seed)``),
shuffles, augmentation stream and dropout keys, derived exactly as in
:func:`fit`, so a seed trained among others follows the same trajectory as the
seed trained alone (to float rounding: a batched matrix product may sum in
another order; ``tests/test_train.py`` checks the agreement).
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

# The settings are plain data in a module without JAX, so configuration trees import them cheaply.
from lsbench.train_config import FASTAI_V1, FASTAI_V2, TrainConfig

__all__ = ["TrainConfig", "FASTAI_V1", "FASTAI_V2", "combined_cos", "one_cycle_schedules", "make_optimizer",
           "INPUTS", "LABELS", "LossFn", "make_loss", "steps_per_epoch", "apply_model", "make_train_step",
           "fit", "fit_seeds", "predict"]




# --------------------------------------------------------------------------- schedules


def combined_cos(total_steps: int, pct_start: float, start: float, middle: float, end: float
                 ) -> Callable[[Any], jax.Array]:
    """fastai's ``combined_cos`` as an optax schedule ``step -> value``.

    With ``a1 = ⌊pct_start·total_steps⌋`` and ``a2 = total_steps − a1``::

        t <  a1: start + (middle − start)·(1 − cos(π·t/a1))/2
        t >= a1: middle + (end − middle)·(1 − cos(π·min((t − a1)/a2, 1)))/2

    so ``f(0) = start`` (``middle`` if ``a1 = 0``), ``f(a1) = middle``,
    ``f(total_steps) = end``; the last update (``t = total_steps − 1``) uses a
    value just above ``end``, as in fastai. Equal, for the learning rate, to
    ``optax.cosine_onecycle_schedule(total_steps, lr, pct_start, div,
    div_final/div)``.
    """
    if int(total_steps) != total_steps or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps}")
    a1 = int(total_steps * pct_start)
    a2 = max(int(total_steps) - a1, 1)

    def _cos(a, b, pct):
        return b + (a - b) / 2 * (1 + jnp.cos(jnp.pi * pct))

    def schedule(count):
        t = jnp.asarray(count, jnp.float32)
        p1 = jnp.clip(t / max(a1, 1), 0.0, 1.0)
        p2 = jnp.clip((t - a1) / a2, 0.0, 1.0)
        return jnp.where(t < a1, _cos(start, middle, p1), _cos(middle, end, p2))

    return schedule


def one_cycle_schedules(config: TrainConfig, total_steps: int):
    """``(lr_schedule, b1_schedule)`` of one cycle over ``total_steps`` optimiser steps."""
    lr = combined_cos(total_steps, config.pct_start, config.lr / config.div, config.lr,
                      config.lr / config.div_final)
    b1 = combined_cos(total_steps, config.pct_start, *config.moms)
    return lr, b1


def _kernel_only_mask(params):
    """True for weight matrices/kernels (leaf named ``kernel``/``weight``), False for biases and BN."""

    def is_kernel(path, _):
        names = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        names = [n for n in names if n not in (None, "value")]
        return bool(names) and names[-1] in ("kernel", "weight")

    return jax.tree_util.tree_map_with_path(is_kernel, params)


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Adam(β1 = momentum schedule, β2, ε) + decoupled weight decay, scaled by the one-cycle lr.

    The state's ``hyperparams["b1"]`` (from ``optax.inject_hyperparams``)
    records the ``β1`` used at the last step.
    """
    lr, b1 = one_cycle_schedules(config, total_steps)
    mask = None if config.wd_bn_bias else _kernel_only_mask
    return optax.chain(
        optax.inject_hyperparams(optax.scale_by_adam)(b1=b1, b2=config.b2, eps=config.eps),
        optax.add_decayed_weights(config.weight_decay, mask=mask),
        optax.scale_by_learning_rate(lr),
    )


# --------------------------------------------------------------------------- losses

#: The batch keys :func:`fit` feeds the model and counts errors against.
INPUTS = "image"
LABELS = "label"

#: ``loss(logits [B, K], batch) -> scalar``: everything besides the logits (labels, teacher
#: logits, per-example weights, ...) rides in the batch mapping.
LossFn = Callable[[jax.Array, Mapping[str, jax.Array]], jax.Array]


def _freeze(params: Mapping[str, Any] | None) -> tuple:
    return tuple(sorted((params or {}).items()))


def make_loss(recipe: str, params: Mapping[str, Any] | None = None, num_classes: int | None = None
              ) -> LossFn:
    """``loss(logits [B, K], batch) -> scalar`` for a recipe of :mod:`lsbench.losses`, on ``batch["label"]``.

    ``recipe`` is a key of ``RECIPES`` with integer labels, ``tf_onehot``
    (integer labels are turned into the one-hot matrix it takes) or
    ``"self_correction"`` (:func:`lsbench.losses.self_correction_loss`; its
    ``params`` include ``recipe``, ``alpha``, ``clip`` and the base recipe's
    parameters). ``params`` are passed as keyword arguments; they are checked
    eagerly on a dummy batch (``num_classes`` classes, default 3) so a bad
    value fails before training starts. The same ``(recipe, params)`` returns
    the same function object, so jit caches are shared across seeds.

    >>> import jax.numpy as jnp
    >>> loss = make_loss("uniform", {"epsilon": 0.0})
    >>> round(float(loss(jnp.zeros((2, 4)), {"label": jnp.array([0, 3])})), 4)  # log 4
    1.3863
    """
    fn = _make_loss(recipe, _freeze(params))
    k = int(num_classes or 3)
    z = jnp.linspace(-1.0, 1.0, 2 * k, dtype=jnp.float32).reshape(2, k)
    value = fn(z, {LABELS: jnp.asarray([0, k - 1])})
    if not np.isfinite(float(value)):
        raise ValueError(f"recipe {recipe!r} with {dict(params or {})} gives a non-finite loss on a test batch")
    return fn


@functools.lru_cache(maxsize=None)
def _make_loss(recipe: str, frozen: tuple):
    from lsbench.losses import RECIPES, self_correction_loss

    params = dict(frozen)
    if recipe == "self_correction":
        def loss(logits, batch):
            return self_correction_loss(logits, batch[LABELS], **params)

        return loss
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)} and 'self_correction'")
    r = RECIPES[recipe]
    unknown = set(params) - set(r.params)
    if unknown:
        raise ValueError(f"recipe {recipe!r} takes {sorted(r.params)}, not {sorted(unknown)}")
    if r.labels == "int":
        def loss(logits, batch):
            return r.loss(logits, batch[LABELS], **params)
    elif r.labels == "dense":
        def loss(logits, batch):
            return r.loss(logits, jax.nn.one_hot(batch[LABELS], logits.shape[-1], dtype=logits.dtype), **params)
    else:
        raise ValueError(f"recipe {recipe!r} takes {r.labels} as targets, not class labels")
    return loss


# --------------------------------------------------------------------------- training


def steps_per_epoch(n: int, batch_size: int) -> tuple[int, int]:
    """``(steps, effective batch size)``: ``n // bs`` full batches (``1`` batch of ``n`` if ``n < bs``)."""
    if n < 1:
        raise ValueError("no training examples")
    bs = min(int(batch_size), int(n))
    return n // bs, bs


def apply_model(model: nnx.Module, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """The forward call of training: ``model(x, rngs=nnx.Rngs(dropout=key))`` when the model's
    ``__call__`` takes ``rngs`` and a key is given, else ``model(x)``."""
    if key is not None and _takes_rngs(type(model)):
        return model(x, rngs=nnx.Rngs(dropout=key))
    return model(x)


@functools.lru_cache(maxsize=None)
def _takes_rngs(cls) -> bool:
    try:
        return "rngs" in inspect.signature(cls.__call__).parameters
    except (TypeError, ValueError):
        return False


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, loss_fn: LossFn,
                    trainable: Any = nnx.Param, inputs: str = INPUTS) -> Callable:
    """The one training step (not jitted): ``step(params, rest, opt_state, batch, key)``
    ``-> (params, rest, opt_state, loss, n_wrong)``.

    ``graphdef, params, rest = nnx.split(model, trainable, ...)``. The model
    sees ``batch[inputs]`` through :func:`apply_model` (dropout from ``key``);
    ``loss_fn(logits, batch)`` gives the scalar whose gradient updates
    ``params``; ``rest`` (batch statistics, frozen weights) comes back as the
    forward pass left it. ``n_wrong`` counts ``argmax(logits) != batch["label"]``
    (0 when the batch has no labels). :func:`fit` compiles it with ``jax.jit``,
    :class:`lsbench.parallel.DataParallelTrainer` with batch shardings.
    """

    def objective(params, rest, batch, key):
        model = nnx.merge(graphdef, params, rest, copy=True)
        logits = apply_model(model, batch[inputs], key)
        loss = loss_fn(logits, batch)
        _, _, new_rest = nnx.split(model, trainable, ...)
        wrong = jnp.sum(jnp.argmax(logits, axis=-1) != batch[LABELS]) if LABELS in batch else jnp.zeros((), jnp.int32)
        return loss, (new_rest, wrong)

    def step(params, rest, opt_state, batch, key):
        (loss, (rest, wrong)), grads = jax.value_and_grad(objective, has_aux=True)(params, rest, batch, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, rest, opt_state, loss, wrong

    return step


@functools.lru_cache(maxsize=64)
def _jitted_step(graphdef, loss_fn, flt, total_steps, config):
    """``(tx, jit(make_train_step(...)))``, cached per model structure, loss and schedule."""
    tx = make_optimizer(config, total_steps)
    return tx, jax.jit(make_train_step(graphdef, tx, loss_fn, flt))


def _check_data(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not isinstance(data, Mapping) or INPUTS not in data or LABELS not in data:
        raise TypeError(f"data must be a mapping with at least {INPUTS!r} and {LABELS!r} arrays "
                        f"(and whatever else the loss reads), got {type(data).__name__}"
                        + (f" with keys {sorted(data)}" if isinstance(data, Mapping) else ""))
    arrays = {k: np.asarray(v) for k, v in data.items()}
    n = len(arrays[LABELS])
    bad = {k: a.shape[0] if a.ndim else 0 for k, a in arrays.items() if not a.ndim or a.shape[0] != n}
    if bad:
        raise ValueError(f"every array of data needs {n} rows (as data[{LABELS!r}]); got {bad}")
    if not np.issubdtype(arrays[LABELS].dtype, np.integer):
        raise TypeError(f"data[{LABELS!r}] must hold integer class labels, got {arrays[LABELS].dtype}")
    arrays[LABELS] = arrays[LABELS].astype(np.int32)
    return arrays


def fit(model: nnx.Module, data: Mapping[str, Any], loss_fn: LossFn, config: TrainConfig, *,
        seed: int, trainable: Any = nnx.Param,
        batch_transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        progress: bool = True, desc: str = "train") -> tuple[nnx.Module, list[dict]]:
    """Train ``model`` on ``data`` with one-cycle Adam; return ``(trained model, log)``.

    Args:
      model: an NNX module mapping a batch ``data["image"][idx]`` to logits
        ``[B, K]``; its ``__call__`` may take ``rngs=`` (dropout). It is put
        in train mode on a copy; the argument itself is left untouched.
      data: host arrays with the same number of rows, indexed per batch:
        ``"image"`` (the model's input), ``"label"`` (integer class labels)
        and anything else the loss reads (e.g. ``"teacher_logits"``).
      loss_fn: ``loss(logits, batch) -> scalar`` where ``batch`` holds the
        rows of every array of ``data`` (e.g. :func:`make_loss`).
      config: :class:`TrainConfig`.
      seed: seeds shuffling, augmentation and dropout (see module docstring).
      trainable: NNX filter of the variables the optimiser updates (default
        every ``nnx.Param``); everything else (batch statistics, frozen
        weights, rng counters) is carried through the forward pass unchanged
        by the optimiser.
      batch_transform: optional host-side ``(image_batch, rng) -> image_batch``
        (augmentation), called with a seeded ``numpy.random.Generator``.
      progress: show a tqdm bar over the steps.

    Returns:
      the trained model (train mode; call ``.eval()`` before predicting, or use
      :func:`predict`) and one dict per epoch: ``epoch``, ``steps``,
      ``loss`` (mean training loss), ``train_error`` (error of the training
      batches, as seen in train mode), ``lr`` and ``b1`` (values used at the
      epoch's last step), ``seconds``.
    """
    from tqdm.auto import tqdm

    data = _check_data(data)
    n = len(data[LABELS])
    steps, bs = steps_per_epoch(n, config.batch_size)
    total = steps * config.epochs

    model = nnx.clone(model)
    model.train()
    graphdef, params, rest = nnx.split(model, trainable, ...)
    if not jax.tree_util.tree_leaves(params):
        raise ValueError("the trainable filter selects no variables")
    tx, step = _jitted_step(graphdef, loss_fn, trainable, total, config)
    opt_state = tx.init(params)
    lr_sched, _ = one_cycle_schedules(config, total)

    shuffle_rng, aug_rng, dropout_key = _seed_streams(seed)

    log = []
    t_step = 0
    with tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            order = shuffle_rng.permutation(n)
            losses, wrongs = [], []
            for s in range(steps):
                idx = order[s * bs:(s + 1) * bs]
                batch = {k: v[idx] for k, v in data.items()}
                if batch_transform is not None:
                    batch[INPUTS] = batch_transform(batch[INPUTS], aug_rng)
                params, rest, opt_state, loss, wrong = step(
                    params, rest, opt_state, batch, jax.random.fold_in(dropout_key, t_step))
                losses.append(loss)
                wrongs.append(wrong)
                t_step += 1
                bar.update(1)
            losses = np.asarray(jax.device_get(losses), np.float64)
            if not np.isfinite(losses).all():
                raise FloatingPointError(f"non-finite training loss in epoch {epoch + 1} ({desc})")
            entry = {
                "epoch": epoch + 1,
                "steps": steps,
                "loss": float(losses.mean()),
                "train_error": float(np.sum(jax.device_get(wrongs)) / (steps * bs)),
                "lr": float(lr_sched(t_step - 1)),
                "b1": float(opt_state[0].hyperparams["b1"]),
                "seconds": round(time.perf_counter() - t0, 4),
            }
            log.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", err=f"{entry['train_error']:.3f}")
    return nnx.merge(graphdef, params, rest), log


def _seed_streams(seed: int):
    """``(shuffle rng, augmentation rng, dropout key)`` of one seed (the module docstring's scheme)."""
    shuffle_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0])))
    aug_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 1])))
    return shuffle_rng, aug_rng, jax.random.key(int(seed))


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _unstack(tree, i: int):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


@functools.lru_cache(maxsize=64)
def _vmapped_step(graphdef, loss_fn, flt, total_steps, config):
    """``(tx, jit(vmap(make_train_step(...))))`` over a leading seed axis of every argument."""
    tx = make_optimizer(config, total_steps)
    return tx, jax.jit(jax.vmap(make_train_step(graphdef, tx, loss_fn, flt)))


def fit_seeds(model_fn: Callable[[int], nnx.Module], data: Mapping[str, Any] | Sequence[Mapping[str, Any]],
              loss_fn: LossFn, config: TrainConfig, seeds: Sequence[int], *, trainable: Any = nnx.Param,
              batch_transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
              progress: bool = True, desc: str = "train") -> list[tuple[nnx.Module, list[dict]]]:
    """Train one model per seed, all seeds in one vmapped program; ``[(trained model, log)]`` in seed order.

    Args:
      model_fn: ``seed -> model`` (the untrained model of that seed; every
        seed's model must have the same structure and shapes).
      data: one mapping shared by every seed, or one mapping per seed (e.g.
        a training set resampled per seed), all with the same number of rows;
        as in :func:`fit`.
      loss_fn, config, trainable, batch_transform, progress, desc: as in
        :func:`fit` (``batch_transform`` gets each seed's own generator).
      seeds: the seeds, distinct.

    Returns:
      per seed, what :func:`fit` returns for it: the trained model and one
      dict per epoch (``epoch``, ``steps``, ``loss``, ``train_error``,
      ``lr``, ``b1``, ``seconds``; ``seconds`` is the epoch's time for all
      seeds together).

    >>> from lsbench.models import FastaiHead
    >>> x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    >>> data = {"image": x, "label": (x[:, 0] > 0).astype(np.int32)}
    >>> cfg = TrainConfig(epochs=1, batch_size=8)
    >>> runs = fit_seeds(lambda s: FastaiHead(6, 2, hidden=4, rngs=nnx.Rngs(s)), data,
    ...                  make_loss("uniform", {"epsilon": 0.0}), cfg, seeds=[0, 1], progress=False)
    >>> [log[0]["steps"] for _, log in runs]
    [5, 5]
    """
    from tqdm.auto import tqdm

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    per_seed = [data] * len(seeds) if isinstance(data, Mapping) else list(data)
    if len(per_seed) != len(seeds):
        raise ValueError(f"data: one mapping for all seeds or one per seed ({len(seeds)}), got {len(per_seed)}")
    per_seed = [_check_data(d) for d in per_seed]
    n = len(per_seed[0][LABELS])
    if any(len(d[LABELS]) != n for d in per_seed) or len({tuple(sorted(d)) for d in per_seed}) != 1:
        raise ValueError("data: every seed's mapping needs the same keys and number of rows")
    steps, bs = steps_per_epoch(n, config.batch_size)
    total = steps * config.epochs

    splits = []
    for s in seeds:
        model = nnx.clone(model_fn(s))
        model.train()
        splits.append(nnx.split(model, trainable, ...))
    graphdef = splits[0][0]
    if any(g != graphdef for g, _, _ in splits):
        raise ValueError("model_fn must give every seed a model of the same structure")
    if not jax.tree_util.tree_leaves(splits[0][1]):
        raise ValueError("the trainable filter selects no variables")
    tx, step = _vmapped_step(graphdef, loss_fn, trainable, total, config)
    params = _stack([p for _, p, _ in splits])
    rest = _stack([r for _, _, r in splits])
    opt_state = _stack([tx.init(p) for _, p, _ in splits])
    lr_sched, _ = one_cycle_schedules(config, total)
    streams = [_seed_streams(s) for s in seeds]
    keys = jnp.stack([k for _, _, k in streams])
    fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))

    logs: list[list[dict]] = [[] for _ in seeds]
    t_step = 0
    with tqdm(total=total, desc=desc, unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(config.epochs):
            t0 = time.perf_counter()
            orders = [shuffle.permutation(n) for shuffle, _, _ in streams]
            losses, wrongs = [], []
            for s in range(steps):
                batches = []
                for d, order, (_, aug_rng, _) in zip(per_seed, orders, streams):
                    idx = order[s * bs:(s + 1) * bs]
                    batch = {k: v[idx] for k, v in d.items()}
                    if batch_transform is not None:
                        batch[INPUTS] = batch_transform(batch[INPUTS], aug_rng)
                    batches.append(batch)
                batch = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
                params, rest, opt_state, loss, wrong = step(params, rest, opt_state, batch, fold(keys, t_step))
                losses.append(loss)
                wrongs.append(wrong)
                t_step += 1
                bar.update(1)
            losses = np.asarray(jax.device_get(losses), np.float64)  # [steps, seeds]
            if not np.isfinite(losses).all():
                raise FloatingPointError(f"non-finite training loss in epoch {epoch + 1} ({desc})")
            wrong_frac = np.sum(jax.device_get(wrongs), axis=0) / (steps * bs)
            b1 = np.asarray(opt_state[0].hyperparams["b1"])
            seconds = round(time.perf_counter() - t0, 4)
            for i in range(len(seeds)):
                logs[i].append({"epoch": epoch + 1, "steps": steps, "loss": float(losses[:, i].mean()),
                                "train_error": float(wrong_frac[i]), "lr": float(lr_sched(t_step - 1)),
                                "b1": float(b1[i]), "seconds": seconds})
            bar.set_postfix(loss=f"{losses.mean():.3f}")
    return [(nnx.merge(graphdef, _unstack(params, i), _unstack(rest, i)), logs[i]) for i in range(len(seeds))]


@functools.lru_cache(maxsize=64)
def _predict_fn(graphdef):
    @jax.jit
    def run(state, x):
        return nnx.merge(graphdef, state, copy=True)(x)

    return run


def predict(model: nnx.Module, x: np.ndarray, *, batch_size: int = 256,
            batch_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Logits of ``model`` in eval mode (BN running statistics, no dropout) -> float32 ``[N, K]``.

    One jitted function with the fixed batch shape ``batch_size`` (short
    batches are zero-padded and the padding dropped), so any number of
    examples reuses one compilation. The argument is left in its mode.
    """
    model = nnx.clone(model)
    model.eval()
    graphdef, state = nnx.split(model)
    run = _predict_fn(graphdef)
    x = np.asarray(x)
    n = x.shape[0]
    if n == 0:
        raise ValueError("predict needs at least one example")
    bs = int(batch_size)
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = []
    for start in range(0, n, bs):
        xb = x[start:start + bs]
        if batch_transform is not None:
            xb = batch_transform(xb)
        k = xb.shape[0]
        if k < bs:
            xb = np.concatenate([xb, np.zeros((bs - k, *xb.shape[1:]), xb.dtype)])
        out.append(np.asarray(run(state, xb))[:k])
    return np.concatenate(out).astype(np.float32, copy=False)
