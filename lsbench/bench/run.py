"""One run of the suite: settings, the machine and environment, and the results JSON.

:func:`run_suite` times every selected case (:mod:`lsbench.bench.cases`,
:mod:`lsbench.bench.measure`, :mod:`lsbench.bench.memory`) and returns the
results document, :func:`validate` checks it against schema ``lsbench.bench/1``
(documented in :mod:`lsbench.bench`) and :func:`write_results` writes it
atomically to ``<out>/results/bench-<machine>.json``. Tables are rendered from
that file alone, by :mod:`lsbench.report.bench`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import platform
import re
import sys
from pathlib import Path

from lsbench import provenance
from lsbench.bench.cases import (CHUNK_SIZE, DTYPES, EPSILON, FLOORS, LINEAR_CHUNK_SIZE, LINEAR_SHAPES,
                                 QUICK_CHUNK_SIZE, QUICK_LINEAR_SHAPES, QUICK_SHAPES, SHAPES, Inputs, Skip,
                                 make_cases, prepare, select_cases)
from lsbench.bench.measure import compute_ratios, evaluate_targets, time_callable
from lsbench.bench.memory import measure_rss, wants_rss, xla_memory

SCHEMA = "lsbench.bench/1"
ENV_PREFIXES = ("XLA_", "MALLOC_", "GLIBC_TUNABLES", "OMP_", "JAX_")  # recorded when set


def _sanitize(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu @.*$|processor|\d+-core", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "unknown"


def cpu_model() -> str:
    """The CPU model name (:func:`lsbench.provenance.cpu_model`), never empty."""
    return provenance.cpu_model() or platform.machine() or "unknown"


def machine_id() -> str:
    """``gpu-<device kind>`` when JAX runs on a GPU, else ``cpu-<model>-<cores>c`` (no hostname)."""
    import jax

    backend = jax.default_backend()
    if backend in ("gpu", "cuda", "rocm"):
        return "gpu-" + _sanitize(jax.devices()[0].device_kind)
    return f"cpu-{_sanitize(cpu_model())}-{provenance.usable_cores()}c"


def git_record() -> dict:
    """``{"commit", "dirty"}`` of the checkout (:func:`lsbench.provenance.git_info`'s definition of dirty)."""
    info = provenance.git_info()
    return {"commit": info["commit"], "dirty": info["dirty"]}


def environment() -> dict:
    """The ``environment`` record of the results JSON (see :mod:`lsbench.bench`)."""
    import jax

    devices = [str(d) for d in jax.devices()]
    backend = jax.default_backend()
    packages = provenance.package_versions(("jax", "jaxlib", "optax", "numpy", "torch", "lsbench"))
    cores = provenance.usable_cores()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
        "jax_backend": backend,
        "devices": devices,
        "cpu_model": cpu_model(),
        "cores": cores,
        "gpu": jax.devices()[0].device_kind if backend in ("gpu", "cuda", "rocm") else None,
        "torch_threads": cores if packages["torch"] else None,
        "loadavg_start": provenance.load_average(),
        "env": {k: os.environ[k] for k in sorted(os.environ) if k.startswith(ENV_PREFIXES)},
    }


@dataclasses.dataclass
class Settings:
    """What one run measures (``python -m lsbench bench``'s flags); :meth:`make` checks and fills it."""

    quick: bool = False
    shapes: tuple = SHAPES
    linear_shapes: tuple = LINEAR_SHAPES
    dtypes: tuple = DTYPES
    cases: tuple | None = None
    min_rounds: int = 5
    max_rounds: int = 50
    min_time_s: float = 0.5
    rss: str = "auto"
    chunk_size: int = CHUNK_SIZE
    linear_chunk_size: int = LINEAR_CHUNK_SIZE

    @classmethod
    def make(cls, quick=False, shapes=None, linear_shapes=None, dtypes=None, cases=None, rss="auto", **kw):
        base = cls(quick=quick)
        if quick:
            base.shapes, base.linear_shapes = QUICK_SHAPES, QUICK_LINEAR_SHAPES
            base.min_rounds, base.max_rounds, base.min_time_s = 2, 5, 0.0
            base.chunk_size = base.linear_chunk_size = QUICK_CHUNK_SIZE
        if shapes is not None:
            base.shapes = tuple(tuple(s) for s in shapes)
        if linear_shapes is not None:
            base.linear_shapes = tuple(tuple(s) for s in linear_shapes)
        if dtypes:
            bad = set(dtypes) - set(DTYPES)
            if bad:
                raise ValueError(f"unknown dtype(s) {sorted(bad)}; choose from {DTYPES}")
            base.dtypes = tuple(dtypes)
        base.cases = tuple(cases) if cases else None
        if rss not in ("auto", "all", "none"):
            raise ValueError(f"rss must be auto, all or none, got {rss!r}")
        base.rss = rss
        for k, v in kw.items():
            if v is not None:
                setattr(base, k, v)
        return base


