"""pytest-benchmark plumbing for ``benchmarks/bench_*.py``.

Shapes: the full suite (``lsbench.bench.SHAPES`` and ``LINEAR_SHAPES``, about
15 minutes on a quiet 2-core CPU) runs under ``pytest --benchmark-only``;
every other invocation -- in particular CI's ``pytest --benchmark-disable``,
which calls each benchmarked function once -- uses the tiny ``QUICK_SHAPES``
so that the files stay cheap plain tests. Override with the environment
variable ``LSBENCH_BENCH_SHAPES=full|quick``; narrow the cases with
``LSBENCH_BENCH_CASES`` (comma-separated globs, as ``python -m lsbench bench
--cases``; the peers of a selected recipe stay); the catalogue's newer recipes run at
``lsbench.bench.MORE_RECIPE_SHAPES`` on full runs (``LSBENCH_BENCH_RECIPES=all``: at
every shape), e.g. ``LSBENCH_BENCH_CASES='uniform,optax,torch' pytest --benchmark-only``.

At the end of a timed run the terminal summary prints each case's median as a
ratio to the floors and peers of its group (``lsbench.bench.measure.compute_ratios``)
and the targets (``lsbench.bench.measure.evaluate_targets``); with
``--benchmark-json``/``--benchmark-autosave`` the same ratios are added to
every benchmark's ``extra_info``. A ``--benchmark-only`` run ends with a short
summary instead of pytest's list of skipped plain tests: how many cases were
timed, which peers were installed (PyTorch absent: its cases are skipped) and
how many plain tests did not run.

Timed runs dispatch on the CPU as ``python -m lsbench bench`` does: programs on the
calling thread (``lsbench.bench.set_cpu_dispatch``; ``LSBENCH_BENCH_ASYNC_DISPATCH=1``
keeps jax's asynchronous default).
"""

from __future__ import annotations

import os

import pytest

from lsbench import bench, provenance

_RESULTS: dict[str, dict] = {}


def full_run(config) -> bool:
    forced = os.environ.get("LSBENCH_BENCH_SHAPES", "").strip().lower()
    if forced in ("full", "quick"):
        return forced == "full"
    return bool(config.getoption("benchmark_only", default=False)) and not config.getoption(
        "benchmark_disable", default=False)


def pytest_configure(config):
    if full_run(config) and timing_enabled(config):
        bench.set_cpu_dispatch(asynchronous=os.environ.get("LSBENCH_BENCH_ASYNC_DISPATCH", "") == "1")


def timing_enabled(config) -> bool:
    return not config.getoption("benchmark_disable", default=False)


