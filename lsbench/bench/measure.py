"""Timing and what the results say: medians of single calls, ratios to references, targets.

:func:`time_interleaved` times the cases of one ``(dtype, shape)`` group side
by side: passes over all of them (alternating the order), each pass a few
single calls per case, until the relative spread of every case's per-pass
medians is within a bound (or a maximum number of passes, when the case is
flagged noisy), so that a burst of load hits every candidate alike rather than
whichever ran at the time; :func:`compute_ratios` divides
each median by the floors and peers of its group; :func:`evaluate_targets`
checks the issue's targets against the results. They work on the result
records of the results JSON (see :mod:`lsbench.bench`), so the pytest-benchmark
suite under ``benchmarks/`` reuses them on its own timings.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from lsbench.bench.cases import DTYPES, FLOORS, Prepared
from lsbench.bench.memory import RSS_MIN_BYTES

#: The clock of every timed call (a module attribute, so a test can put a fake clock in its place).
timer = time.perf_counter


def summarize(times: Sequence[float]) -> dict:
    """The ``time_s`` record of a list of per-call seconds: median, quartiles, IQR, min, mean, rounds."""
    t = np.asarray(times, dtype=np.float64)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
            "min": float(t.min()), "mean": float(t.mean()), "rounds": int(t.size)}


def _one_call(prep: Prepared) -> float:
    args = prep.setup()
    t0 = timer()
    out = prep.sync(prep.run(*args))
    dt = timer() - t0
    del out, args
    return dt


def relative_spread(medians: Sequence[float]) -> float:
    """``(q3 - q1) / median`` of per-pass medians: robust to one disturbed pass, 0 for a single pass."""
    if len(medians) < 2:
        return 0.0
    q1, med, q3 = np.percentile(np.asarray(medians, dtype=np.float64), [25, 50, 75])
    return float((q3 - q1) / med) if med > 0 else 0.0


def time_interleaved(preps: Mapping[str, Prepared], *, min_rounds: int = 5, max_rounds: int = 50,
                     min_time_s: float = 0.5, noise_bound: float = 0.05, min_passes: int = 3,
                     max_passes: int = 10, on_error: Callable[[str, Exception], None] | None = None) -> dict:
    """``{case id: time_s record}`` of cases timed in interleaved passes (see the module docstring).

    Each case gets two untimed warm-up calls, then per pass
    ``max(ceil(min_rounds / min_passes), ceil(min_time_s / min_passes / t_warm-up))`` single calls (at
    most ``max_rounds``), cases in list order on even passes and reversed on odd ones. After
    ``min_passes`` passes it stops as soon as every case's :func:`relative_spread` of its per-pass
    medians is ``<= noise_bound``, else after ``max_passes``. The record is :func:`summarize` of all
    of a case's calls plus ``spread``, ``passes``, ``pass_medians`` and ``noisy`` (spread above the
    bound). A case that raises is dropped and reported to ``on_error`` (else the error propagates).
    """
    if not 0 < noise_bound < 1:
        raise ValueError(f"noise_bound must be a fraction in (0, 1), got {noise_bound!r}")
    if not 1 <= min_passes <= max_passes:
        raise ValueError(f"need 1 <= min_passes <= max_passes, got {min_passes} and {max_passes}")
    live: dict[str, Prepared] = {}
    calls: dict[str, int] = {}

    def failed(case_id, exc):
        live.pop(case_id, None)
        if on_error is None:
            raise exc
        on_error(case_id, exc)

    per_pass_time = min_time_s / min_passes
    for case_id, prep in preps.items():
        try:
            _one_call(prep)  # the first call may still pay one-off costs: estimate from the second
            warm = _one_call(prep)
        except Exception as exc:  # noqa: BLE001 - reported per case
            failed(case_id, exc)
            continue
        live[case_id] = prep
        want = math.ceil(per_pass_time / warm) if warm > 0 else max_rounds
        calls[case_id] = max(1, min(max_rounds, max(math.ceil(min_rounds / min_passes), want)))
    times: dict[str, list[float]] = {c: [] for c in live}
    medians: dict[str, list[float]] = {c: [] for c in live}
    for done in range(max_passes):
        order = list(live) if done % 2 == 0 else list(reversed(live))
        for case_id in order:
            try:
                ts = [_one_call(live[case_id]) for _ in range(calls[case_id])]
            except Exception as exc:  # noqa: BLE001
                failed(case_id, exc)
                continue
            times[case_id] += ts
            medians[case_id].append(float(np.median(ts)))
        if done + 1 >= min_passes and all(relative_spread(medians[c]) <= noise_bound for c in live):
            break
    out = {}
    for case_id in live:
        spread = relative_spread(medians[case_id])
        out[case_id] = {**summarize(times[case_id]), "spread": spread, "passes": len(medians[case_id]),
                        "pass_medians": medians[case_id], "noisy": spread > noise_bound}
    return out


def compute_ratios(results: list[dict]) -> None:
    """Fill ``ratios`` of every ok result from the floors and peers of its group (in place)."""
    by = {(r["group"], r["impl"], r["name"], r["mode"]): r for r in results if r["status"] == "ok"}
    for r in results:
        if r["status"] != "ok" or r["impl"] == "floor":
            continue
        t = r["time_s"]["median"]
        ratios = {}
        for f in FLOORS:
            ref = by.get((r["group"], "floor", f, "floor"))
            if ref and r["impl"] not in ("lsbench-linear", "unfused"):
                ratios[f] = t / ref["time_s"]["median"]
        peer_mode = "fwd+bwd" if r["mode"].startswith("fwd+bwd") else r["mode"]
        for peer in ("optax", "torch"):
            ref = by.get((r["group"], peer, peer, peer_mode))
            if ref and r["impl"] != peer:
                ratios[peer] = t / ref["time_s"]["median"]
        if r["impl"] == "lsbench-linear":
            ref = by.get((r["group"], "unfused", "linear-unfused[uniform]", r["mode"]))
            if ref:
                ratios["unfused"] = t / ref["time_s"]["median"]
        r["ratios"] = ratios


def find_result(results, impl, name, mode, dtype, shape):
    """The result record of one case (by implementation, name, mode, dtype and shape), or None."""
    for r in results:
        if (r["impl"], r["name"], r["mode"], r["dtype"], tuple(r["shape"])) == (impl, name, mode, dtype, tuple(shape)):
            return r
    return None


def evaluate_targets(results: list[dict]) -> list[dict]:
    """The issue's targets, each from the measured results (``met`` None when not measured)."""
    out = []

    def add(name, r, metric, value, op, limit, note=None):
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out.append({"name": name, "case": r["id"] if r else None, "metric": metric, "value": value,
                    "op": op, "limit": limit, "met": met, "note": note})

    def ratio(r, key):
        return None if r is None or r["status"] != "ok" else r.get("ratios", {}).get(key)

    for dtype in DTYPES:
        fb = find_result(results, "lsbench", "uniform", "fwd+bwd", dtype, (1024, 32000))
        if fb is None:
            continue
        add(f"uniform fwd+bwd {dtype} 1024x32000 vs read+write floor", fb, "t / t_floor", ratio(fb, "read+write"),
            "<=", 2.0)
        inv = ratio(fb, "optax")
        add(f"uniform fwd+bwd {dtype} 1024x32000 speed-up over optax", fb, "t_optax / t",
            None if not inv else 1 / inv, ">=", 3.0)
        inv = ratio(fb, "torch")
        add(f"uniform fwd+bwd {dtype} 1024x32000 speed-up over PyTorch", fb, "t_torch / t",
            None if not inv else 1 / inv, ">=", 2.0)
    for r in results:
        if (r["impl"], r["name"], r["mode"]) == ("lsbench", "uniform", "fwd") and r["shape"][-1] >= 1000:
            add(f"uniform fwd {r['group']} vs read floor", r, "t / t_read", ratio(r, "read"), "<=", 1.5)
    for r in results:
        big = r["logits_bytes"] >= RSS_MIN_BYTES
        if (r["impl"], r["name"], r["mode"]) == ("lsbench", "uniform", "fwd+bwd") and big:
            mem = r.get("memory") or {}
            for kind in ("xla", "rss"):
                if mem.get(kind):
                    add(f"uniform fwd+bwd {r['group']} extra memory ({kind})", r, "extra / logits",
                        mem[kind]["extra_ratio"], "<=", 1.25)
    for dtype in DTYPES:
        for mode in ("fwd+bwd:donated", "fwd+bwd", "fwd"):
            r = find_result(results, "lsbench-chunked", "chunked[uniform]", mode, dtype, (256, 128000))
            mem = (r or {}).get("memory") or {}
            for kind in ("xla", "rss"):
                if mem.get(kind):
                    note = None if mode == "fwd+bwd:donated" else (
                        "includes the gradient's own buffer (1x): only a donated call can write it in place"
                        if mode == "fwd+bwd" else None)
                    add(f"chunked {mode} {dtype} 256x128000 extra memory ({kind})", r, "extra / logits",
                        mem[kind]["extra_ratio"], "<=", 0.25, note)
    lin = [r for r in results if r["impl"] == "lsbench-linear" and r["mode"] == "fwd+bwd" and r["status"] == "ok"
           and (r.get("memory") or {}).get("xla")]
    for dtype in DTYPES:
        rs = sorted((r for r in lin if r["dtype"] == dtype), key=lambda r: r["shape"][-1])
        for a, b in zip(rs, rs[1:]):
            if a["shape"][:2] == b["shape"][:2]:
                ta, tb = a["memory"]["xla"]["temp_bytes"], b["memory"]["xla"]["temp_bytes"]
                add(f"linear fwd+bwd {dtype} temporaries K={a['shape'][-1]} -> K={b['shape'][-1]}", b,
                    "temp(K2) / temp(K1)", tb / ta if ta else None, "<=", 1.1,
                    "scratch bytes; the outputs include dW, the weight's own size")
    return out
