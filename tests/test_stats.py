"""lsbench.stats: the paired seeds × images bootstrap and its verdict rule, on synthetic cases with known answers."""

import numpy as np
import pytest

from lsbench import metrics, stats

K = 10


def _outputs(labels, error_rate, rng, conf_low=0.5):
    """Outputs of a model that is wrong on a ``error_rate`` fraction (per seed row) of the images."""
    error_rate = np.broadcast_to(np.asarray(error_rate, np.float64).reshape(-1, 1), labels.shape)
    wrong = rng.random(labels.shape) < error_rate
    pred = np.where(wrong, (labels + 1) % K, labels)
    conf = rng.uniform(conf_low, 1.0, labels.shape)
    p_true = np.where(wrong, (1 - conf) / (K - 1), conf)
    sum_sq = conf ** 2 + (1 - conf) ** 2 / (K - 1)
    return {"label": labels.astype(np.uint8), "pred": pred.astype(np.uint8), "conf": conf.astype(np.float16),
            "p_true": p_true.astype(np.float16), "sum_sq": sum_sq.astype(np.float16),
            "conf_ts": conf.astype(np.float16), "p_true_ts": p_true.astype(np.float16)}


def _labels(seeds, images, seed=0):
    return np.random.default_rng(seed).integers(0, K, (seeds, images))


def test_identical_runs_are_equivalent_with_a_zero_interval():
    y = _labels(5, 400)
    a = _outputs(y, 0.2, np.random.default_rng(1))
    res = stats.compare_outputs(a, a)
    for m, r in res.items():
        assert r["delta"] == 0.0 and r["ci"] == [0.0, 0.0] and r["verdict"] == "equivalent", m
        assert r["p_better"] == 0.5


def test_a_clear_gain_is_better_and_a_clear_loss_worse():
    y = _labels(10, 3000)
    good, bad = _outputs(y, 0.08, np.random.default_rng(1)), _outputs(y, 0.14, np.random.default_rng(2))
    r = stats.paired_bootstrap(good, bad, "error")
    assert r["delta"] == pytest.approx(-0.06, abs=0.005)
    assert r["ci"][1] < 0 and r["verdict"] == "better" and r["p_better"] > 0.99
    r = stats.paired_bootstrap(bad, good, "error")
    assert r["ci"][0] > 0 and r["verdict"] == "worse" and r["p_better"] < 0.01
    assert stats.paired_bootstrap(good, bad, "nll")["verdict"] == "better"


def test_a_tiny_effect_measured_precisely_is_equivalent():
    """Δ = 0.1 pp with 20 × 20,000 paired images: the interval lies inside ±0.5 pp."""
    y = _labels(20, 20_000)
    rng = np.random.default_rng(3)
    base = _outputs(y, 0.10, rng)
    recipe = dict(base)
    flip = rng.random(y.shape) < 0.001  # 0.1 % of the images become wrong, nothing else changes
    recipe["pred"] = np.where(flip & (base["pred"] == y), (y + 1) % K, base["pred"]).astype(np.uint8)
    r = stats.paired_bootstrap(recipe, base, "error")
    assert 0 < r["delta"] < 0.002 and -0.005 < r["ci"][0] and r["ci"][1] < 0.005
    assert r["verdict"] == "equivalent"


def test_the_interval_holds_the_seed_noise_not_only_the_image_noise():
    """Many images but seeds that disagree (+2 pp on half of them, −2 pp on the other half): the mean
    effect is 0, and the seeds' spread makes the verdict inconclusive rather than equivalent."""
    y = _labels(6, 20_000)
    base = _outputs(y, 0.10, np.random.default_rng(4))
    recipe = _outputs(y, [0.12, 0.08, 0.12, 0.08, 0.12, 0.08], np.random.default_rng(5))
    r = stats.paired_bootstrap(recipe, base, "error")
    assert abs(r["delta"]) < 0.004
    assert r["ci"][0] < -0.005 or r["ci"][1] > 0.005
    assert r["verdict"] == "inconclusive"
    # with the images alone (one seed) the same spread would not be visible
    one = stats.paired_bootstrap({k: v[:1] for k, v in recipe.items()}, {k: v[:1] for k, v in base.items()}, "error")
    assert one["ci"][1] - one["ci"][0] < r["ci"][1] - r["ci"][0]


