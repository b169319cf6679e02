"""lsbench.train: the one-cycle schedule, the optimiser, the recipe losses and deterministic fitting."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lsbench import train
from lsbench.losses import RECIPES, self_correction_loss
from lsbench.models import FastaiHead

CFG = train.TrainConfig()


# --------------------------------------------------------------------------- schedule


def _values(fn, n):
    return np.asarray([float(fn(t)) for t in range(n + 1)])


def test_fastai_v1_defaults():
    assert (CFG.epochs, CFG.batch_size, CFG.lr, CFG.weight_decay) == (4, 64, 3e-3, 1e-2)
    assert (CFG.div, CFG.pct_start, CFG.moms, CFG.b2) == (25.0, 0.3, (0.95, 0.85, 0.95), 0.99)
    assert CFG.div_final == 25.0 * 1e4  # v1: low_lr / 1e4 with low_lr = lr / 25
    assert train.FASTAI_V2.pct_start == 0.25 and train.FASTAI_V2.div_final == 1e5
    assert train.TrainConfig.from_dict(CFG.to_dict()) == CFG


def test_one_cycle_shape():
    n = 200
    lr, b1 = train.one_cycle_schedules(CFG, n)
    a1 = int(n * CFG.pct_start)
    v, m = _values(lr, n), _values(b1, n)
    assert v[0] == pytest.approx(3e-3 / 25, rel=1e-6)
    assert v[a1] == pytest.approx(3e-3, rel=1e-6) and v.argmax() == a1
    assert v[n] == pytest.approx(3e-3 / 25e4, rel=1e-4)
    assert v[a1 // 2] == pytest.approx((3e-3 / 25 + 3e-3) / 2, rel=1e-5)  # cosine half-way = mean
    assert np.all(np.diff(v[:a1 + 1]) > 0) and np.all(np.diff(v[a1:]) < 0)
    assert m[0] == pytest.approx(0.95) and m[a1] == pytest.approx(0.85) and m[n] == pytest.approx(0.95)
    assert m.argmin() == a1
    # momentum is the mirror image of the learning rate in both phases
    up = (v[:a1 + 1] - v[0]) / (v[a1] - v[0])
    down = (v[a1:] - v[n]) / (v[a1] - v[n])
    np.testing.assert_allclose(up, (0.95 - m[:a1 + 1]) / 0.1, atol=2e-5)
    np.testing.assert_allclose(down, (0.95 - m[a1:]) / 0.1, atol=2e-5)


@pytest.mark.parametrize("n", [1, 7, 100, 229])
def test_lr_equals_optax_onecycle(n):
    lr, _ = train.one_cycle_schedules(CFG, n)
    ref = optax.cosine_onecycle_schedule(n, CFG.lr, CFG.pct_start, CFG.div, CFG.div_final / CFG.div)
    np.testing.assert_allclose(_values(lr, n), _values(ref, n), rtol=1e-5)


def test_bad_config_rejected():
    for kw in ({"epochs": 0}, {"lr": -1.0}, {"pct_start": 1.5}, {"moms": (0.9, 1.0, 0.9)}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            train.TrainConfig(**kw)


# --------------------------------------------------------------------------- optimiser


def test_adam_with_scheduled_b1_matches_pytorch_semantics():
    """Adam with β1 = momentum schedule, PyTorch's bias correction, plus decoupled decay (numpy reference)."""
    n = 12
    cfg = train.TrainConfig(lr=0.05)
    tx = train.make_optimizer(cfg, n)
    rng = np.random.default_rng(0)
    p = {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)}
    state = tx.init(p)
    lr_s, b1_s = train.one_cycle_schedules(cfg, n)
    ref, m, v = np.asarray(p["w"], np.float64), 0.0, 0.0
    for t in range(n):
        g = rng.normal(size=(3, 2))
        upd, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, p)
        p = optax.apply_updates(p, upd)
        lr, b1 = float(lr_s(t)), float(b1_s(t))
        assert float(state[0].hyperparams["b1"]) == pytest.approx(b1, rel=1e-6)
        m = b1 * m + (1 - b1) * g
        v = cfg.b2 * v + (1 - cfg.b2) * g * g
        mhat, vhat = m / (1 - b1 ** (t + 1)), v / (1 - cfg.b2 ** (t + 1))
        ref = ref * (1 - lr * cfg.weight_decay) - lr * mhat / (np.sqrt(vhat) + cfg.eps)
    np.testing.assert_allclose(np.asarray(p["w"]), ref, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("wd_bn_bias", [True, False])
def test_decoupled_weight_decay_with_zero_gradients(wd_bn_bias):
    n = 10
    cfg = train.TrainConfig(weight_decay=0.5, lr=0.1, wd_bn_bias=wd_bn_bias)
    tx = train.make_optimizer(cfg, n)
    p = {"fc": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
    state = tx.init(p)
    lr_s, _ = train.one_cycle_schedules(cfg, n)
    zero = jax.tree.map(jnp.zeros_like, p)
    for _ in range(n):
        upd, state = tx.update(zero, state, p)
        p = optax.apply_updates(p, upd)
    factor = math.prod(1 - float(lr_s(t)) * 0.5 for t in range(n))
    np.testing.assert_allclose(p["fc"]["kernel"], factor, rtol=1e-5)
    np.testing.assert_allclose(p["fc"]["bias"], factor if wd_bn_bias else 1.0, rtol=1e-5)


# --------------------------------------------------------------------------- losses


def test_make_loss_matches_the_recipes():
    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, 8))
    cases = {
        ("uniform", (("epsilon", 0.0),)): RECIPES["uniform"].loss(z, y, epsilon=0.0),
        ("off_target", (("epsilon", 0.1),)): RECIPES["off_target"].loss(z, y, epsilon=0.1),
        ("fastreid", (("alpha", 0.2), ("epsilon", -1.0))): RECIPES["fastreid"].loss(z, y, epsilon=-1.0, alpha=0.2),
        ("tf_onehot", (("epsilon", 0.1),)): RECIPES["uniform"].loss(z, y, epsilon=0.1),
        ("self_correction", (("alpha", 0.1), ("epsilon", 0.0), ("recipe", "uniform"))):
            self_correction_loss(z, y, alpha=0.1, recipe="uniform", epsilon=0.0),
    }
    for (recipe, params), want in cases.items():
        fn = train.make_loss(recipe, dict(params), 5)
        assert float(fn(z, {"label": y})) == pytest.approx(float(want), rel=1e-5), recipe
        assert train.make_loss(recipe, dict(params), 5) is fn  # cached: jit caches are shared


