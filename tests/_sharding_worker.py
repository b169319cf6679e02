"""Multi-device checks for ``lsbench.parallel``, run in a fresh interpreter.

``tests/test_sharding.py`` runs this file with ``subprocess`` because the
number of CPU devices is fixed when JAX initialises its backend
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), and the pytest
process has usually imported and initialised JAX already for the other test
modules. All checks run in ONE subprocess (one JAX start-up, shared compiles);
the result is a JSON document on stdout that the tests assert on.

    python tests/_sharding_worker.py [--devices 8]

Numbers only: this script measures, the tests decide.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

_ARGS = argparse.ArgumentParser()
_ARGS.add_argument("--devices", type=int, default=8)
ARGS = _ARGS.parse_args()
os.environ["XLA_FLAGS"] = " ".join(
    [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    + [f"--xla_force_host_platform_device_count={ARGS.devices}"]
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (XLA_FLAGS must be set first)

jax.config.update("jax_enable_x64", True)  # float64 checks; every float32 input below is explicit

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax import lax  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from _sharding_common import EPS, IGNORE, MLP, dp_batches, flat  # noqa: E402
from lsbench.losses import RECIPES  # noqa: E402
from lsbench.parallel import (  # noqa: E402
    DataParallelTrainer,
    make_mesh,
    recipe_loss_fn,
    replicate_nnx,
    shard_batch,
    shard_local_batch,
    vocab_sharded_loss,
    vocab_sharded_per_example,
)

SHARDS = [n for n in (1, 2, 4, 8) if n <= ARGS.devices]
SHAPE = (8, 16, 2048)  # [B, T, K]: the largest configuration


def rel(a, b) -> float:
    """max |a − b| / max |b| (norm-wise relative error; robust for tiny entries)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(np.float64).tiny))


def make_inputs(dtype, seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=shape) * 3.0
    z[0, 0] *= 30.0  # one very wide row
    z[0, 1, 5] += 80.0  # one dominant logit (tests the shift)
    z[1] -= 500.0  # a row block far from zero
    y = rng.integers(0, shape[-1], size=shape[:-1])
    y[0, 1] = 5
    y[2, :, ] = shape[-1] - 1  # labels owned by the last shard
    y_masked = y.copy()
    y_masked[:, ::3] = IGNORE  # a third of the positions ignored
    y_masked[3] = IGNORE  # and one whole sequence
    return (jnp.asarray(z, dtype), jnp.asarray(y, jnp.int32), jnp.asarray(y_masked, jnp.int32))


# ---------------------------------------------------------------------------
# 1. sharded loss and gradient == unsharded RECIPES, for 1/2/4/8 shards
# ---------------------------------------------------------------------------

def all_losses(loss_fn, z, y, ym):
    """Loss and gradient for both recipes, plain and masked, plus per-example rows."""
    out = {}
    for recipe in ("uniform", "off_target"):
        out[recipe] = jax.value_and_grad(lambda z_: loss_fn(z_, y, recipe, None))(z)
        out[recipe + "_masked"] = jax.value_and_grad(lambda z_: loss_fn(z_, ym, recipe, IGNORE))(z)
    return out


def reference_fn(z, y, ym):
    def loss_fn(z_, labels, recipe, ignore_index):
        return RECIPES[recipe].loss(z_, labels, epsilon=EPS, ignore_index=ignore_index)

    out = all_losses(loss_fn, z, y, ym)
    rows = RECIPES["uniform"].per_example(z, ym, epsilon=EPS, ignore_index=IGNORE)
    return out, rows


def sharded_fn(mesh, batch_axis=None):
    def f(z, y, ym):
        def loss_fn(z_, labels, recipe, ignore_index):
            return vocab_sharded_loss(z_, labels, mesh, recipe=recipe, epsilon=EPS, batch_axis=batch_axis,
                                      ignore_index=ignore_index)

        out = all_losses(loss_fn, z, y, ym)
        rows = vocab_sharded_per_example(z, ym, mesh, recipe="uniform", epsilon=EPS, batch_axis=batch_axis,
                                         ignore_index=IGNORE)
        return out, rows

    return f


