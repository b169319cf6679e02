"""``lsbench.bench`` and ``python -m lsbench bench``: cases, memory plumbing, JSON schema, tables.

Timings are measured by the benchmark, never asserted here.
"""

from __future__ import annotations

import argparse
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
    before = jax.config.read("jax_cpu_enable_async_dispatch")
    try:
        rc = main(["bench", "--quick", "--no-progress", "--dtypes", "float32", "--rss", "none",
                   "--cases", "uniform,chunked*,linear*,optax,torch", "--out", str(out)])
    finally:  # the command turns async dispatch off for its process; leave the other tests as they were
        jax.config.update("jax_cpu_enable_async_dispatch", before)
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
    assert doc["environment"]["cpu_dispatch"] == ("synchronous" if jax.default_backend() == "cpu" else None)
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


def test_quick_run_records_load_spread_and_no_absolute_path(quick_run):
    _, _, doc = quick_run
    env = doc["environment"]
    for key in ("loadavg_start", "loadavg_end"):
        assert env[key] is None or len(env[key]) == 3
    assert env["device_platform"] == jax.devices()[0].platform
    assert env["packages"]["jaxlib"] is not None and "sympy" in env["packages"]
    assert "XLA_FLAGS" in env["runtime"]
    s = doc["settings"]
    assert s["timing"] == "interleaved" and 0 < s["noise_bound"] < 1
    for r in doc["results"]:
        if r["status"] == "ok":
            t = r["time_s"]
            assert s["min_passes"] <= t["passes"] <= s["max_passes"] and len(t["pass_medians"]) == t["passes"]
            assert t["spread"] == pytest.approx(bench.relative_spread(t["pass_medians"]))
            assert r["noisy"] == (t["spread"] > s["noise_bound"])
    from lsbench import provenance
    provenance.assert_no_absolute_paths(doc)