@pytest.mark.parametrize("recipe,params", [("uniform", {"epsilon": 2.0}), ("nope", {}),
                                           ("uniform", {"alpha": 0.1}), ("distillation", {})])
def test_make_loss_rejects_bad_input_early(recipe, params):
    with pytest.raises((ValueError, TypeError)):
        train.make_loss(recipe, params, 5)


# --------------------------------------------------------------------------- fitting


def _toy(n=192, d=16, k=5, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 2
    y = rng.integers(0, k, n).astype(np.int32)
    x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    return x, y


def _head(seed, d=16, k=5):
    return FastaiHead(d, k, hidden=32, linear_bias=True, rngs=nnx.Rngs(seed))


SMALL = train.TrainConfig(epochs=3, batch_size=32, lr=1e-2)


def _arrays(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))


def test_fit_is_deterministic_and_learns():
    x, y = _toy()
    loss = train.make_loss("uniform", {"epsilon": 0.1}, 5)
    model = _head(0)
    before = _arrays(model)
    m1, log1 = train.fit(model, {"image": x, "label": y}, loss, SMALL, seed=0, progress=False)
    m2, log2 = train.fit(_head(0), {"image": x, "label": y}, loss, SMALL, seed=0, progress=False)
    # the input model is untouched
    jax.tree.map(np.testing.assert_array_equal, before, _arrays(model))
    # same seed: bit-identical parameters, statistics and log (timings aside)
    jax.tree.map(np.testing.assert_array_equal, _arrays(m1), _arrays(m2))
    strip = lambda log: [{k: v for k, v in e.items() if k != "seconds"} for e in log]  # noqa: E731
    assert strip(log1) == strip(log2)
    assert [e["epoch"] for e in log1] == [1, 2, 3] and all(e["steps"] == 6 for e in log1)
    assert log1[-1]["loss"] < log1[0]["loss"]
    z = train.predict(m1, x)
    assert z.shape == (192, 5) and np.mean(z.argmax(1) != y) < 0.4  # chance: 0.8
    # another seed gives another model
    m3, _ = train.fit(_head(1), {"image": x, "label": y}, loss, SMALL, seed=1, progress=False)
    assert not np.array_equal(train.predict(m3, x), z)