def compare(out, rows, ref_out, ref_rows, dtype):
    res = {}
    for key, (v, g) in out.items():
        rv, rg = ref_out[key]
        assert v.dtype == dtype and g.dtype == dtype, (key, v.dtype, g.dtype)
        res[key] = {
            "loss": float(v), "loss_rel": rel(v, rv), "grad_rel": rel(g, rg),
            "grad_masked_rows_zero": bool(np.all(np.asarray(g)[np.asarray(MASK_ROWS)] == 0)) if "masked" in key else None,
            "grad_spec": str(g.sharding.spec) if hasattr(g.sharding, "spec") else str(g.sharding),
        }
    res["per_example_rel"] = rel(rows, ref_rows)
    res["per_example_masked_zero"] = bool(np.all(np.asarray(rows)[np.asarray(MASK_ROWS)] == 0))
    return res


def check_equivalence():
    results = {}
    for dtype in (jnp.float32, jnp.float64):
        z, y, ym = make_inputs(dtype)
        ref_out, ref_rows = jax.jit(reference_fn)(z, y, ym)
        per_n = {}
        for n in SHARDS:
            mesh = make_mesh(n, ("model",))
            out, rows = jax.jit(sharded_fn(mesh))(z, y, ym)
            per_n[n] = compare(out, rows, ref_out, ref_rows, dtype)
        # data parallel × vocabulary sharded: 2 × 4 mesh, batch over "data", classes over "model"
        if ARGS.devices >= 8:
            mesh = make_mesh(8, ("data", "model"), shape=(2, 4))
            out, rows = jax.jit(sharded_fn(mesh, batch_axis="data"))(z, y, ym)
            per_n["2x4"] = compare(out, rows, ref_out, ref_rows, dtype)
        results[jnp.dtype(dtype).name] = per_n
    return results


# ---------------------------------------------------------------------------
# 2. padded vocabulary (num_classes < padded K)
# ---------------------------------------------------------------------------

def check_padding():
    n = SHARDS[-1]
    k_real, k_pad = 1000, 1024  # 1000 classes padded to a multiple of 8
    z, y, ym = make_inputs(jnp.float32, seed=1, shape=(4, 8, k_real))
    zp = jnp.concatenate([z, jnp.full(z.shape[:-1] + (k_pad - k_real,), 7.0, z.dtype)], axis=-1)
    mesh = make_mesh(n, ("model",))
    res = {}
    for recipe in ("uniform", "off_target"):
        rv, rg = jax.value_and_grad(lambda z_: RECIPES[recipe].loss(z_, ym, epsilon=EPS, ignore_index=IGNORE))(z)
        v, g = jax.jit(jax.value_and_grad(
            lambda z_: vocab_sharded_loss(z_, ym, mesh, recipe=recipe, epsilon=EPS, ignore_index=IGNORE,
                                          num_classes=k_real)))(zp)
        res[recipe] = {"loss_rel": rel(v, rv), "grad_rel": rel(g[..., :k_real], rg),
                       "pad_grad_zero": bool(np.all(np.asarray(g[..., k_real:]) == 0))}
    return {"shards": n, "K": k_real, "padded_K": k_pad, **res}


# ---------------------------------------------------------------------------
# 3. collectives: forward and forward+backward contain the same all-reduces
# ---------------------------------------------------------------------------

def check_collectives():
    n = SHARDS[-1]
    mesh = make_mesh(n, ("model",))
    z, y, _ = make_inputs(jnp.float32)

    collective = re.compile(r"\s(all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)(-start)?\(")

    def count(f):
        hlo = jax.jit(f).lower(z, y).compile().as_text()
        return sorted(m.group(1) for ln in hlo.splitlines() if (m := collective.search(ln)))

    fwd = count(lambda z_, y_: vocab_sharded_loss(z_, y_, mesh, epsilon=EPS))
    both = count(jax.value_and_grad(lambda z_, y_: vocab_sharded_loss(z_, y_, mesh, epsilon=EPS)))
    return {"shards": n, "forward": fwd, "forward_and_backward": both}