def test_few_images_and_a_moderate_effect_are_inconclusive():
    y = _labels(3, 100)
    r = stats.paired_bootstrap(_outputs(y, 0.10, np.random.default_rng(6)), _outputs(y, 0.12, np.random.default_rng(7)),
                               "error")
    assert r["ci"][0] < 0 < r["ci"][1] and r["verdict"] == "inconclusive"


def test_the_interval_covers_the_true_difference():
    """Per-image Bernoulli errors with known rates: the 95 % interval of Δ covers the true Δ."""
    y = _labels(10, 4000)
    covered = 0
    for rep in range(10):
        a = _outputs(y, 0.09, np.random.default_rng(100 + rep))
        b = _outputs(y, 0.11, np.random.default_rng(200 + rep))
        r = stats.paired_bootstrap(a, b, "error", n_resamples=500, seed=rep)
        covered += r["ci"][0] <= -0.02 <= r["ci"][1]
    assert covered >= 8


def test_observed_metrics_match_lsbench_metrics():
    """The statistic's point value is the mean over seeds of lsbench.metrics' per-seed metric."""
    rng = np.random.default_rng(8)
    seeds, n = 3, 500
    y = rng.integers(0, K, (seeds, n))
    out = {}
    for name in ("a", "b"):
        z = rng.normal(size=(seeds, n, K)) + 2.0 * np.eye(K)[y] * rng.uniform(0.5, 2, (seeds, 1, 1))
        p = np.stack([metrics.softmax(zs) for zs in z])
        rows = np.arange(n)
        out[name] = ({"label": y, "pred": p.argmax(-1), "conf": p.max(-1),
                      "p_true": np.stack([ps[rows, ys] for ps, ys in zip(p, y)]), "sum_sq": (p * p).sum(-1),
                      "conf_ts": p.max(-1)}, z, p)
    (oa, za, pa), (ob, zb, pb) = out["a"], out["b"]
    expect = {
        "error": np.mean([metrics.error_rate(pa[s], y[s]) - metrics.error_rate(pb[s], y[s]) for s in range(seeds)]),
        "nll": np.mean([metrics.nll(za[s], y[s]) - metrics.nll(zb[s], y[s]) for s in range(seeds)]),
        "brier": np.mean([metrics.brier(pa[s], y[s]) - metrics.brier(pb[s], y[s]) for s in range(seeds)]),
        "ece": np.mean([metrics.ece(pa[s], y[s]) - metrics.ece(pb[s], y[s]) for s in range(seeds)]),
    }
    for m, v in expect.items():
        assert stats.paired_bootstrap(oa, ob, m, n_resamples=50)["delta"] == pytest.approx(v, abs=1e-9), m


def test_verdict_rule_and_bad_input():
    assert stats.verdict(-0.004, 0.004, 0.005) == "equivalent"
    assert stats.verdict(-0.004, -0.001, 0.005) == "equivalent"  # significant but smaller than the margin
    assert stats.verdict(-0.03, -0.001, 0.005) == "better"
    assert stats.verdict(0.001, 0.03, 0.005) == "worse"
    assert stats.verdict(-0.01, 0.002, 0.005) == "inconclusive"
    with pytest.raises(ValueError, match="lo <= hi"):
        stats.verdict(0.1, 0.0, 0.005)
    with pytest.raises(ValueError, match="margin"):
        stats.verdict(0.0, 0.0, 0.0)
    y = _labels(2, 50)
    a = _outputs(y, 0.1, np.random.default_rng(0))
    b = _outputs(_labels(2, 50, seed=9), 0.1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="not paired"):
        stats.paired_bootstrap(a, b, "error")
    with pytest.raises(ValueError, match="same shape"):
        stats.paired_bootstrap(a, {k: v[:1] for k, v in a.items()}, "error")
    with pytest.raises(ValueError, match="metric must be one of"):
        stats.paired_bootstrap(a, a, "accuracy")