def test_fit_updates_only_the_trainable_filter():
    x, y = _toy()
    loss = train.make_loss("uniform", {"epsilon": 0.0}, 5)
    model = _head(0)
    frozen = np.asarray(model.fc1.kernel[...])
    trained, _ = train.fit(model, {"image": x, "label": y}, loss, SMALL, seed=0, progress=False,
                           trainable=nnx.All(nnx.Param, nnx.PathContains("fc2")))
    np.testing.assert_array_equal(np.asarray(trained.fc1.kernel[...]), frozen)
    assert not np.array_equal(np.asarray(trained.fc2.kernel[...]), np.asarray(model.fc2.kernel[...]))
    # batch statistics still follow the data (BN in train mode)
    assert not np.array_equal(np.asarray(trained.bn1.mean[...]), np.asarray(model.bn1.mean[...]))


def test_fit_with_seeded_augmentation_is_deterministic():
    x, y = _toy()
    loss = train.make_loss("uniform", {"epsilon": 0.0}, 5)
    seen = []

    def jitter(xb, rng):
        noise = rng.normal(size=xb.shape).astype(np.float32)
        seen.append(float(noise[0, 0]))
        return xb + 0.1 * noise

    cfg = train.TrainConfig(epochs=1, batch_size=64)
    a, _ = train.fit(_head(0), {"image": x, "label": y}, loss, cfg, seed=4, batch_transform=jitter, progress=False)
    first = list(seen)
    b, _ = train.fit(_head(0), {"image": x, "label": y}, loss, cfg, seed=4, batch_transform=jitter, progress=False)
    assert seen[len(first):] == first and len(first) == 3
    np.testing.assert_array_equal(train.predict(a, x), train.predict(b, x))


def test_small_training_set_is_one_batch():
    assert train.steps_per_epoch(3680, 64) == (57, 64)
    assert train.steps_per_epoch(33, 64) == (1, 33)
    with pytest.raises(ValueError):
        train.steps_per_epoch(0, 64)
    x, y = _toy(n=20)
    _, log = train.fit(_head(0), {"image": x, "label": y}, train.make_loss("uniform", {"epsilon": 0.0}, 5),
                       train.TrainConfig(epochs=2), seed=0, progress=False)
    assert [e["steps"] for e in log] == [1, 1]


def test_predict_pads_the_last_batch():
    x, y = _toy(n=70)
    m, _ = train.fit(_head(0), {"image": x, "label": y}, train.make_loss("uniform", {"epsilon": 0.0}, 5),
                     train.TrainConfig(epochs=1, batch_size=32), seed=0, progress=False)
    full = train.predict(m, x, batch_size=70)
    np.testing.assert_allclose(train.predict(m, x, batch_size=32), full, rtol=1e-5, atol=1e-5)


def test_fit_rejects_bad_input():
    x, y = _toy()
    loss = train.make_loss("uniform", {"epsilon": 0.0}, 5)
    with pytest.raises(ValueError):
        train.fit(_head(0), {"image": x[:10], "label": y}, loss, SMALL, seed=0, progress=False)
    with pytest.raises(TypeError):
        train.fit(_head(0), {"image": x, "label": y.astype(np.float32)}, loss, SMALL, seed=0, progress=False)


def test_fit_gives_the_loss_every_array_of_data_row_aligned():
    # The loss reads its targets from another key than "label": the model must learn those, which
    # it only can if every array of `data` is shuffled and batched with the same rows.
    x, y = _toy()
    shifted = ((y + 1) % 5).astype(np.int32)
    uniform = RECIPES["uniform"].loss

    def loss(logits, batch):
        return uniform(logits, batch["target"], epsilon=0.0)

    m, _ = train.fit(_head(0), {"image": x, "label": y, "target": shifted}, loss, SMALL, seed=0, progress=False)
    assert np.mean(train.predict(m, x).argmax(1) == shifted) > 0.6  # chance: 0.2
    with pytest.raises(TypeError, match="'image'"):
        train.fit(_head(0), {"label": y}, loss, SMALL, seed=0, progress=False)
    with pytest.raises(ValueError, match="target"):
        train.fit(_head(0), {"image": x, "label": y, "target": shifted[:5]}, loss, SMALL, seed=0, progress=False)