def check_errors():
    """Error messages that need more than one device to trigger."""
    out = {}
    if ARGS.devices < 8:
        return out
    mesh = make_mesh(4, ("model",))
    try:
        vocab_sharded_loss(jnp.zeros((2, 10), jnp.float32), jnp.zeros((2,), jnp.int32), mesh)
        out["indivisible_K"] = None
    except ValueError as e:
        out["indivisible_K"] = str(e)
    mesh2 = make_mesh(8, ("data", "model"), shape=(2, 4))
    try:
        vocab_sharded_loss(jnp.zeros((3, 8), jnp.float32), jnp.zeros((3,), jnp.int32), mesh2, batch_axis="data")
        out["indivisible_batch"] = None
    except ValueError as e:
        out["indivisible_batch"] = str(e)
    try:
        shard_batch({"x": np.zeros((6, 2), np.float32)}, make_mesh(4))
        out["indivisible_data"] = None
    except ValueError as e:
        out["indivisible_data"] = str(e)
    return out


# ---------------------------------------------------------------------------
# 4. COUNTER-EXAMPLE: Megatron-style local K and local mean (never use this)
# ---------------------------------------------------------------------------

def local_k_reference(logits, labels, mesh, *, epsilon, axis="model"):
    """COUNTER-EXAMPLE, for the test that shows the mistake only. Do not use.

    The label-smoothing branch of Megatron-LM's ``vocab_parallel_cross_entropy``
    (megatron/core/tensor_parallel/cross_entropy.py; issues #737, #7464),
    written in JAX: the global max/logsumexp and target logit are reduced
    correctly, but ``vocab_size`` is the *local* block width ``K/n`` and
    ``mean_log_probs`` is the mean over the *local* block:

        s = ε·K_l/(K_l − 1),   L_r = (1 − s)·(lse − z_y) − s·mean_{j ∈ block r}(z_j − lse)

    and the backward each rank runs is ``softmax − (1−s)·[j=y] − s/K_l``.
    Returns the per-rank mean loss ``[n]`` and the gradient each rank writes
    for its block (assembled into ``[..., K]``). With one shard it is exactly
    ``off_target``; with more, neither the loss nor the gradient is.
    """
    k_local = logits.shape[-1] // mesh.shape[axis]

    def local(z, y):
        start = lax.axis_index(axis) * k_local
        m = lax.pmax(jnp.max(z, axis=-1), axis)
        sum_exp = lax.psum(jnp.sum(jnp.exp(z - m[..., None]), axis=-1), axis)
        yl = y - start
        own = (yl >= 0) & (yl < k_local)
        zy = jnp.where(own, jnp.take_along_axis(z, jnp.clip(yl, 0, k_local - 1)[..., None], -1)[..., 0], 0)
        zy = lax.psum(zy, axis)
        lse = m + jnp.log(sum_exp)
        vocab_size = z.shape[-1]  # <- the local partition, as in Megatron
        s = epsilon * vocab_size / (vocab_size - 1)
        mean_log_probs = jnp.mean(z - lse[..., None], axis=-1)  # <- local mean, never all-reduced
        loss = (1 - s) * (lse - zy) - s * mean_log_probs
        col = start + lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)
        rows = loss.size
        grad = (jnp.exp(z - lse[..., None]) - (1 - s) * (col == y[..., None]) - s / vocab_size) / rows
        return jnp.mean(loss)[None], grad

    spec = P(*(None,) * (logits.ndim - 1), axis)
    return jax.shard_map(local, mesh=mesh, in_specs=(spec, P()), out_specs=(P(axis), spec), check_vma=False)(
        logits, labels)


def check_local_k():
    z, y, _ = make_inputs(jnp.float64, seed=2, shape=(4, 8, 512))
    correct, gcorrect = jax.value_and_grad(lambda z_: RECIPES["off_target"].loss(z_, y, epsilon=EPS))(z)
    res = {"K": 512, "epsilon": EPS, "correct_off_target": float(correct)}
    for n in SHARDS:
        mesh = make_mesh(n, ("model",))
        per_rank, g = jax.jit(lambda z_, y_: local_k_reference(z_, y_, mesh, epsilon=EPS))(z, y)
        ours = float(vocab_sharded_loss(z, y, mesh, recipe="off_target", epsilon=EPS))
        per_rank = np.asarray(per_rank)
        res[n] = {
            "rank_losses": per_rank.tolist(),
            "rank0_minus_correct": float(per_rank[0] - correct),
            "rank_spread": float(per_rank.max() - per_rank.min()),
            "grad_rel_vs_correct": rel(g, gcorrect),
            "ours_minus_correct": ours - float(correct),
        }
    return res