class _Clock:
    """A fake clock (``lsbench.bench.measure.timer``) that only the fake cases advance."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _fake_case(clock, name, order, durations):
    """A Prepared case that takes ``durations(call_number)`` fake seconds and logs its name per call."""
    count = [0]

    def run():
        clock.now += durations(count[0])
        count[0] += 1
        order.append(name)
        return name
    return bench.Prepared(run=run, setup=tuple)


def test_interleaved_passes_alternate_and_stop_at_the_noise_bound(monkeypatch):
    from lsbench.bench import measure

    clock, order = _Clock(), []
    monkeypatch.setattr(measure, "timer", clock)
    steady = _fake_case(clock, "a", order, lambda i: 1e-3)
    also = _fake_case(clock, "b", order, lambda i: 2e-3)
    out = bench.time_interleaved({"a": steady, "b": also}, min_rounds=6, max_rounds=2, min_time_s=0.0,
                                 noise_bound=0.05, min_passes=3, max_passes=10)
    assert out["a"]["passes"] == 3 and out["a"]["spread"] == pytest.approx(0, abs=1e-9) and not out["a"]["noisy"]
    assert out["b"]["median"] == pytest.approx(2e-3) and out["a"]["rounds"] == 3 * 2
    timed = order[4:]  # after two warm-up calls each
    assert timed == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]  # reversed on odd passes

    # a case whose pass medians keep jumping by 2x is timed to max_passes and flagged
    clock, order = _Clock(), []
    monkeypatch.setattr(measure, "timer", clock)
    jumpy = _fake_case(clock, "j", order, lambda i: 1e-3 if (i // 2) % 2 else 2e-3)
    calm = _fake_case(clock, "c", order, lambda i: 1e-3)
    out = bench.time_interleaved({"j": jumpy, "c": calm}, min_rounds=6, max_rounds=2, min_time_s=0.0,
                                 noise_bound=0.05, min_passes=3, max_passes=6)
    assert out["j"]["passes"] == 6 and out["j"]["noisy"] and out["j"]["spread"] > 0.05
    assert out["c"]["passes"] == 6 and not out["c"]["noisy"]  # timed alongside, to the end
    with pytest.raises(ValueError, match="noise_bound"):
        bench.time_interleaved({}, noise_bound=5)


def test_a_failing_case_is_dropped_and_reported(monkeypatch):
    def boom():
        raise RuntimeError("broken case")

    errors = []
    ok = bench.Prepared(run=lambda: 1, setup=tuple)
    out = bench.time_interleaved({"bad": bench.Prepared(run=boom, setup=tuple), "ok": ok}, min_rounds=1,
                                 min_time_s=0.0, min_passes=1, max_passes=1,
                                 on_error=lambda c, e: errors.append((c, str(e))))
    assert list(out) == ["ok"] and errors == [("bad", "broken case")]


def _bench_args(out, *extra):
    return ["bench", "--quick", "--no-progress", "--dtypes", "float32", "--rss", "none", "--shapes", "4x10",
            "--linear-shapes", "none", "--cases", "optax", "--out", str(out), *extra]


def test_a_noisy_run_does_not_overwrite_a_recorded_file_unless_accepted(tmp_path, capsys):
    assert main(_bench_args(tmp_path, "--accept-noisy")) == 0
    (path,) = (tmp_path / "results").glob("bench-*.json")
    first = path.read_bytes()
    # a bound no real timing meets: every case ends noisy
    assert main(_bench_args(tmp_path, "--noise-bound", "1e-12")) == 1
    err = capsys.readouterr().err
    assert f"refusing to overwrite {path}" in err and "--accept-noisy" in err
    assert path.read_bytes() == first
    side = json.loads(path.with_name(f".{path.stem}.noisy.json").read_text())
    assert side["settings"]["noise_bound"] == 1e-12 and all(r["noisy"] for r in side["results"] if "noisy" in r)
    assert main(_bench_args(tmp_path, "--noise-bound", "1e-12", "--accept-noisy")) == 0
    assert json.loads(path.read_text())["settings"]["noise_bound"] == 1e-12
    assert main(_bench_args(tmp_path, "--noise-bound", "2")) == 2
    assert "noise bound must be a fraction" in capsys.readouterr().err


def test_an_unwritable_output_is_refused_before_timing(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    assert main(_bench_args(blocker)) == 2
    err = capsys.readouterr().err
    assert f"cannot write to {blocker / 'results'}" in err and "--out" in err


def test_a_failed_write_says_so_and_keeps_the_recorded_file(tmp_path, capsys, monkeypatch):
    import errno

    from lsbench import provenance

    assert main(_bench_args(tmp_path, "--accept-noisy")) == 0
    (path,) = (tmp_path / "results").glob("bench-*.json")
    first = path.read_bytes()

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(provenance, "atomic_write_bytes", disk_full)
    assert main(_bench_args(tmp_path, "--accept-noisy")) == 1
    err = capsys.readouterr().err
    assert "could not write the results" in err and "No space left on device" in err
    assert path.read_bytes() == first


def test_recording_into_the_repository_needs_a_clean_tree(tmp_path, capsys, monkeypatch):
    import subprocess

    from lsbench import provenance
    from lsbench.commands import bench as bench_command

    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "code.py"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], cwd=tmp_path, check=True)
    (tmp_path / "code.py").write_text("x = 2\n")
    monkeypatch.setattr(bench_command, "REPO", tmp_path)
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    assert main(_bench_args(tmp_path / "paper")) == 2
    err = capsys.readouterr().err
    assert "code.py" in err and "commit first" in err and "--allow-dirty" in err
    assert not (tmp_path / "paper" / "results").exists()
    assert main(_bench_args(tmp_path / "paper", "--allow-dirty", "--accept-noisy")) == 0
    (path,) = (tmp_path / "paper" / "results").glob("bench-*.json")
    assert json.loads(path.read_text())["git"]["dirty"] is True


def test_the_report_marks_noisy_cases_only_for_interleaved_files(quick_run, tmp_path):
    from lsbench.report.bench import NOISY, machine_table, parse_bench
    from lsbench.report.results import read_json

    _, _, doc = quick_run
    doc = copy.deepcopy(doc)
    for r in doc["results"]:
        r["noisy"] = r["id"] == "lsbench:uniform/fwd+bwd/float32/2x8x100"
    path = tmp_path / "bench-x.json"
    path.write_text(json.dumps(doc))
    table = machine_table(parse_bench(read_json(path), "x"), "float32")
    uniform = [row for row in table.rows if row[0] == "uniform"][0]
    assert uniform[2].endswith(NOISY) and not any(NOISY in c for row in table.rows if row[0] != "uniform"
                                                  for c in row)
    assert any("interleaved passes" in n and "1 case(s)" in n for n in table.notes)
    assert "1 noisy case(s) (e.g. lsbench:uniform/fwd+bwd/float32/2x8x100)" in render_tables(doc)[1]
    for r in doc["results"]:  # a file timed case by case (before interleaving) renders as it did
        r.pop("noisy")
    for key in ("noise_bound", "max_passes", "min_passes", "timing"):
        doc["settings"].pop(key)
    path.write_text(json.dumps(doc))
    table = machine_table(parse_bench(read_json(path), "x"), "float32")
    assert not any("interleaved" in n for n in table.notes) and "noisy" not in render_tables(doc)[1]


def test_no_cpu_only_assumptions():
    """What changes on an accelerator, checked without one: the machine id, RSS, the read+write floor."""
    assert bench.machine_name("cpu", "cpu", "AMD EPYC 7B13 64-Core Processor", 2) == "cpu-amd-epyc-7b13-2c"
    assert bench.machine_name("gpu", "NVIDIA H100 80GB HBM3", "Intel Xeon", 16) == "gpu-nvidia-h100-80gb-hbm3"
    assert bench.machine_name("tpu", "TPU v5 lite", "x", 8) == "tpu-tpu-v5-lite"
    case = bench.Case("uniform", "lsbench", "fwd+bwd", "float32", (1024, 32000))
    assert bench.wants_rss(case, "auto", False, backend="cpu")
    assert not bench.wants_rss(case, "all", False, backend="gpu") and not bench.wants_rss(case, "all", False, "tpu")
    from lsbench.bench.cases import prepare_floor  # its accelerator branch, run on the CPU

    floor = bench.Case("read+write", "floor", "floor", "float32", (4, 10))
    inputs = bench.Inputs("float32", (4, 10))
    prep = prepare_floor(floor, inputs, on_host=False)
    assert bench.xla_memory(prep.compiled, floor.logits_bytes)["alias_bytes"] == 4 * 10 * 4  # in place
    out = prep.sync(prep.run(*prep.setup()))
    assert jnp.allclose(out, 2 * inputs.logits())
    assert jax.devices()[0].platform == bench.environment()["device_platform"]


# --------------------------------------------------------------------------- peers, recipes, targets (issue 18)


def test_every_catalogue_recipe_is_a_case_with_its_peers():
    from lsbench.losses import RECIPES

    assert set(bench.RECIPE_NAMES) | set(bench.MORE_RECIPE_NAMES) == set(RECIPES)
    assert not set(bench.RECIPE_NAMES) & set(bench.MORE_RECIPE_NAMES)
    shapes = [(4, 10), (8, 1000)]
    cases = bench.make_cases(shapes, ["float32"], (), more_recipe_shapes=[(8, 1000)])
    ids = {c.id for c in cases}
    assert len(ids) == len(cases)
    named = {(c.shape, c.name) for c in cases if c.impl == "lsbench" and c.mode == "fwd+bwd"}
    assert {n for s, n in named if s == (8, 1000)} == set(RECIPES)
    assert {n for s, n in named if s == (4, 10)} == set(bench.RECIPE_NAMES)
    for mode in ("fwd", "fwd+bwd"):
        for impl in bench.PEER_IMPLS:
            assert f"{impl}:kl/{mode}/float32/4x10" in ids  # distillation runs everywhere
            assert f"{impl}:sigmoid/{mode}/float32/8x1000" in ids
            assert f"{impl}:sigmoid/{mode}/float32/4x10" not in ids  # no sigmoid recipe there
    assert len(bench.make_cases(shapes, ["float32"])) > len(cases)  # default: every recipe everywhere
    assert bench.peer_family("distillation") == "kl" and bench.peer_family("timm_binary") == "sigmoid"
    assert bench.peer_family("chunked[uniform]") == "ce" and bench.peer_case_name("ce", "torch") == "torch"


def test_selecting_a_recipe_keeps_the_peers_its_ratios_need():
    cases = bench.make_cases([(4, 10)], ["float32"])
    kept = bench.select_cases(cases, ["distillation"])
    assert {(c.impl, c.name) for c in kept if c.impl != "floor"} == {
        ("lsbench", "distillation"), ("optax", "kl"), ("torch", "kl")}


@pytest.mark.parametrize("recipe,shape", [("distillation", (6, 11)), ("distillation", (2, 3, 7)),
                                          ("keras_binary", (6, 11)), ("uniform", (2, 3, 7))])
def test_each_peer_computes_its_recipes_value_and_gradient(recipe, shape):
    """The peers are the recipe's computation in another library: same loss, same gradient."""
    import numpy as np

    inputs = bench.Inputs("float32", shape)
    family = bench.peer_family(recipe)
    ours = bench.prepare(bench.Case(recipe, "lsbench", "fwd+bwd", "float32", shape), inputs)
    value, grad = ours.sync(ours.run(*ours.setup()))
    for impl in bench.PEER_IMPLS:
        try:
            peer = bench.prepare(bench.Case(bench.peer_case_name(family, impl), impl, "fwd+bwd", "float32", shape),
                                 inputs)
        except bench.Skip:
            continue  # torch not installed
        pv, pg = peer.sync(peer.run(*peer.setup()))
        pg = np.asarray(pg.detach() if hasattr(pg, "detach") else pg).reshape(shape)
        pv = pv.detach() if hasattr(pv, "detach") else pv
        assert float(pv) == pytest.approx(float(value), rel=1e-5, abs=1e-6), impl
        np.testing.assert_allclose(pg, np.asarray(grad), rtol=1e-4, atol=1e-6, err_msg=impl)


