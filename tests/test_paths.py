"""Plain, chunked, fused-linear and vocabulary-sharded paths give the same values (issue 11).

Every recipe is run on every path that supports it (``tests/_paths_worker.py``,
in a subprocess with 8 CPU devices, the vocabulary split over 4 of them) on
the same ``logits = hidden @ weight + bias``; loss and gradients (with
respect to ``hidden``, ``weight`` and ``bias``) must agree, also for a logit
offset of 1e6, out-of-range labels (NaN on every path) and masked rows
holding NaN/inf (exact zeros on every path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("_paths_worker.py")
TOL = {"float32": (2e-5, 1e-6), "float64": (1e-11, 1e-13)}


@pytest.fixture(scope="module")
def report():
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": " ".join(flags + ["--xla_force_host_platform_device_count=8"])}
    proc = subprocess.run([sys.executable, str(WORKER)], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"paths worker failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout[-2000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out.pop("devices") == 8
    return out


def _cases(report, case):
    return {k: v for k, v in report.items() if k.split("/")[1] == case}


@pytest.mark.parametrize("case", ["plain", "quantized", "offset", "masked_nan"])
def test_every_path_agrees_with_the_plain_recipe(report, case):
    cases = _cases(report, case)
    assert len(cases) == 10  # 5 recipes × 2 dtypes
    for key, paths in cases.items():
        rtol, atol = TOL[key.split("/")[0]]
        want = paths["plain"]
        assert np.isfinite(want["loss"]), key
        for path, got in paths.items():
            np.testing.assert_allclose(got["loss"], want["loss"], rtol=rtol, err_msg=f"{key} {path}")
            for g, gw in zip(got["grads"], want["grads"]):
                np.testing.assert_allclose(g, gw, rtol=rtol * 10, atol=atol, err_msg=f"{key} {path}")
        assert len(paths) >= 2


def test_the_offset_changes_no_value_on_any_path(report):
    """optax's stability criterion: a shift of 1e6 moves the gradient by at most 1e-7 (float32)."""
    for key, paths in _cases(report, "offset").items():
        base = report[key.replace("/offset/", "/quantized/")]
        for path, got in paths.items():
            np.testing.assert_allclose(got["loss"], base[path]["loss"], rtol=1e-6, err_msg=f"{key} {path}")
            for g, gw in zip(got["grads"], base[path]["grads"]):
                np.testing.assert_allclose(g, gw, atol=1e-6, err_msg=f"{key} {path}")


def test_out_of_range_labels_give_nan_loss_and_nan_gradient_on_every_path(report):
    for key, paths in _cases(report, "bad_labels").items():
        for path, got in paths.items():
            assert np.isnan(got["loss"]), f"{key} {path}"
            g_hidden = np.asarray(got["grads"][0])
            assert np.isnan(g_hidden[[2, 7]]).all(), f"{key} {path}: rows with bad labels must have NaN gradients"


def test_masked_rows_holding_nan_get_exact_zero_gradients(report):
    for key, paths in _cases(report, "masked_nan").items():
        for path, got in paths.items():
            g_hidden = np.asarray(got["grads"][0])
            assert (g_hidden[[4, 9]] == 0).all(), f"{key} {path}"
            assert all(np.isfinite(np.asarray(g)).all() for g in got["grads"]), f"{key} {path}"
