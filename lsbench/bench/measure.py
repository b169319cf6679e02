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

from lsbench.bench.cases import DTYPES, FLOORS, PEER_IMPLS, Prepared, peer_case_name, peer_family
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
    """Fill ``ratios`` (and ``peers``: the ids divided by) of every ok result from the floors and peers of its
    group, in place. A recipe's peers are those of its own family (:func:`lsbench.bench.cases.peer_family`:
    distillation against the KL peers, the sigmoid recipes against sigmoid BCE, the rest against the
    smoothed cross-entropy)."""
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
        family = peer_family(r["name"])
        peers = {}
        for peer in PEER_IMPLS:
            ref = by.get((r["group"], peer, peer_case_name(family, peer), peer_mode))
            if ref and r["impl"] != peer:
                ratios[peer] = t / ref["time_s"]["median"]
                peers[peer] = ref["id"]
        r["peers"] = peers
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


SPEED_UPS = ((32000, 3.0), (1000, 1.5), (0, 1.0))  # (K at least, speed-up over each peer at least)
NEAR_FASTEST = 1.25   # every recipe within this factor of the fastest integer-label recipe at its shape
CHUNKED_VS_PLAIN = 1.5
FLOOR_LIMITS = {"fwd": ("read", 1.5), "fwd+bwd": ("read+write", 2.0), "fwd+bwd:donated": ("read+write", 2.0)}


def speed_up_limit(k: int) -> float:
    """The issue's speed-up target over the peers at ``K = k``: 1 (never slower), 1.5 at K >= 1000, 3 at K >= 32000."""
    return next(limit for at_least, limit in SPEED_UPS if k >= at_least)


def _integer_label(name: str) -> bool:
    from lsbench.losses import RECIPES

    return name in RECIPES and RECIPES[name].labels == "int"


def evaluate_targets(results: list[dict]) -> list[dict]:
    """The issue's targets, each from the measured results (``met`` None when not measured).

    Each target has a ``kind`` (what is asked) and ``group`` (dtype/shape, where); the report tabulates
    kind against group. For every recipe, dtype and shape measured (fwd+bwd): the speed-up over each peer
    of its family (:func:`speed_up_limit`), the time over the fastest integer-label recipe (<= 1.25);
    chunked over the plain path (<= 1.5, fwd and fwd+bwd); ``uniform`` over the floors at every shape
    (fwd / read, fwd+bwd and fwd+bwd:donated / read+write); and the memory targets.
    """
    out = []

    def add(name, r, metric, value, op, limit, note=None, kind=None):
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out.append({"name": name, "kind": kind or name, "group": r["group"] if r else None,
                    "case": r["id"] if r else None, "metric": metric, "value": value,
                    "op": op, "limit": limit, "met": met, "note": note})

    def ratio(r, key):
        return None if r is None or r["status"] != "ok" else r.get("ratios", {}).get(key)

    def median(r):
        return None if r is None or r["status"] != "ok" else r["time_s"]["median"]

    recipes = [r for r in results if r["impl"] == "lsbench" and r["mode"] == "fwd+bwd"]
    fastest: dict[str, dict] = {}
    for r in recipes:
        if median(r) is not None and _integer_label(r["name"]):
            if r["group"] not in fastest or median(r) < median(fastest[r["group"]]):
                fastest[r["group"]] = r
    for r in recipes:
        limit = speed_up_limit(r["shape"][-1])
        for peer, label in (("optax", "optax"), ("torch", "PyTorch")):
            inv = ratio(r, peer)
            if r["status"] == "ok" and inv is None:
                continue  # the peer did not run here (e.g. torch absent): no target to check
            add(f"{r['name']} fwd+bwd {r['group']} speed-up over {label}", r, f"t_{peer} / t",
                None if not inv else 1 / inv, ">=", limit, kind=f"fwd+bwd speed-up over {label} (its peer)")
        best = fastest.get(r["group"])
        if best is not None and median(r) is not None:
            add(f"{r['name']} fwd+bwd {r['group']} over the fastest integer-label recipe", r,
                "t / t_fastest", median(r) / median(best), "<=", NEAR_FASTEST, f"fastest: {best['name']}",
                kind="fwd+bwd within 1.25x of the fastest integer-label recipe")
    for r in results:
        if r["impl"] != "lsbench-chunked" or r["mode"] not in ("fwd", "fwd+bwd"):
            continue
        plain = find_result(results, "lsbench", "uniform", r["mode"], r["dtype"], r["shape"])
        if median(r) is not None and median(plain) is not None:
            add(f"chunked {r['mode']} {r['group']} over the plain path", r, "t_chunked / t_plain",
                median(r) / median(plain), "<=", CHUNKED_VS_PLAIN, kind=f"chunked {r['mode']} within 1.5x of plain")
    for r in results:
        if (r["impl"], r["name"]) == ("lsbench", "uniform") and r["mode"] in FLOOR_LIMITS:
            floor, limit = FLOOR_LIMITS[r["mode"]]
            add(f"uniform {r['mode']} {r['group']} vs {floor} floor", r, f"t / t_{floor}", ratio(r, floor),
                "<=", limit, kind=f"uniform {r['mode']} / {floor} floor")
    _memory_targets(results, add)
    return out


def _memory_targets(results, add) -> None:
    for r in results:
        big = r["logits_bytes"] >= RSS_MIN_BYTES
        if (r["impl"], r["name"], r["mode"]) == ("lsbench", "uniform", "fwd+bwd") and big:
            mem = r.get("memory") or {}
            for kind in ("xla", "rss"):
                if mem.get(kind):
                    add(f"uniform fwd+bwd {r['group']} extra memory ({kind})", r, "extra / logits",
                        mem[kind]["extra_ratio"], "<=", 1.25, kind=f"uniform fwd+bwd extra memory ({kind})")
    for dtype in DTYPES:
        for mode in ("fwd+bwd:donated", "fwd+bwd", "fwd"):
            r = find_result(results, "lsbench-chunked", "chunked[uniform]", mode, dtype, (256, 128000))
            mem = (r or {}).get("memory") or {}
            for kind in ("xla", "rss"):
                if mem.get(kind):
                    note = ("includes the gradient's own buffer (1x): only a donated call can write it in place"
                            if mode == "fwd+bwd" else None)
                    add(f"chunked {mode} {dtype} 256x128000 extra memory ({kind})", r, "extra / logits",
                        mem[kind]["extra_ratio"], "<=", 0.25, note, kind=f"chunked {mode} extra memory ({kind})")
    lin = [r for r in results if r["impl"] == "lsbench-linear" and r["mode"] == "fwd+bwd" and r["status"] == "ok"
           and (r.get("memory") or {}).get("xla")]
    for dtype in DTYPES:
        rs = sorted((r for r in lin if r["dtype"] == dtype), key=lambda r: r["shape"][-1])
        for a, b in zip(rs, rs[1:]):
            if a["shape"][:2] == b["shape"][:2]:
                ta, tb = a["memory"]["xla"]["temp_bytes"], b["memory"]["xla"]["temp_bytes"]
                add(f"linear fwd+bwd {dtype} temporaries K={a['shape'][-1]} -> K={b['shape'][-1]}", b,
                    "temp(K2) / temp(K1)", tb / ta if ta else None, "<=", 1.1,
                    "scratch bytes; the outputs include dW, the weight's own size",
                    kind="linear fwd+bwd temporaries, K -> 4K")