def _fake(name, impl, mode, shape, median, dtype="float32"):
    case = bench.Case(name, impl, mode, dtype, tuple(shape))
    return {"id": case.id, "name": name, "impl": impl, "mode": mode, "dtype": dtype, "shape": list(shape),
            "group": case.group, "logits_bytes": case.logits_bytes, "status": "ok", "ratios": {},
            "time_s": {"median": median}, "memory": {}}


def test_targets_follow_the_issue_from_the_results():
    """Speed-ups scaled with K, each recipe against its own peers, near-fastest, chunked and floors."""
    res = []
    for k in (10, 1000, 32000):
        shape = (8, k)
        res += [_fake("read", "floor", "floor", shape, 1.0), _fake("read+write", "floor", "floor", shape, 1.0)]
        res += [_fake("optax", "optax", "fwd+bwd", shape, 4.0), _fake("kl", "optax", "fwd+bwd", shape, 8.0)]
        res += [_fake("uniform", "lsbench", "fwd+bwd", shape, 2.0), _fake("uniform", "lsbench", "fwd", shape, 1.2),
                _fake("off_target", "lsbench", "fwd+bwd", shape, 2.4),
                _fake("distillation", "lsbench", "fwd+bwd", shape, 2.6),
                _fake("chunked[uniform]", "lsbench-chunked", "fwd+bwd", shape, 3.2)]
    bench.compute_ratios(res)
    by_id = {r["id"]: r for r in res}
    assert by_id["lsbench:distillation/fwd+bwd/float32/8x10"]["peers"] == {"optax": "optax:kl/fwd+bwd/float32/8x10"}
    targets = bench.evaluate_targets(res)
    got = {t["name"]: t for t in targets}
    # 2x over optax: met at K=10 (>= 1) and 1000 (>= 1.5), missed at 32000 (>= 3)
    assert [got[f"uniform fwd+bwd float32/8x{k} speed-up over optax"]["met"] for k in (10, 1000, 32000)] == [
        True, True, False]
    assert got["uniform fwd+bwd float32/8x32000 speed-up over optax"]["limit"] == 3.0
    assert got["distillation fwd+bwd float32/8x1000 speed-up over optax"]["value"] == pytest.approx(8 / 2.6)
    near = got["distillation fwd+bwd float32/8x10 over the fastest integer-label recipe"]
    assert near["value"] == pytest.approx(1.3) and near["met"] is False and "uniform" in near["note"]
    assert got["off_target fwd+bwd float32/8x10 over the fastest integer-label recipe"]["met"] is True
    assert got["chunked fwd+bwd float32/8x10 over the plain path"]["value"] == pytest.approx(1.6)
    assert got["uniform fwd float32/8x10 vs read floor"]["met"] is True
    assert got["uniform fwd+bwd float32/8x10 vs read+write floor"]["value"] == pytest.approx(2.0)
    assert not any("PyTorch" in n for n in got)  # no torch result here: no torch target
    assert all(t["kind"] and t["group"] for t in targets)


