r"""Data-parallel training of a Flax ``nnx`` model with an Optax optimizer.

The step is :func:`lsbench.train.make_train_step`, the one training step of
the project (same ``loss(logits, batch)`` convention and forward call as
:func:`lsbench.train.fit`), written for the *global* batch and compiled by ``jax.jit``
with explicit shardings: parameters, non-parameter state (batch statistics,
RNG counters) and optimizer state replicated; every batch leaf split over the
``data`` mesh axis on its leading dimension. The loss is the recipe's own mean
over the global batch, so its gradient is already the global-batch gradient:
XLA's sharding propagation computes each device's partial sums and inserts the
all-reduce itself. There is no ``pmean`` and no hand-written collective, and
the same code runs unchanged on 1 device and on N.

Numerics: with N devices the batch sums (the loss mean, ``xᵀ·δ`` in each
layer's weight gradient, batch-norm statistics) are formed as N partial sums
that are then all-reduced, a different association order than one device's
single reduction. Results agree to rounding (about 1e-7 relative in float32),
not bit for bit.

Swapping this into a single-device loop (``lsbench/train.py``)::

    trainer = DataParallelTrainer(model, optax.adamw(1e-3), recipe_loss_fn("uniform", epsilon=0.1))
    for x, y in batches:                      # numpy, global batch
        loss = trainer.step({"image": x, "label": y})   # loss_fn(model(batch["image"]), batch)
    trainer.sync_model()                      # write params back into `model`

or, keeping an existing ``nnx.jit`` step, place the inputs and let ``jit``
follow them: ``replicate_nnx(model, optimizer, mesh=mesh)`` once, then call
the unchanged step on ``shard_batch(batch, mesh)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from lsbench.parallel.mesh import batch_sharding, make_mesh, replicate, replicated, shard_batch
from lsbench.train import INPUTS, LossFn, make_loss, make_train_step



def recipe_loss_fn(recipe: str = "uniform", **params) -> LossFn:
    """``loss_fn(logits, batch) = RECIPES[recipe].loss(logits, batch["label"], **params)``.

    :func:`lsbench.train.make_loss` (the loss convention of :func:`lsbench.train.fit`):
    every integer-label recipe (``uniform``, ``off_target``, ``fastai``,
    ``fastreid``, ``speech_transformer``), ``tf_onehot`` on the one-hot of the
    labels and ``self_correction``; the reduction is the recipe's own, taken
    over the global batch.
    """
    return make_loss(recipe, params)


def data_parallel_train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    loss_fn: LossFn,
    mesh: Mesh,
    *,
    inputs: str = INPUTS,
    data_axis: str = "data",
    donate: bool = True,
):
    """:func:`lsbench.train.make_train_step` compiled for ``mesh``:
    ``step(params, rest, opt_state, batch, key) -> (params, rest, opt_state, loss, n_wrong)``.

    ``graphdef, params, rest = nnx.split(model, nnx.Param, ...)``; the model
    sees ``batch[inputs]`` and ``loss_fn(logits, batch)`` returns the scalar
    loss (mean over the global batch). ``params``/``rest``/``opt_state`` and
    the dropout ``key`` are replicated over ``mesh``; every batch leaf is split
    over ``data_axis``. With ``donate`` the old parameter and optimizer
    buffers are reused.
    """
    rep = replicated(mesh)
    data = batch_sharding(mesh, data_axis)
    step = make_train_step(graphdef, tx, loss_fn, nnx.Param, inputs)
    return jax.jit(
        step,
        in_shardings=(rep, rep, rep, data, rep),
        out_shardings=(rep, rep, rep, rep, rep),
        donate_argnums=(0, 1, 2) if donate else (),
    )


class DataParallelTrainer:
    """Holds an ``nnx`` model's state and an Optax optimizer state on a mesh.

    Args:
      model: any ``nnx.Module``; its ``nnx.Param`` leaves are trained, the
        rest (batch statistics, RNG state) is carried through the step.
      tx: an Optax gradient transformation.
      loss_fn: ``loss_fn(logits, batch) -> scalar``, the convention of
        :func:`lsbench.train.fit` (e.g. :func:`recipe_loss_fn`).
      mesh: a mesh with a ``data_axis`` axis; default all devices on ``("data",)``.
      inputs: the batch key the model is called on (:func:`lsbench.train.apply_model`).
      seed: dropout keys are ``fold_in(key(seed), step)``, as in :func:`lsbench.train.fit`.
      data_axis: the mesh axis the batch is split over.
      donate: reuse the old parameter/optimizer buffers in each step.

    ``step(batch)`` takes a host (numpy) or already-sharded global batch and
    returns the loss as a replicated scalar ``jax.Array``. ``params``,
    ``rest`` and ``opt_state`` are the live state; ``sync_model()`` writes it
    back into the ``model`` given at construction.
    """

    def __init__(
        self,
        model: nnx.Module,
        tx: optax.GradientTransformation,
        loss_fn: LossFn,
        mesh: Mesh | None = None,
        *,
        inputs: str = INPUTS,
        seed: int = 0,
        data_axis: str = "data",
        donate: bool = True,
    ):
        self.mesh = make_mesh(axis_names=(data_axis,)) if mesh is None else mesh
        self.data_axis = data_axis
        self.tx = tx
        self._model = model
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        self.graphdef = graphdef
        # Copies, so that donation never invalidates the buffers of `model`.
        self.params = replicate(jax.tree_util.tree_map(jnp.array, params), self.mesh)
        self.rest = replicate(jax.tree_util.tree_map(jnp.array, rest), self.mesh)
        self.opt_state = jax.jit(tx.init, out_shardings=replicated(self.mesh))(self.params)
        self._step = data_parallel_train_step(graphdef, tx, loss_fn, self.mesh, inputs=inputs, data_axis=data_axis,
                                              donate=donate)
        self._key = jax.random.key(int(seed))
        self.steps = 0

    def step(self, batch) -> jax.Array:
        if not _is_placed(batch, self.mesh):
            batch = shard_batch(batch, self.mesh, self.data_axis)
        key = jax.random.fold_in(self._key, self.steps)
        self.params, self.rest, self.opt_state, loss, _ = self._step(self.params, self.rest, self.opt_state,
                                                                     batch, key)
        self.steps += 1
        return loss

    @property
    def model(self) -> nnx.Module:
        """A new module built from the current state (the original is untouched)."""
        return nnx.merge(self.graphdef, self.params, self.rest)

    def sync_model(self) -> nnx.Module:
        """Write the current state into the model given at construction and return it."""
        nnx.update(self._model, self.params, self.rest)
        return self._model


def _is_placed(batch, mesh: Mesh) -> bool:
    leaves = jax.tree_util.tree_leaves(batch)
    return bool(leaves) and all(
        isinstance(x, jax.Array) and getattr(x.sharding, "mesh", None) == mesh for x in leaves
    )


def replicate_nnx(*nodes, mesh: Mesh) -> None:
    """Replicate the state of ``nnx`` objects (models, ``nnx.Optimizer``) over ``mesh`` in place.

    For an existing ``nnx.jit`` training step: after this, feeding it
    ``shard_batch(batch, mesh)`` makes it data-parallel, because ``jit``
    follows the shardings of its inputs.
    """
    for node in nodes:
        nnx.update(node, replicate(nnx.state(node), mesh))
