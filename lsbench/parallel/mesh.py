"""Meshes and placement: build a device mesh, shard a batch, replicate a pytree.

Everything here is a thin, checked layer over ``jax.sharding``: a
:class:`~jax.sharding.Mesh` whose axes are ``AxisType.Auto`` (the GSPMD mode in
which ``jax.jit`` places the collectives from the input and output shardings),
and :class:`~jax.sharding.NamedSharding` placements made with
``jax.device_put`` (one process) or ``jax.make_array_from_process_local_data``
(several processes, each holding its own slice of the batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


def make_mesh(
    num_devices: int | None = None,
    axis_names: Sequence[str] = ("data",),
    *,
    shape: Sequence[int] | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """A mesh over ``num_devices`` devices (default: all of them, every process's).

    Args:
      num_devices: how many devices to use (the first ``num_devices`` of
        ``devices``); None uses them all.
      axis_names: mesh axis names, e.g. ``("data",)`` or ``("data", "model")``.
      shape: mesh shape, one size per axis name, with product ``num_devices``.
        None puts every device on the first axis and size 1 on the others.
      devices: the devices to draw from (default ``jax.devices()``).

    The axes are ``AxisType.Auto``: ``jax.jit`` propagates ``NamedSharding``
    placements and inserts the collectives itself (``jax.make_mesh`` defaults
    to ``Explicit`` axes in recent JAX, which changes typing rules; this
    project relies on the Auto behaviour).
    """
    axis_names = tuple(axis_names)
    if not axis_names or len(set(axis_names)) != len(axis_names):
        raise ValueError(f"axis_names must be distinct and non-empty, got {axis_names}")
    devices = list(jax.devices() if devices is None else devices)
    if num_devices is None:
        num_devices = len(devices) if shape is None else math.prod(shape)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(
            f"num_devices={num_devices} but {len(devices)} device(s) are available; on a CPU, "
            "set XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX is imported"
        )
    if shape is None:
        shape = (num_devices,) + (1,) * (len(axis_names) - 1)
    shape = tuple(int(s) for s in shape)
    if len(shape) != len(axis_names):
        raise ValueError(f"shape {shape} has {len(shape)} axes but axis_names {axis_names} has {len(axis_names)}")
    if math.prod(shape) != num_devices:
        raise ValueError(f"mesh shape {shape} holds {math.prod(shape)} devices, not num_devices={num_devices}")
    return jax.make_mesh(
        shape, axis_names, axis_types=(AxisType.Auto,) * len(axis_names), devices=devices[:num_devices]
    )


def axis_size(mesh: Mesh, axis: str | Sequence[str] | None) -> int:
    """Number of devices along ``axis`` (a name, a tuple of names, or None = 1)."""
    if axis is None:
        return 1
    names = (axis,) if isinstance(axis, str) else tuple(axis)
    for name in names:
        if name not in mesh.shape:
            raise ValueError(f"mesh has no axis {name!r}; its axes are {tuple(mesh.axis_names)}")
    return math.prod(mesh.shape[name] for name in names)


def batch_sharding(mesh: Mesh, axis: str | Sequence[str] = "data") -> NamedSharding:
    """Leading (batch) dimension split over ``axis``, every other dimension whole."""
    axis_size(mesh, axis)
    return NamedSharding(mesh, P(axis if isinstance(axis, str) else tuple(axis)))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def _check_batch_leaf(x, n: int, axis) -> None:
    shape = np.shape(x)
    if len(shape) == 0:
        raise ValueError("shard_batch: every leaf of the batch needs a leading batch dimension; got a scalar")
    if shape[0] % n:
        raise ValueError(
            f"shard_batch: batch dimension {shape[0]} is not divisible by the {n} device(s) of "
            f"mesh axis {axis!r}; pad or drop the remainder"
        )


def shard_batch(batch, mesh: Mesh, axis: str | Sequence[str] = "data"):
    """Place a *global* batch (a pytree of arrays) with its leading dim split over ``axis``.

    One process: the whole batch is on this host and each device receives its
    contiguous slice. For several processes use :func:`shard_local_batch`.
    """
    n = axis_size(mesh, axis)
    jax.tree_util.tree_map(lambda x: _check_batch_leaf(x, n, axis), batch)
    return jax.device_put(batch, batch_sharding(mesh, axis))


def shard_local_batch(local_batch, mesh: Mesh, axis: str | Sequence[str] = "data"):
    """Assemble a global batch from each process's *local* slice (multi-host input).

    Every process calls this with its own ``local_batch`` (leading size
    ``global_batch / jax.process_count()``); the result is one global
    ``jax.Array`` per leaf, built with ``jax.make_array_from_process_local_data``.
    With a single process it is the same as :func:`shard_batch`.
    """
    n_local = max(1, axis_size(mesh, axis) // jax.process_count())
    jax.tree_util.tree_map(lambda x: _check_batch_leaf(x, n_local, axis), local_batch)
    sharding = batch_sharding(mesh, axis)
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )


def replicate(tree, mesh: Mesh):
    """Copy every leaf of ``tree`` onto every device of ``mesh`` (params, optimizer state)."""
    return jax.device_put(tree, replicated(mesh))
