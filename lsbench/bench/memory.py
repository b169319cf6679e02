"""Peak extra memory of a case: XLA's compiled memory analysis, and the resident memory of one call.

* :func:`xla_memory` -- ``temp + output − alias`` bytes of a compiled
  executable (the buffers one call allocates beyond its inputs);
* :func:`measure_rss` -- runs the case once in a fresh interpreter
  (``python -m lsbench.bench --rss-child``) and reports how much resident
  memory the call added at its peak (:func:`measure_rss_here`);
* :func:`wants_rss` -- which cases get the (slow) child-process measurement.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys

from lsbench.bench.cases import Case, Inputs, Prepared, prepare

# Cases whose peak RSS is measured in a child process under --rss auto.
RSS_NAMES = ("uniform", "chunked[uniform]", "optax", "torch", "linear[uniform]", "linear-unfused[uniform]")
RSS_MIN_BYTES = 32 << 20


def xla_memory(compiled, logits_bytes: int) -> dict | None:
    """``temp + output − alias`` bytes of a compiled executable, or None if unavailable."""
    try:
        ma = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if ma is None:
        return None
    temp, out, alias = int(ma.temp_size_in_bytes), int(ma.output_size_in_bytes), int(ma.alias_size_in_bytes)
    extra = temp + out - alias
    return {"temp_bytes": temp, "output_bytes": out, "alias_bytes": alias,
            "argument_bytes": int(ma.argument_size_in_bytes), "extra_bytes": extra,
            "extra_ratio": extra / logits_bytes if logits_bytes else None}


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure_rss_here(prep: Prepared) -> dict:
    """Peak resident memory one call adds in *this* process (used inside the child)."""
    import resource

    args = prep.setup()
    gc.collect()
    method = "VmHWM-after-clear_refs"
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        method = "ru_maxrss"
    before = _status_kb("VmRSS")
    out = prep.sync(prep.run(*args))
    if method == "ru_maxrss" or before is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method = "ru_maxrss"
    else:
        peak_kb = _status_kb("VmHWM")
    del out
    return {"extra_bytes": int(max(peak_kb - (before or 0), 0)) * 1024, "method": method}


def measure_rss(case: Case, timeout: float = 600, **prepare_kw) -> dict:
    """Run ``case`` once in a fresh interpreter and return its RSS measurement."""
    spec = json.dumps({**dataclasses.asdict(case), "prepare": prepare_kw})
    proc = subprocess.run([sys.executable, "-m", "lsbench.bench", "--rss-child", spec],
                          capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"rss child failed (rc={proc.returncode}): {proc.stderr.strip()[-2000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["extra_ratio"] = res["extra_bytes"] / case.logits_bytes
    return res


def rss_child(spec: str) -> int:
    """The child side of :func:`measure_rss`: rebuild the case from its JSON spec, measure, print JSON."""
    d = json.loads(spec)
    case = Case(d["name"], d["impl"], d["mode"], d["dtype"], tuple(d["shape"]))
    inputs = Inputs(case.dtype, case.shape, linear=case.linear)
    prep = prepare(case, inputs, **d.get("prepare", {}))
    res = measure_rss_here(prep)
    print(json.dumps(res))
    return 0


RSS_ACCELERATOR_NOTE = ("peak RSS not measured: on an accelerator the arrays live in device memory, not in the "
                        "process's resident memory; memory.xla (XLA's compiled memory analysis) is the measurement")


def rss_applies(backend: str | None = None) -> bool:
    """Whether resident memory measures the arrays: only when JAX computes on the host (CPU)."""
    if backend is None:
        import jax

        backend = jax.default_backend()
    return backend == "cpu"


def wants_rss(case: Case, policy: str, quick: bool, backend: str | None = None) -> bool:
    """Whether ``case`` gets a child-process RSS measurement under ``--rss`` ``policy``
    (never on an accelerator: see :data:`RSS_ACCELERATOR_NOTE`)."""
    if policy == "none" or case.impl == "floor" or not rss_applies(backend):
        return False
    if policy == "all":
        return True
    if case.name not in RSS_NAMES:
        return False
    if quick:  # exercise the plumbing on two cases only
        return case.dtype == "float32" and case.name in ("uniform", "chunked[uniform]") and case.mode != "fwd"
    return case.dtype == "float32" and case.logits_bytes >= RSS_MIN_BYTES