@pytest.fixture(scope="module")
def recipes_run(tmp_path_factory):
    """A ``--quick`` run of the newer recipes and distillation (float32), every peer family."""
    out = tmp_path_factory.mktemp("bench-recipes")
    rc = main(["bench", "--quick", "--no-progress", "--dtypes", "float32", "--rss", "none", "--linear-shapes",
               "none", "--cases", "uniform,distillation,keras_binary,timm_binary,flax_kl,chunked*", "--out", str(out)])
    (path,) = (out / "results").glob("bench-*.json")
    return rc, out, json.loads(path.read_text())


def test_quick_run_divides_each_recipe_by_its_own_peers(recipes_run):
    rc, out, doc = recipes_run
    assert rc == 0
    bench.validate(doc)
    assert doc["schema"] == "lsbench.bench/2" and set(doc["peers"]) == {"ce", "kl", "sigmoid"}
    assert doc["settings"]["more_recipe_shapes"] is None and doc["settings"]["temperature"] == 2.0
    res = {r["id"]: r for r in doc["results"]}
    g = "float32/2x8x100"
    for recipe, peer in (("distillation", "kl"), ("keras_binary", "sigmoid"), ("flax_kl", "optax")):
        r = res[f"lsbench:{recipe}/fwd+bwd/{g}"]
        assert r["peers"]["optax"] == f"optax:{peer}/fwd+bwd/{g}"
        ref = res[r["peers"]["optax"]]
        assert r["ratios"]["optax"] == pytest.approx(r["time_s"]["median"] / ref["time_s"]["median"])
    kinds = {t["kind"] for t in doc["targets"]}
    assert {"fwd+bwd speed-up over optax (its peer)", "fwd+bwd within 1.25x of the fastest integer-label recipe",
            "chunked fwd+bwd within 1.5x of plain"} <= kinds
    md = (out / "tables" / "bench.md").read_text()
    assert "## targets: met / evaluated" in md and f"| {g} |" in md and "## targets missed" in md


