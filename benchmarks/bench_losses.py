"""Throughput and memory of every recipe against optax, PyTorch and the memory floors.

One parametrized test per case of :func:`lsbench.bench.cases.make_cases` (see
``benchmarks/conftest.py`` for which shapes run when). Each test

* builds and compiles the case with :func:`lsbench.bench.cases.prepare` (the same
  callables ``python -m lsbench bench`` times: one ahead-of-time compiled XLA
  executable of ``(logits, labels)`` -- or teacher / one-hot / hidden and weight --
  passed as arguments, never closed over, the value and gradient of a training
  step's loss; no check runs outside the executable),
* makes two untimed warm-up calls and collects garbage before timing, as
  ``lsbench bench`` does: pytest-benchmark's own warm-up is off by default, so
  without them the first calls after compiling (one-off allocations of the
  executable) inflate its calibration -- and each recipe is compiled right
  before it is timed, while the peers of the group were timed earlier,
* times one call per round (``block_until_ready`` inside the timed function;
  ``benchmark.pedantic`` with few rounds for logits of 32 MB and more, and for
  donated cases, whose setup makes a fresh copy of the logits outside the
  timed region),
* groups by ``dtype shape`` so that pytest-benchmark's relative column reads as
  a ratio to the fastest entry of the group -- usually the one-read floor;
  the end-of-run summary prints the exact ratios to each floor and peer,
* records XLA's compiled memory analysis (scratch + output bytes) in
  ``extra_info``, and on full timed runs the peak extra RSS of a child process
  for the memory cases (``lsbench.bench.memory.wants_rss``).
"""

from __future__ import annotations

import gc

import pytest

from lsbench import bench


def _rounds(case: bench.Case) -> int | None:
    """Few fixed rounds for big inputs; None lets pytest-benchmark calibrate."""
    if case.logits_bytes >= 256 << 20:
        return 3
    if case.logits_bytes >= 32 << 20 or (case.linear and case.logits_bytes >= 8 << 20):
        return 5
    return None


def _run_case(case, benchmark, run_mode, inputs_for, record, chunk_sizes):
    inputs = inputs_for(case)
    try:
        prep = bench.prepare(case, inputs, **chunk_sizes)
    except bench.Skip as exc:
        record(case, None, {})
        pytest.skip(str(exc))
    benchmark.group = f"{case.dtype} {bench.shape_str(case.shape)}"
    benchmark.name = f"{case.impl}:{case.name} {case.mode}"
    benchmark.extra_info["case"] = case.id
    benchmark.extra_info["logits_bytes"] = case.logits_bytes

    def call(*args):
        return prep.sync(prep.run(*args))

    for _ in range(2):  # untimed warm-up (see the module docstring)
        call(*prep.setup())
    gc.collect()
    rounds = _rounds(case)
    if rounds is None and "donated" not in case.mode:
        benchmark(call, *prep.setup())
    else:
        benchmark.pedantic(call, setup=lambda: (prep.setup(), {}), rounds=rounds or 10, warmup_rounds=1)

    memory = {"xla": None, "rss": None}
    if prep.compiled is not None and case.impl != "floor":
        memory["xla"] = bench.xla_memory(prep.compiled, case.logits_bytes)
        assert memory["xla"] is None or memory["xla"]["extra_bytes"] >= 0
    del prep
    if run_mode["full"] and run_mode["timing"] and bench.wants_rss(case, "auto", False):
        memory["rss"] = bench.measure_rss(case, **chunk_sizes)
    benchmark.extra_info["memory"] = memory
    median = None
    if run_mode["timing"] and benchmark.stats is not None:
        median = benchmark.stats.stats.median
    record(case, median, memory)


def test_bench_losses(bench_case, benchmark, run_mode, inputs_for, record, chunk_sizes):
    """Every recipe, forward and forward+backward, the chunked path, peers and floors."""
    _run_case(bench_case, benchmark, run_mode, inputs_for, record, chunk_sizes)


def test_bench_linear(bench_case, benchmark, run_mode, inputs_for, record, chunk_sizes):
    """Fused linear + uniform against ``hidden @ weight`` then ``RECIPES['uniform'].loss``."""
    _run_case(bench_case, benchmark, run_mode, inputs_for, record, chunk_sizes)