def run_suite(settings: Settings, *, progress: bool = True, log=print) -> dict:
    """Run every selected case; return the results document (see the module docstring)."""
    from tqdm import tqdm

    env = environment()
    cases = select_cases(make_cases(settings.shapes, settings.dtypes, settings.linear_shapes), settings.cases)
    results: list[dict] = []
    bar = tqdm(total=len(cases), disable=not progress, unit="case", dynamic_ncols=True)
    inputs: Inputs | None = None
    for case in cases:
        if inputs is None or (inputs.dtype, inputs.shape, inputs.linear) != (case.dtype, case.shape, case.linear):
            if inputs is not None:
                inputs.clear()
            inputs = None
            gc.collect()
            inputs = Inputs(case.dtype, case.shape, linear=case.linear)
        bar.set_description(case.id[:60])
        rec = {"id": case.id, "name": case.name, "impl": case.impl, "mode": case.mode, "dtype": case.dtype,
               "shape": list(case.shape), "group": case.group, "logits_bytes": case.logits_bytes,
               "status": "ok", "note": None, "compile_s": None, "time_s": None, "ratios": {},
               "memory": {"xla": None, "rss": None}}
        try:
            kw = {"chunk_size": settings.chunk_size, "linear_chunk_size": settings.linear_chunk_size}
            prep = prepare(case, inputs, **kw)
            rec["compile_s"] = prep.compile_s
            rec["time_s"] = time_callable(prep, min_rounds=settings.min_rounds, max_rounds=settings.max_rounds,
                                          min_time_s=settings.min_time_s)
            if prep.compiled is not None and case.impl != "floor":
                rec["memory"]["xla"] = xla_memory(prep.compiled, case.logits_bytes)
            del prep
            if wants_rss(case, settings.rss, settings.quick):
                rec["memory"]["rss"] = measure_rss(case, **kw)
        except Skip as exc:
            rec["status"], rec["note"] = "skipped", str(exc)
        except Exception as exc:  # noqa: BLE001 - one failing case must not lose the run
            rec["status"], rec["note"] = "error", f"{type(exc).__name__}: {exc}"[:2000]
            log(f"error in {case.id}: {rec['note']}")
        results.append(rec)
        bar.update(1)
    bar.close()
    if inputs is not None:
        inputs.clear()
    compute_ratios(results)
    env["loadavg_end"] = provenance.load_average()
    doc = {
        "schema": SCHEMA,
        "machine": machine_id(),
        "created": provenance.utc_now(),
        "git": git_record(),
        "environment": env,
        "settings": {"quick": settings.quick, "shapes": [list(s) for s in settings.shapes],
                     "linear_shapes": [list(s) for s in settings.linear_shapes], "dtypes": list(settings.dtypes),
                     "cases": list(settings.cases) if settings.cases else None, "epsilon": EPSILON,
                     "chunk_size": settings.chunk_size, "linear_chunk_size": settings.linear_chunk_size,
                     "min_rounds": settings.min_rounds, "max_rounds": settings.max_rounds,
                     "min_time_s": settings.min_time_s, "rss": settings.rss},
        "floors": dict(FLOORS),
        "results": results,
    }
    doc["targets"] = evaluate_targets(results)
    return doc


def validate(doc: dict) -> None:
    """Raise ``ValueError`` when ``doc`` does not follow schema ``lsbench.bench/1``."""
    def need(obj, key, types, where):
        if key not in obj:
            raise ValueError(f"{where}: missing key {key!r}")
        if not isinstance(obj[key], types):
            raise ValueError(f"{where}.{key}: expected {types}, got {type(obj[key]).__name__}")
        return obj[key]

    if doc.get("schema") != SCHEMA:
        raise ValueError(f"schema must be {SCHEMA!r}, got {doc.get('schema')!r}")
    need(doc, "machine", str, "doc")
    need(doc, "created", str, "doc")
    git = need(doc, "git", dict, "doc")
    need(git, "commit", (str, type(None)), "git")
    env = need(doc, "environment", dict, "doc")
    for k, t in (("packages", dict), ("jax_backend", str), ("cpu_model", str), ("cores", int), ("devices", list)):
        need(env, k, t, "environment")
    need(doc, "settings", dict, "doc")
    need(doc, "floors", dict, "doc")
    for i, r in enumerate(need(doc, "results", list, "doc")):
        w = f"results[{i}]"
        for k, t in (("id", str), ("name", str), ("impl", str), ("mode", str), ("dtype", str), ("shape", list),
                     ("group", str), ("logits_bytes", int), ("status", str), ("ratios", dict), ("memory", dict)):
            need(r, k, t, w)
        if r["status"] not in ("ok", "skipped", "error"):
            raise ValueError(f"{w}.status: {r['status']!r}")
        if r["status"] == "ok":
            ts = need(r, "time_s", dict, w)
            for k in ("median", "q1", "q3", "iqr", "min", "mean"):
                need(ts, k, float, f"{w}.time_s")
            need(ts, "rounds", int, f"{w}.time_s")
        for kind in ("xla", "rss"):
            m = r["memory"].get(kind)
            if m is not None:
                need(m, "extra_bytes", int, f"{w}.memory.{kind}")
    for i, t in enumerate(need(doc, "targets", list, "doc")):
        for k in ("name", "metric", "op", "limit"):
            need(t, k, (str, float, int), f"targets[{i}]")


def write_results(doc: dict, out: str | os.PathLike) -> Path:
    """Validate ``doc`` and write it atomically to ``<out>/results/bench-<machine>.json``."""
    validate(doc)
    path = Path(out) / "results" / f"bench-{doc['machine']}.json"
    provenance.atomic_write_bytes(path, (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode("utf-8"))
    return path
