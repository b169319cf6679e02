"""``lsbench.bench`` and ``python -m lsbench bench``: cases, memory plumbing, JSON schema, tables.

Timings are measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import copy
import json
import re

import jax
import jax.numpy as jnp
import pytest

from lsbench import bench
from lsbench.cli import main
from lsbench.report.bench import render_tables


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``--quick`` run of a subset (float32: uniform, chunked, linear, peers, floors)."""
    out = tmp_path_factory.mktemp("bench")
    rc = main(["bench", "--quick", "--no-progress", "--dtypes", "float32", "--rss", "none",
               "--cases", "uniform,chunked*,linear*,optax,torch", "--out", str(out)])
    files = list((out / "results").glob("bench-*.json"))
    assert len(files) == 1
    return rc, out, json.loads(files[0].read_text())


def test_quick_run_writes_a_valid_document_and_tables(quick_run):
    rc, out, doc = quick_run
    assert rc == 0
    bench.validate(doc)
    assert doc["schema"] == bench.SCHEMA
    assert re.fullmatch(r"(cpu-[a-z0-9-]+-\d+c|gpu-[a-z0-9-]+)", doc["machine"])
    assert doc["environment"]["jax_backend"] == jax.default_backend()
    assert doc["environment"]["packages"]["jax"] == jax.__version__
    assert doc["settings"]["quick"] is True
    ids = {r["id"] for r in doc["results"]}
    for floor in bench.FLOORS:
        assert f"floor:{floor}/floor/float32/2x8x100" in ids
    assert "lsbench:uniform/fwd+bwd/float32/2x8x100" in ids
    assert "lsbench-chunked:chunked[uniform]/fwd+bwd:donated/float32/2x8x100" in ids
    assert "lsbench-linear:linear[uniform]/fwd+bwd/float32/16x8x300" in ids
    assert not any(r["name"] == "fastai" for r in doc["results"])  # --cases filtered
    assert all(r["status"] in ("ok", "skipped") for r in doc["results"])
    # no temporary files left behind by the atomic writes
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]
    md = (out / "tables" / "bench.md").read_text()
    tex = (out / "tables" / "bench.tex").read_text()
    assert "| float32 | 2x8x100 |" in md and "## targets" in md
    assert r"\toprule" in tex and r"\bottomrule" in tex and tex.count(r"\begin{tabular}") == 2


def test_ratios_are_medians_divided_by_the_group_reference(quick_run):
    _, _, doc = quick_run
    res = {r["id"]: r for r in doc["results"]}
    fb = res["lsbench:uniform/fwd+bwd/float32/2x8x100"]
    rw = res["floor:read+write/floor/float32/2x8x100"]
    assert fb["ratios"]["read+write"] == pytest.approx(fb["time_s"]["median"] / rw["time_s"]["median"])
    optax = res["optax:optax/fwd+bwd/float32/2x8x100"]
    assert fb["ratios"]["optax"] == pytest.approx(fb["time_s"]["median"] / optax["time_s"]["median"])
    for r in doc["results"]:
        if r["status"] == "ok":
            t = r["time_s"]
            assert t["min"] <= t["q1"] <= t["median"] <= t["q3"] and t["iqr"] >= 0 and t["rounds"] >= 2
    lin = res["lsbench-linear:linear[uniform]/fwd/float32/16x8x300"]
    assert "unfused" in lin["ratios"]


def test_xla_memory_is_recorded_and_targets_are_evaluated(quick_run):
    _, _, doc = quick_run
    res = {r["id"]: r for r in doc["results"]}
    fb = res["lsbench:uniform/fwd+bwd/float32/2x8x100"]["memory"]["xla"]
    assert fb["output_bytes"] >= 2 * 8 * 100 * 4  # the gradient is an output
    assert fb["extra_bytes"] == fb["temp_bytes"] + fb["output_bytes"] - fb["alias_bytes"]
    donated = res["lsbench-chunked:chunked[uniform]/fwd+bwd:donated/float32/2x8x100"]["memory"]["xla"]
    assert donated["alias_bytes"] == 2 * 8 * 100 * 4  # written in place
    names = [t["name"] for t in doc["targets"]]
    assert any(n.startswith("linear fwd+bwd float32 temporaries") for n in names)
    for t in doc["targets"]:
        assert t["op"] in ("<=", ">=") and isinstance(t["limit"], (int, float))


def test_xla_memory_of_a_known_program():
    x = jax.ShapeDtypeStruct((64, 128), jnp.float32)
    compiled = jax.jit(lambda a: a * 2).lower(x).compile()
    mem = bench.xla_memory(compiled, 64 * 128 * 4)
    assert mem["output_bytes"] == 64 * 128 * 4
    assert mem["extra_ratio"] == pytest.approx(1.0, abs=0.05)
    donated = jax.jit(lambda a: a * 2, donate_argnums=0).lower(x).compile()
    assert bench.xla_memory(donated, 64 * 128 * 4)["extra_bytes"] < 64 * 128


def test_rss_child_measures_the_gradient_buffer():
    """A measurement, not a timing: fwd+bwd at 16 MB must add about one gradient of resident memory."""
    case = bench.Case("uniform", "lsbench", "fwd+bwd", "float32", (128, 32768))
    res = bench.measure_rss(case)
    assert res["method"] in ("VmHWM-after-clear_refs", "ru_maxrss")
    if res["method"] == "VmHWM-after-clear_refs":
        assert 0.8 <= res["extra_ratio"] <= 2.0, res
    fwd = bench.measure_rss(bench.Case("uniform", "lsbench", "fwd", "float32", (128, 32768)))
    if fwd["method"] == "VmHWM-after-clear_refs":
        assert fwd["extra_ratio"] < 0.5, fwd


def test_cases_filters_and_shapes():
    cases = bench.make_cases([(4, 10)], ["float32"], [(2, 3, 10)])
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    assert ids[0] == "floor:read/floor/float32/4x10"
    kept = bench.select_cases(cases, ["optax"])
    assert {c.impl for c in kept} == {"floor", "optax"}
    assert bench.parse_shape("8x512x32000") == (8, 512, 32000)
    with pytest.raises(ValueError):
        bench.parse_shape("1024")
    with pytest.raises(ValueError):
        bench.Settings.make(dtypes=["float16"])
    assert main(["bench", "--shapes", "12xq", "--out", "/nonexistent"]) == 2


def test_validate_rejects_broken_documents(quick_run):
    _, _, doc = quick_run
    bad = copy.deepcopy(doc)
    bad["schema"] = "other/1"
    with pytest.raises(ValueError, match="schema"):
        bench.validate(bad)
    bad = copy.deepcopy(doc)
    del bad["results"][0]["time_s"]
    with pytest.raises(ValueError, match="time_s"):
        bench.validate(bad)
    bad = copy.deepcopy(doc)
    bad["results"][0]["status"] = "maybe"
    with pytest.raises(ValueError, match="status"):
        bench.validate(bad)


def test_tables_render_from_the_json_alone(quick_run):
    _, _, doc = quick_run
    roundtrip = json.loads(json.dumps(doc))
    tex, md = render_tables(roundtrip)
    assert doc["machine"] in md and doc["machine"] in tex
    assert r"2$\times$8$\times$100" in tex
