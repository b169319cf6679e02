"""Tests for ``lsbench.parallel``: data parallelism and vocabulary-sharded label smoothing.

Why a subprocess: the CPU device count comes from
``XLA_FLAGS=--xla_force_host_platform_device_count=8``, which JAX reads once,
when its backend starts. In a pytest run the other test modules have already
imported and initialised JAX with one device, so setting the flag here would
silently do nothing (or, if this module ran first, would change the device
count under every other module). The multi-device checks therefore run in one
fresh interpreter (``tests/_sharding_worker.py``, started once per module by a
fixture) that prints JSON; the tests below assert on it. One subprocess, not
one per test, keeps the JAX start-up and the compiles shared (the whole module
takes well under a minute on 2 cores). Cheap single-device checks and input
validation run in-process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsbench.losses import RECIPES
from lsbench.parallel import (
    make_mesh,
    replicate,
    shard_batch,
    vocab_sharded_loss,
    vocab_sharded_per_example,
)

WORKER = Path(__file__).with_name("_sharding_worker.py")
MULTIHOST_WORKER = Path(__file__).with_name("_multihost_worker.py")
DEVICES = 8
SHARDS = ["1", "2", "4", "8", "2x4"]  # "2x4": batch over "data" (2) × classes over "model" (4)
CASES = ["uniform", "off_target", "uniform_masked", "off_target_masked"]
TOL = {"float32": 1e-5, "float64": 1e-12}


def _result(stdout: str) -> dict:
    """The worker's JSON line (other libraries, e.g. gloo, may print to stdout too)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"no RESULT line in worker output:\n{stdout[-2000:]}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def report():
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": " ".join(flags + [f"--xla_force_host_platform_device_count={DEVICES}"])}
    proc = subprocess.run([sys.executable, str(WORKER), "--devices", str(DEVICES)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"sharding worker failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    out = _result(proc.stdout)
    assert out["devices"] == DEVICES
    return out


# ---------------------------------------------------------------------------
# vocabulary-sharded loss == unsharded recipe
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shards", SHARDS)
def test_vocab_sharded_matches_unsharded(report, dtype, shards):
    res = report["equivalence"][dtype][shards]
    for case in CASES:
        r = res[case]
        assert r["loss_rel"] <= TOL[dtype], (case, r)
        assert r["grad_rel"] <= TOL[dtype], (case, r)
        if shards != "1":
            # the gradient stays sharded like the logits: no gather of [.., K]
            assert r["grad_spec"].endswith("'model')"), r["grad_spec"]
    assert res["per_example_rel"] <= TOL[dtype]


@pytest.mark.parametrize("shards", SHARDS)
def test_vocab_sharded_masked_rows(report, shards):
    res = report["equivalence"]["float32"][shards]
    assert res["per_example_masked_zero"]
    for case in ("uniform_masked", "off_target_masked"):
        assert res[case]["grad_masked_rows_zero"], case
    # masking changes the mean (it is over the kept rows only)
    assert abs(res["uniform_masked"]["loss"] - res["uniform"]["loss"]) > 1e-3


def test_vocab_sharded_padded_vocabulary(report):
    pad = report["padding"]
    for recipe in ("uniform", "off_target"):
        assert pad[recipe]["loss_rel"] <= 1e-5 and pad[recipe]["grad_rel"] <= 1e-5, pad
        assert pad[recipe]["pad_grad_zero"]


def test_backward_adds_no_collective(report):
    col = report["collectives"]
    # forward: one pmax (global max) and one psum of (Σexp, Σz, z_y, owner count), fused
    assert col["forward"] == ["all-reduce", "all-reduce"], col
    assert col["forward_and_backward"] == col["forward"], col


def test_multi_device_errors(report):
    err = report["errors"]
    assert "split evenly" in err["indivisible_K"] and "num_classes" in err["indivisible_K"]
    assert "'data'" in err["indivisible_batch"]
    assert "not divisible" in err["indivisible_data"]


# ---------------------------------------------------------------------------
# the Megatron-style mistake: local K and local mean
# ---------------------------------------------------------------------------

def test_local_k_counter_example_depends_on_shard_count(report):
    lk = report["local_k"]
    # One shard: the local-K formula IS off_target (K_local = K).
    assert abs(lk["1"]["rank0_minus_correct"]) <= 1e-12 and lk["1"]["grad_rel_vs_correct"] <= 1e-12
    rank0 = []
    for n in ("2", "4", "8"):
        r = lk[n]
        assert abs(r["rank0_minus_correct"]) > 1e-3, r  # wrong loss...
        assert r["rank_spread"] > 1e-3, r  # ...that differs from rank to rank...
        assert r["grad_rel_vs_correct"] > 1e-4, r  # ...and a wrong gradient
        rank0.append(r["rank0_minus_correct"])
    assert len({round(x, 9) for x in rank0}) == 3  # ...that changes with the shard count
    # Ours, on the same inputs: the correct value for every shard count.
    for n in ("1", "2", "4", "8"):
        assert abs(lk[n]["ours_minus_correct"]) <= 1e-12


# ---------------------------------------------------------------------------
# data parallelism
# ---------------------------------------------------------------------------

def test_data_parallel_one_vs_eight_devices(report):
    dp = report["data_parallel"]
    assert dp["devices_1"]["param_devices"] == 1 and dp["devices_8"]["param_devices"] == 8
    assert dp["devices_8"]["param_dtype"] == "float32"
    # Partial sums per device + all-reduce vs one reduction: equal to rounding, not bit for bit.
    assert dp["max_abs_1_vs_n"] <= 1e-6, dp
    assert dp["devices_1"]["max_abs_vs_plain"] <= 1e-6 and dp["devices_8"]["max_abs_vs_plain"] <= 1e-6
    np.testing.assert_allclose(dp["devices_8"]["losses"], dp["plain_losses"], rtol=1e-6)
    # an unchanged nnx.jit step on replicated state + sharded batch does the same
    assert dp["nnx_jit_max_abs_vs_trainer"] <= 1e-6
    assert dp["local_batch_equal"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multi_process_data_parallel(report):
    """Two processes × 4 host devices, jax.distributed + per-process input == one process × 8 devices."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, str(MULTIHOST_WORKER), "--process-id", str(i),
                               "--num-processes", "2", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            if p.returncode != 0:
                pytest.fail(f"multi-process worker failed (rc={p.returncode}):\n{err[-4000:]}")
            outs.append(_result(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    single = report["data_parallel"]
    for o in outs:
        assert (o["processes"], o["devices"], o["local_devices"]) == (2, 8, 4)
        np.testing.assert_allclose(o["losses"], single["devices_8"]["losses"], rtol=1e-6)
        assert np.max(np.abs(np.asarray(o["params"]) - np.asarray(single["params_n"]))) <= 1e-6
    assert outs[0]["params"] == outs[1]["params"]  # replicas identical across processes


# ---------------------------------------------------------------------------
# in-process: whatever devices this pytest process has (usually 1)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(4, 3, 16)) * 2, jnp.float32)
    y = jnp.asarray(rng.integers(0, 16, size=(4, 3)), jnp.int32)
    return z, y


@pytest.mark.parametrize("recipe", ["uniform", "off_target"])
def test_in_process_matches_recipe(small, recipe):
    z, y = small
    y = y.at[0, 0].set(-1)
    mesh = make_mesh(1, ("model",))
    f = jax.jit(jax.value_and_grad(
        lambda z_: vocab_sharded_loss(z_, y, mesh, recipe=recipe, epsilon=0.2, ignore_index=-1)))
    v, g = f(z)
    rv, rg = jax.value_and_grad(lambda z_: RECIPES[recipe].loss(z_, y, epsilon=0.2, ignore_index=-1))(z)
    np.testing.assert_allclose(v, rv, rtol=1e-6)
    np.testing.assert_allclose(g, rg, rtol=1e-5, atol=1e-7)
    rows = vocab_sharded_per_example(z, y, mesh, recipe=recipe, epsilon=0.2, ignore_index=-1)
    np.testing.assert_allclose(rows, RECIPES[recipe].per_example(z, y, epsilon=0.2, ignore_index=-1),
                               rtol=1e-6)


def test_in_process_bfloat16(small):
    z, y = small
    zb = z.astype(jnp.bfloat16)
    mesh = make_mesh(1, ("model",))
    v, g = jax.value_and_grad(lambda z_: vocab_sharded_loss(z_, y, mesh, epsilon=0.1))(zb)
    rv, rg = jax.value_and_grad(lambda z_: RECIPES["uniform"].loss(z_, y, epsilon=0.1))(zb)
    assert v.dtype == jnp.float32 and g.dtype == jnp.bfloat16  # computed in f32, gradient in bf16
    np.testing.assert_allclose(v, rv, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(rg, np.float32), rtol=1e-2, atol=1e-4)


def test_all_rows_masked_gives_zero(small):
    z, y = small
    mesh = make_mesh(1, ("model",))
    y = jnp.full_like(y, -1)
    v, g = jax.value_and_grad(lambda z_: vocab_sharded_loss(z_, y, mesh, ignore_index=-1))(z)
    assert float(v) == 0.0 and not np.any(np.asarray(g))


def test_validation_errors(small):
    z, y = small
    mesh = make_mesh(1, ("model",))
    with pytest.raises(ValueError, match="one of"):
        vocab_sharded_loss(z, y, mesh, recipe="fastai")
    with pytest.raises(ValueError, match="epsilon"):
        vocab_sharded_loss(z, y, mesh, epsilon=1.5)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        vocab_sharded_loss(z, y.at[0, 0].set(16), mesh)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        vocab_sharded_loss(z, y.at[0, 0].set(12), mesh, num_classes=10)
    with pytest.raises(ValueError, match="num_classes"):
        vocab_sharded_loss(z, y, mesh, num_classes=17)
    with pytest.raises(ValueError, match="no axis 'model'"):
        vocab_sharded_loss(z, y, make_mesh(1, ("data",)))
    with pytest.raises(ValueError, match="K−1"):
        vocab_sharded_loss(z, jnp.zeros_like(y), mesh, recipe="off_target", num_classes=1)
    with pytest.raises(TypeError, match="Mesh"):
        vocab_sharded_loss(z, y, "model")
    with pytest.raises(ValueError, match="different mesh axes"):
        vocab_sharded_loss(z, y, mesh, batch_axis="model")


def test_mesh_helpers():
    n = jax.device_count()
    with pytest.raises(ValueError, match="device"):
        make_mesh(n + 1)
    with pytest.raises(ValueError, match="shape"):
        make_mesh(1, ("data", "model"), shape=(1, 2))
    mesh = make_mesh(1, ("data", "model"))
    assert dict(mesh.shape) == {"data": 1, "model": 1}
    with pytest.raises(ValueError, match="scalar"):
        shard_batch({"x": np.float32(1.0)}, mesh)
    tree = replicate({"w": np.ones(3, np.float32)}, mesh)
    assert tree["w"].sharding.is_fully_replicated


def test_data_parallel_trainer_is_the_train_step_of_fit():
    # One step convention for the whole project: the trainer compiles lsbench.train.make_train_step,
    # with the loss(logits, batch) of train.fit and its dropout keys fold_in(key(seed), step).
    import optax
    from flax import nnx

    from lsbench.experiments.muller.models import MLP
    from lsbench.parallel import DataParallelTrainer, recipe_loss_fn
    from lsbench.train import make_train_step

    rng = np.random.default_rng(1)
    batches = [{"image": rng.normal(size=(16, 8)).astype(np.float32),
                "label": rng.integers(0, 5, 16).astype(np.int32)} for _ in range(3)]
    loss_fn = recipe_loss_fn("uniform", epsilon=0.1)
    tx = optax.adam(1e-2)
    trainer = DataParallelTrainer(MLP(8, (16,), 5, dropout=0.5, rngs=nnx.Rngs(0)), tx, loss_fn,
                                  make_mesh(1), seed=3, donate=False)
    got = [float(trainer.step(b)) for b in batches]

    graphdef, params, rest = nnx.split(MLP(8, (16,), 5, dropout=0.5, rngs=nnx.Rngs(0)), nnx.Param, ...)
    step, opt_state, want = jax.jit(make_train_step(graphdef, tx, loss_fn)), tx.init(params), []
    for i, b in enumerate(batches):
        params, rest, opt_state, loss, _ = step(params, rest, opt_state, b, jax.random.fold_in(jax.random.key(3), i))
        want.append(float(loss))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert trainer.steps == 3 and len(set(got)) == 3
    # dropout is on: another seed gives other losses
    other = DataParallelTrainer(MLP(8, (16,), 5, dropout=0.5, rngs=nnx.Rngs(0)), tx, loss_fn, make_mesh(1), seed=4)
    assert [float(other.step(b)) for b in batches] != got