def pytest_generate_tests(metafunc):
    if "bench_case" not in metafunc.fixturenames:
        return
    full = full_run(metafunc.config)
    linear = "linear" in metafunc.function.__name__
    shapes = () if linear else (bench.SHAPES if full else bench.QUICK_SHAPES)
    linear_shapes = (bench.LINEAR_SHAPES if full else bench.QUICK_LINEAR_SHAPES) if linear else ()
    # the newer recipes at bench.MORE_RECIPE_SHAPES on full runs, as `lsbench bench` (LSBENCH_BENCH_RECIPES=all:
    # at every shape); everywhere on the quick shapes
    everywhere = not full or os.environ.get("LSBENCH_BENCH_RECIPES", "").strip().lower() == "all"
    cases = bench.make_cases(shapes, bench.DTYPES, linear_shapes, None if everywhere else bench.MORE_RECIPE_SHAPES)
    patterns = [p.strip() for p in os.environ.get("LSBENCH_BENCH_CASES", "").split(",") if p.strip()]
    cases = bench.select_cases(cases, patterns or None)
    metafunc.parametrize("bench_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def run_mode(request):
    """``{"full": full shapes?, "timing": pytest-benchmark enabled?}``."""
    return {"full": full_run(request.config), "timing": timing_enabled(request.config)}


@pytest.fixture(scope="session")
def chunk_sizes(request):
    """Block sizes: the suite's defaults on full runs, small blocks on the quick shapes."""
    if full_run(request.config):
        return {"chunk_size": bench.CHUNK_SIZE, "linear_chunk_size": bench.LINEAR_CHUNK_SIZE}
    return {"chunk_size": bench.QUICK_CHUNK_SIZE, "linear_chunk_size": bench.QUICK_CHUNK_SIZE}


class _InputCache:
    """One (dtype, shape) group's inputs at a time (the tests of a group run consecutively)."""

    def __init__(self):
        self.key = None
        self.inputs = None

    def __call__(self, case: bench.Case) -> bench.Inputs:
        key = (case.dtype, case.shape, case.linear)
        if key != self.key:
            if self.inputs is not None:
                self.inputs.clear()
            self.inputs = bench.Inputs(case.dtype, case.shape, linear=case.linear)
            self.key = key
        return self.inputs


@pytest.fixture(scope="session")
def inputs_for():
    cache = _InputCache()
    yield cache
    if cache.inputs is not None:
        cache.inputs.clear()


@pytest.fixture(scope="session")
def record():
    """``record(case, median_s, memory)``: keep a result for the end-of-run ratios."""
    def add(case: bench.Case, median: float | None, memory: dict) -> None:
        _RESULTS[case.id] = {
            "id": case.id, "name": case.name, "impl": case.impl, "mode": case.mode, "dtype": case.dtype,
            "shape": list(case.shape), "group": case.group, "logits_bytes": case.logits_bytes,
            "status": "ok" if median is not None else "skipped", "note": None, "compile_s": None,
            "time_s": None if median is None else {"median": median}, "ratios": {}, "memory": memory,
        }
    return add


def _ratios():
    results = list(_RESULTS.values())
    bench.compute_ratios(results)
    return results


def pytest_benchmark_update_json(config, benchmarks, output_json):
    by_id = {r["id"]: r for r in _ratios()}
    for b in output_json.get("benchmarks", []):
        case_id = (b.get("extra_info") or {}).get("case")
        if case_id in by_id:
            b["extra_info"]["ratios"] = by_id[case_id]["ratios"]


NON_BENCHMARK = "Skipping non-benchmark"  # pytest-benchmark's reason for the plain tests under --benchmark-only


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fold_plain_test_skips(tr) -> int:
    """Take the plain tests (outside benchmarks/) that ``--benchmark-only`` skipped out of the ``-ra``
    list, whatever their own reason; return how many."""
    skipped = tr.stats.get("skipped", [])
    kept = [r for r in skipped if NON_BENCHMARK not in _skip_reason(r)
            and getattr(r, "nodeid", "").startswith("benchmarks/")]
    if len(kept) != len(skipped):
        tr.stats["skipped"] = kept
    return len(skipped) - len(kept)


def _peers_line() -> str:
    versions = provenance.package_versions(("optax", "torch"))
    torch_cases = sum(r["impl"] == "torch" for r in _RESULTS.values())
    torch = (f"PyTorch {versions['torch']}" if versions["torch"] else
             f"PyTorch ABSENT ({torch_cases} torch cases skipped; pip install -e '.[peers]')")
    return f"peers: optax {versions['optax']}, {torch}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    tr = terminalreporter
    plain = _fold_plain_test_skips(tr) if config.getoption("benchmark_only", default=False) else 0
    results = [r for r in _ratios() if r["status"] == "ok"]
    if plain or (_RESULTS and timing_enabled(config)):
        tr.section("lsbench benchmarks")
        tr.write_line(f"{len(results)} cases timed ({'full' if full_run(config) else 'quick'} shapes); "
                      + _peers_line())
        if plain:
            tr.write_line(f"{plain} plain tests not run (--benchmark-only); run them with pytest --benchmark-disable")
    if not results or not timing_enabled(config):
        return
    tr.section("lsbench: medians as ratios to the floors and peers of their group")
    keys = ("read", "read+write", "xla-write", "optax", "torch", "unfused")
    tr.write_line(f"{'case':62s} {'median ms':>10s} " + " ".join(f"{k:>10s}" for k in keys))
    for r in results:
        if r["impl"] == "floor":
            continue
        cells = " ".join(f"{r['ratios'][k]:10.2f}" if k in r["ratios"] else f"{'':10s}" for k in keys)
        tr.write_line(f"{r['id'][:62]:62s} {r['time_s']['median'] * 1e3:10.3f} {cells}")
    targets = bench.evaluate_targets(results)
    if targets:
        from lsbench.commands.bench import print_targets

        tr.section("lsbench: targets (measured in this run)")
        print_targets(targets, log=tr.write_line)