# ---------------------------------------------------------------------------
# 5. data-parallel training: 3 steps on 1 device == 3 steps on 8 devices
# ---------------------------------------------------------------------------

def check_data_parallel():
    batches = dp_batches()
    loss_fn = recipe_loss_fn("uniform", epsilon=EPS, ignore_index=IGNORE)
    tx = optax.adam(1e-2)
    results, params, losses = {}, {}, {}

    # Plain single-device jit, no mesh: the reference.
    model = MLP(rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def plain_step(model, opt, batch):
        loss, grads = nnx.value_and_grad(lambda m, b: loss_fn(m(b["image"]), b))(model, batch)
        opt.update(model, grads)
        return loss

    ref_losses = [float(plain_step(model, opt, {k: jnp.asarray(v) for k, v in b.items()})) for b in batches]
    ref = flat(nnx.state(model, nnx.Param))

    for n in sorted({1, ARGS.devices}):
        trainer = DataParallelTrainer(MLP(rngs=nnx.Rngs(0)), tx, loss_fn, make_mesh(n))
        losses[n] = [float(trainer.step(b)) for b in batches]
        params[n] = trainer.params
        leaf = jax.tree_util.tree_leaves(trainer.params)[0]
        results[f"devices_{n}"] = {
            "losses": losses[n],
            "param_dtype": str(leaf.dtype),
            "param_devices": len(leaf.sharding.device_set),
            "max_abs_vs_plain": float(np.max(np.abs(flat(trainer.params) - ref))),
        }

    # The same step through an unchanged nnx.jit loop: replicate state, shard the batch.
    mesh = make_mesh(ARGS.devices)
    model = MLP(rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    replicate_nnx(model, opt, mesh=mesh)
    nnx_losses = [float(plain_step(model, opt, shard_batch(b, mesh))) for b in batches]
    a, b = flat(params[1]), flat(params[ARGS.devices])
    results.update({
        "plain_losses": ref_losses,
        "max_abs_1_vs_n": float(np.max(np.abs(a - b))),
        "max_rel_1_vs_n": float(np.max(np.abs(a - b)) / np.max(np.abs(a))),
        "bitwise_equal_1_vs_n": bool(np.array_equal(a, b)),
        "max_abs_param": float(np.max(np.abs(a))),
        "nnx_jit_losses": nnx_losses,
        "nnx_jit_max_abs_vs_trainer": float(np.max(np.abs(flat(nnx.state(model, nnx.Param)) - b))),
        "n": ARGS.devices,
        "params_n": b.tolist(),
    })

    # Multi-host input path, exercised with one process: same global array as shard_batch.
    g1 = shard_batch(batches[0], mesh)
    g2 = shard_local_batch(batches[0], mesh)
    results["local_batch_equal"] = all(
        np.array_equal(np.asarray(g1[k]), np.asarray(g2[k])) and g1[k].sharding == g2[k].sharding for k in g1)
    return results


MASK_ROWS = None


def main():
    global MASK_ROWS
    t0 = time.perf_counter()
    MASK_ROWS = make_inputs(jnp.float32)[2] == IGNORE
    report = {"devices": jax.device_count(), "jax": jax.__version__, "shape": list(SHAPE), "timings": {}}
    for name, fn in [("equivalence", check_equivalence), ("padding", check_padding),
                     ("collectives", check_collectives), ("errors", check_errors), ("local_k", check_local_k),
                     ("data_parallel", check_data_parallel)]:
        t = time.perf_counter()
        report[name] = fn()
        report["timings"][name] = round(time.perf_counter() - t, 2)
    report["timings"]["total"] = round(time.perf_counter() - t0, 2)
    print("RESULT " + json.dumps(report, default=str), flush=True)


if __name__ == "__main__":
    main()