# --------------------------------------------------------------------------- many seeds in one program


def _seed_blobs(n=200, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n).astype(np.int32)
    x = (rng.normal(size=(n, d)) + 2.0 * np.eye(k, d)[y]).astype(np.float32)
    return {"image": x, "label": y}


def _seed_head(seed, d=12, k=4):
    return FastaiHead(d, k, hidden=16, rngs=nnx.Rngs(seed))


def _seed_params(model):
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param))]


def test_fit_seeds_equals_each_seed_trained_alone():
    """A seed trained among others (vmapped) follows the same trajectory as that seed alone with fit:
    same init, shuffles, augmentation and dropout keys; only float summation order may differ."""
    data, cfg = _seed_blobs(), train.TrainConfig(epochs=2, batch_size=32)
    loss = train.make_loss("uniform", {"epsilon": 0.1}, 4)

    def jitter(xb, rng):  # seeded host augmentation: each seed must get its own stream
        return xb + rng.normal(scale=0.1, size=xb.shape).astype(xb.dtype)

    seeds = [3, 0, 7]
    together = train.fit_seeds(_seed_head, data, loss, cfg, seeds, batch_transform=jitter, progress=False)
    assert len(together) == 3
    alone = {s: train.fit(_seed_head(s), data, loss, cfg, seed=s, batch_transform=jitter, progress=False)
             for s in seeds}
    for s, (model, log) in zip(seeds, together):
        ref_model, ref_log = alone[s]
        for a, b in zip(_seed_params(model), _seed_params(ref_model)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        assert [e["steps"] for e in log] == [e["steps"] for e in ref_log] == [6, 6]
        assert [e["train_error"] for e in log] == [e["train_error"] for e in ref_log]
        np.testing.assert_allclose([e["loss"] for e in log], [e["loss"] for e in ref_log], rtol=1e-5)
    # different seeds really are different runs, and a rerun is bit-identical
    assert not np.array_equal(_seed_params(together[0][0])[0], _seed_params(together[1][0])[0])
    again = train.fit_seeds(_seed_head, data, loss, cfg, seeds, batch_transform=jitter, progress=False)
    for (m1, _), (m2, _) in zip(together, again):
        assert all(np.array_equal(a, b) for a, b in zip(_seed_params(m1), _seed_params(m2)))


def test_fit_seeds_takes_one_training_set_per_seed():
    cfg = train.TrainConfig(epochs=1, batch_size=32)
    loss = train.make_loss("uniform", {"epsilon": 0.0}, 4)
    sets = [_seed_blobs(seed=1), _seed_blobs(seed=2)]
    together = train.fit_seeds(_seed_head, sets, loss, cfg, [0, 1], progress=False)
    for (model, _), s, d in zip(together, [0, 1], sets):
        ref, _ = train.fit(_seed_head(s), d, loss, cfg, seed=s, progress=False)
        for a, b in zip(_seed_params(model), _seed_params(ref)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_fit_seeds_rejects_bad_input():
    data, cfg = _seed_blobs(), train.TrainConfig(epochs=1, batch_size=32)
    loss = train.make_loss("uniform", {"epsilon": 0.0}, 4)
    with pytest.raises(ValueError, match="distinct"):
        train.fit_seeds(_seed_head, data, loss, cfg, [1, 1], progress=False)
    with pytest.raises(ValueError, match="one per seed"):
        train.fit_seeds(_seed_head, [data], loss, cfg, [0, 1], progress=False)
    with pytest.raises(ValueError, match="same keys and number of rows"):
        train.fit_seeds(_seed_head, [data, _seed_blobs(n=100)], loss, cfg, [0, 1], progress=False)
    with pytest.raises(ValueError, match="same structure"):
        train.fit_seeds(lambda s: FastaiHead(12, 4, hidden=8 + s, rngs=nnx.Rngs(s)), data, loss, cfg, [0, 1],
                        progress=False)
