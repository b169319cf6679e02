"""Vocabulary-sharded label smoothing: cost of ``shard_map`` + collectives vs the unsharded recipe.

Loss and gradient of ``uniform`` (ε = 0.1) on ``[256, 8192]`` float32 logits,
three ways: the unsharded ``RECIPES["uniform"]`` on one device, and
``lsbench.parallel.vocab_sharded_loss`` with the class axis split over a
``model`` mesh of 1 device and of every local device. The logits are placed
with their target sharding before timing, so the reshard is not measured.

What this measures, honestly: on a CPU, forced host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``, set before JAX is
imported) are N slices of the *same* cores and memory, so the sharded case
shows the **overhead** of the sharded formulation (per-shard programs, one
``pmax`` and one fused ``psum`` of four ``[B]`` vectors, zero collectives in
the backward), never a speed-up. A normal run sees 1 device and compares the
1-shard ``shard_map`` path against the plain recipe. On real accelerators the
benefit is memory: no device ever holds more than ``K/n`` columns of the
logits or of their gradient.

    pytest benchmarks/bench_sharded.py                                # 1 device
    XLA_FLAGS=--xla_force_host_platform_device_count=8 pytest benchmarks/bench_sharded.py
    pytest benchmarks/bench_sharded.py --benchmark-disable            # one cheap run each

Self-contained: no fixture or helper from the rest of ``benchmarks/``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from lsbench.losses import RECIPES
from lsbench.parallel import make_mesh, vocab_sharded_loss

SHAPE = (256, 8192)
EPSILON = 0.1
CASES = ["unsharded"] + [f"sharded-{n}" for n in sorted({1, jax.local_device_count()})]


def _inputs():
    rng = np.random.default_rng(0)
    z = rng.normal(size=SHAPE).astype(np.float32) * 3
    y = rng.integers(0, SHAPE[-1], size=SHAPE[:-1]).astype(np.int32)
    return z, y


def _case(name):
    z, y = _inputs()
    if name == "unsharded":
        fn = jax.jit(jax.value_and_grad(lambda z_, y_: RECIPES["uniform"].loss(z_, y_, epsilon=EPSILON)))
        return fn, jnp.asarray(z), jnp.asarray(y), 1
    n = int(name.split("-")[1])
    mesh = make_mesh(n, ("model",))
    fn = jax.jit(jax.value_and_grad(lambda z_, y_: vocab_sharded_loss(z_, y_, mesh, epsilon=EPSILON)))
    z = jax.device_put(z, NamedSharding(mesh, P(None, "model")))
    y = jax.device_put(y, NamedSharding(mesh, P()))
    return fn, z, y, n


@pytest.mark.parametrize("case", CASES)
def test_sharded_uniform_loss_and_grad(benchmark, case):
    fn, z, y, n = _case(case)
    jax.block_until_ready(fn(z, y))  # compile outside the timing

    def run():
        return jax.block_until_ready(fn(z, y))

    benchmark.group = f"vocab-sharded uniform loss+grad {SHAPE[0]}x{SHAPE[1]} f32"
    benchmark.extra_info.update(shards=n, devices=jax.device_count(), platform=jax.default_backend(),
                                forced_host_devices=jax.default_backend() == "cpu" and n > 1)
    loss, grad = benchmark(run)
    assert np.isfinite(float(loss)) and grad.shape == SHAPE