def test_settings_time_the_newer_recipes_at_a_subset_by_default(capsys):
    assert bench.Settings.make().more_recipe_shapes == bench.MORE_RECIPE_SHAPES
    assert bench.Settings.make(quick=True).more_recipe_shapes is None
    assert bench.Settings.make(more_recipe_shapes="all").more_recipe_shapes is None
    assert bench.Settings.make(more_recipe_shapes=[(4, 10)]).more_recipe_shapes == ((4, 10),)
    assert set(bench.MORE_RECIPE_SHAPES) <= set(bench.SHAPES)
    assert {s[-1] for s in bench.MORE_RECIPE_SHAPES} >= {10, 1000, 32000}  # every speed-up threshold
    assert main(["bench", "--more-recipe-shapes", "12xq", "--out", "/nonexistent"]) == 2
    assert "bad shape" in capsys.readouterr().err


def test_the_report_compares_ratios_before_and_after(recipes_run, tmp_path):
    """The closing note's table: a schema-1 file (distillation against the one-hot cross-entropy peers)
    as before, this run as after."""
    from lsbench.report.bench import machine_table, parse_bench, ratio_comparison, target_matrix_markdown
    from lsbench.report.results import read_json

    _, _, after = recipes_run
    before = {**copy.deepcopy(after), "schema": "lsbench.bench/1"}
    before["results"] = [r for r in before["results"] if not r["id"].startswith("lsbench:distillation/")]
    text = ratio_comparison(before, after)
    assert "| float32 | 2x8x100 | distillation | -- |" in text and "| float32 | 2x8x100 | uniform |" in text
    assert "one-hot cross-entropy peers" in text and "| distillation | " in text and "*" in text
    legacy_file = tmp_path / "bench-old.json"
    legacy_file.write_text(json.dumps({**copy.deepcopy(after), "schema": "lsbench.bench/1"}))
    legacy = machine_table(parse_bench(read_json(legacy_file), "x"), "float32")
    assert any("one-hot cross-entropy peers" in n for n in legacy.notes)
    fresh = tmp_path / "bench-new.json"
    fresh.write_text(json.dumps(after))
    assert not any("one-hot" in n for n in machine_table(parse_bench(read_json(fresh), "x"), "float32").notes)
    lines = target_matrix_markdown(after["targets"])
    assert lines[0].startswith("| target | float32/2x8x100")
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_compare_script_and_gpu_script_run_on_the_cpu(recipes_run, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    _, out, _ = recipes_run
    (after,) = (out / "results").glob("bench-*.json")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    md = tmp_path / "ratios.md"
    subprocess.run([sys.executable, str(repo / "benchmarks" / "compare_bench.py"), str(after), str(after),
                    "--out", str(md)], check=True, env=env, cwd=repo)
    assert "× optax before" in md.read_text()
    script = str(repo / "benchmarks" / "gpu.sh")
    env["PYTHON"] = sys.executable
    dry = subprocess.run(["bash", script, "--dry-run"], capture_output=True, text=True, env=env, check=True)
    assert "--more-recipe-shapes all" in dry.stdout and "--max-passes 5" in dry.stdout
    bad = subprocess.run(["bash", script, "--nope"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown argument" in bad.stderr
    if jax.default_backend() == "cpu":
        refused = subprocess.run(["bash", script], capture_output=True, text=True, env=env)
        assert refused.returncode == 2 and "no accelerator" in refused.stderr
    run = subprocess.run(["bash", script, "--quick", "--out", str(tmp_path / "gpu"), "--", "--dtypes", "float32",
                          "--cases", "uniform", "--linear-shapes", "none", "--rss", "none"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    (path,) = (tmp_path / "gpu" / "results").glob("bench-*.json")
    doc = json.loads(path.read_text())
    assert doc["environment"]["env"].get("XLA_PYTHON_CLIENT_PREALLOCATE") == "false"
    assert path.name == f"bench-{doc['machine']}.json"


def test_async_dispatch_flag_is_recorded_and_passed_to_the_malloc_child():
    from lsbench.commands import bench as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--async-dispatch", "--quick"])
    assert args.async_dispatch is True
    assert "--async-dispatch" in command._argv(args)
    assert "--async-dispatch" not in command._argv(parser.parse_args(["--quick"]))
    before = jax.config.read("jax_cpu_enable_async_dispatch")
    try:
        bench.set_cpu_dispatch(asynchronous=True)
        assert bench.environment()["cpu_dispatch"] == ("asynchronous" if jax.default_backend() == "cpu" else None)
        bench.set_cpu_dispatch(asynchronous=False)
        assert bench.environment()["cpu_dispatch"] == ("synchronous" if jax.default_backend() == "cpu" else None)
    finally:
        jax.config.update("jax_cpu_enable_async_dispatch", before)
