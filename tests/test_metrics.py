"""lsbench.metrics against hand-computed cases and properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsbench import metrics

# --------------------------------------------------------------------------- hand-computed


def test_error_rate_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    assert metrics.error_rate(p, np.array([0, 2, 2])) == pytest.approx(1 / 3)
    assert metrics.error_rate(np.log(p), np.array([0, 1, 2])) == 0.0  # logits: same argmax


def test_nll_hand():
    assert metrics.nll(np.array([[0.0, 0.0]]), np.array([0])) == pytest.approx(math.log(2))
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    want = (math.log(math.e + math.e ** 2 + math.e ** 3) - 3
            + math.log(2 + math.e ** 5) - 0) / 2
    assert metrics.nll(z, np.array([2, 0])) == pytest.approx(want, rel=1e-12)
    # temperature divides the logits
    assert metrics.nll(z, np.array([2, 0]), temperature=2.0) == pytest.approx(
        metrics.nll(z / 2, np.array([2, 0])), rel=1e-12)


def test_nll_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    assert metrics.nll(z, np.array([0, 0])) == pytest.approx(0.0, abs=1e-12)
    assert metrics.nll(z, np.array([1, 0])) == pytest.approx(500.0)


def test_brier_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    # row 0, label 0: 0.3² + 0.2² + 0.1² = 0.14; row 1, label 2: 0.25 + 0.25 + 1 = 1.5
    assert metrics.brier(p, np.array([0, 2])) == pytest.approx((0.14 + 1.5) / 2)
    assert metrics.brier(np.eye(3), np.arange(3)) == 0.0
    assert metrics.brier(np.eye(3), np.array([1, 2, 0])) == pytest.approx(2.0)


def test_ece_and_bins_hand():
    # confidences 0.9, 0.9 (bin 13: (13/15, 14/15]) and 0.65, 0.65 (bin 9: (9/15, 10/15])
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.65, 0.35], [0.35, 0.65]])
    y = np.array([0, 1, 0, 1])
    bins = metrics.reliability_bins(p, y, 15)
    assert bins["count"][13] == 2 and bins["count"][9] == 2 and sum(bins["count"]) == 4
    assert bins["accuracy"][13] == 0.5 and bins["confidence"][13] == pytest.approx(0.9)
    assert bins["accuracy"][9] == 1.0 and bins["confidence"][9] == pytest.approx(0.65)
    assert bins["accuracy"][0] is None and bins["confidence"][0] is None
    assert len(bins["edges"]) == 16 and bins["edges"][0] == 0 and bins["edges"][-1] == 1
    # ECE = 0.5·|0.5 − 0.9| + 0.5·|1 − 0.65| = 0.2 + 0.175
    assert metrics.ece(p, y, 15) == pytest.approx(0.375)


def test_ece_bin_edges_are_right_closed():
    # c = 2/3 lies in (9/15, 10/15] for M = 15 -> bin 9; c = 1 lies in the last bin
    p = np.array([[2 / 3, 1 / 3], [1.0, 0.0]])
    bins = metrics.reliability_bins(p, np.array([0, 0]), 15)
    assert bins["count"][9] == 1 and bins["count"][14] == 1


def test_ece_one_bin_is_gap_of_means():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 4)) * 2
    y = rng.integers(0, 4, 50)
    p = metrics.softmax(z)
    acc = np.mean(p.argmax(1) == y)
    assert metrics.ece(p, y, 1) == pytest.approx(abs(acc - p.max(1).mean()))


def test_fit_temperature_recovers_the_true_temperature():
    rng = np.random.default_rng(1)
    n, k, t_true = 20000, 10, 2.5
    z = rng.normal(size=(n, k)) * 4
    p = metrics.softmax(z, t_true)
    y = np.array([rng.choice(k, p=row) for row in p])
    t = metrics.fit_temperature(z, y)
    assert t == pytest.approx(t_true, rel=0.05)
    assert metrics.fit_temperature(z, y) == t  # deterministic
    base = metrics.nll(z, y, t)
    for other in (t * 0.9, t * 1.1, 1.0):
        assert base <= metrics.nll(z, y, other)


def test_evaluate_with_temperature_keeps_error():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(200, 5)) * 3
    y = rng.integers(0, 5, 200)
    out = metrics.evaluate(z, y, temperature=1.7)
    assert out["error"] == metrics.error_rate(z, y)
    assert out["nll_ts"] == pytest.approx(metrics.nll(z, y, 1.7))
    assert out["ece_ts"] == pytest.approx(metrics.ece(metrics.softmax(z, 1.7), y))
    assert sum(out["reliability_ts"]["count"]) == 200 and out["n"] == 200
    plain = metrics.evaluate(z, y, with_bins=False)
    assert "reliability" not in plain and "ece_ts" not in plain


def test_summarize_hand():
    s = metrics.summarize([1.0, 2.0, 3.0])
    t = 4.302652729911275  # t_{0.975, 2}
    assert s["n"] == 3 and s["mean"] == 2.0 and s["std"] == pytest.approx(1.0)
    assert s["ci"] == pytest.approx(t / math.sqrt(3), rel=1e-9)
    assert s["lo"] == pytest.approx(2 - s["ci"]) and s["hi"] == pytest.approx(2 + s["ci"])
    one = metrics.summarize([0.25])
    assert one["mean"] == 0.25 and one["std"] is None and one["ci"] is None


def test_paired_difference_hand():
    d = metrics.paired_difference({0: 1.0, 1: 2.0, 2: 4.0}, {0: 0.0, 1: 1.0, 2: 2.0, 3: 5.0})
    assert d["seeds"] == [0, 1, 2]
    assert d["mean"] == pytest.approx(4 / 3) and d["std"] == pytest.approx(math.sqrt(1 / 3))
    assert metrics.paired_difference({0: 1.0}, {1: 1.0}) is None
    # pairing removes a shared seed effect: constant differences have zero spread
    same = metrics.paired_difference({0: 5.0, 1: 9.0, 2: 1.0}, {0: 4.0, 1: 8.0, 2: 0.0})
    assert same["mean"] == pytest.approx(1.0) and same["ci"] == pytest.approx(0.0)


@pytest.mark.parametrize("call", [
    lambda: metrics.nll(np.zeros((2, 3)), np.array([0, 3])),
    lambda: metrics.nll(np.zeros((2, 1)), np.array([0, 0])),
    lambda: metrics.nll(np.array([[0.0, np.nan]]), np.array([0])),
    lambda: metrics.brier(np.array([[0.5, 0.6]]), np.array([0])),
    lambda: metrics.ece(np.array([[0.5, 0.5]]), np.array([0]), n_bins=0),
    lambda: metrics.error_rate(np.zeros((0, 3)), np.zeros(0, int)),
    lambda: metrics.softmax(np.zeros((1, 2)), temperature=0.0),
    lambda: metrics.summarize([]),
    lambda: metrics.summarize([1.0, float("nan")]),
])
def test_bad_input_raises(call):
    with pytest.raises((ValueError, TypeError)):
        call()


def test_float_labels_rejected():
    with pytest.raises(TypeError):
        metrics.nll(np.zeros((2, 3)), np.array([0.0, 1.0]))


# --------------------------------------------------------------------------- properties

_logits = hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(2, 6)),
                     elements=st.floats(-20, 20, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(_logits, st.integers(0, 2 ** 31 - 1), st.integers(1, 20))
def test_properties(z, seed, n_bins):
    n, k = z.shape
    y = np.random.default_rng(seed).integers(0, k, n)
    p = metrics.softmax(z)
    e = metrics.ece(p, y, n_bins)
    assert 0.0 <= e <= 1.0
    assert 0.0 <= metrics.brier(p, y) <= 2.0 + 1e-12
    assert metrics.nll(z, y) >= 0.0
    bins = metrics.reliability_bins(p, y, n_bins)
    assert sum(bins["count"]) == n
    # ECE recomputed from the bins
    manual = sum(c / n * abs(a - f) for c, a, f in zip(bins["count"], bins["accuracy"], bins["confidence"]) if c)
    assert e == pytest.approx(manual)
    # shifting every logit of a row leaves everything unchanged
    assert metrics.nll(z + 3.0, y) == pytest.approx(metrics.nll(z, y), abs=1e-9)
    assert 0.0 <= metrics.error_rate(p, y) <= 1.0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=10), st.floats(-10, 10))
def test_summary_properties(xs, shift):
    s = metrics.summarize(xs)
    assert s["lo"] <= s["mean"] <= s["hi"]
    t = metrics.summarize([x + shift for x in xs])
    assert t["mean"] == pytest.approx(s["mean"] + shift, abs=1e-6)
    assert t["ci"] == pytest.approx(s["ci"], rel=1e-6, abs=1e-6)


def test_perfect_confident_predictions_are_calibrated():
    y = np.arange(6) % 3
    p = np.eye(3)[y]
    assert metrics.ece(p, y) == 0.0 and metrics.error_rate(p, y) == 0.0 and metrics.brier(p, y) == 0.0
