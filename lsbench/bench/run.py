"""One run of the suite: settings, the machine and environment, and the results JSON.

:func:`run_suite` times every selected case (:mod:`lsbench.bench.cases`,
:mod:`lsbench.bench.measure`, :mod:`lsbench.bench.memory`) and returns the
results document, :func:`validate` checks it against schema ``lsbench.bench/2``
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
                                 MORE_RECIPE_NAMES, MORE_RECIPE_SHAPES, PEERS, QUICK_CHUNK_SIZE, QUICK_LINEAR_SHAPES,
                                 QUICK_SHAPES, SHAPES, TEMPERATURE, Inputs, Skip, make_cases, prepare, select_cases)
from lsbench.bench.measure import compute_ratios, evaluate_targets, time_interleaved
from lsbench.bench.memory import RSS_ACCELERATOR_NOTE, measure_rss, rss_applies, wants_rss, xla_memory

SCHEMA = "lsbench.bench/2"  # 2: each recipe's ratios are to the peers of its own family (``peers`` names them)
ENV_PREFIXES = ("XLA_", "MALLOC_", "GLIBC_TUNABLES", "OMP_", "JAX_")  # recorded when set


def _sanitize(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu @.*$|processor|\d+-core", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "unknown"


def cpu_model() -> str:
    """The CPU model name (:func:`lsbench.provenance.cpu_model`), never empty."""
    return provenance.cpu_model() or platform.machine() or "unknown"


def machine_name(platform_name: str, device_kind: str, cpu: str, cores: int) -> str:
    """``cpu-<model>-<cores>c`` on the host, else ``<platform>-<device kind>`` (``gpu-nvidia-h100-80gb-hbm3``,
    ``tpu-tpu-v5-lite``); CUDA and ROCm devices are ``gpu-``."""
    if platform_name == "cpu":
        return f"cpu-{_sanitize(cpu)}-{cores}c"
    prefix = "gpu" if platform_name in ("gpu", "cuda", "rocm") else _sanitize(platform_name)
    return f"{prefix}-{_sanitize(device_kind)}"


def machine_id() -> str:
    """:func:`machine_name` of JAX's first device and this CPU (no hostname)."""
    import jax

    device = jax.devices()[0]
    return machine_name(device.platform, device.device_kind, cpu_model(), provenance.usable_cores())


def git_record() -> dict:
    """``{"commit", "dirty"}`` of the checkout (:func:`lsbench.provenance.git_info`'s definition of dirty;
    the generated outputs, :data:`lsbench.provenance.OUTPUT_PATHS`, do not count)."""
    info = provenance.git_info(ignore=provenance.OUTPUT_PATHS)
    return {"commit": info["commit"], "dirty": info["dirty"]}


#: what ``environment.cpu_dispatch`` records (jax's ``jax_cpu_enable_async_dispatch``, read when the CPU
#: backend starts)
DISPATCH_MODES = {False: "synchronous", True: "asynchronous"}


def set_cpu_dispatch(asynchronous: bool = False) -> None:
    """Run compiled CPU programs on the calling thread (``asynchronous=False``, the benchmark's default) or
    hand them to a worker thread (jax's default). Must be called before JAX starts its CPU backend.

    Why: with asynchronous dispatch each call waits for a second thread to wake. On a 2-core VM that
    wake-up cost 40-60 us per call (256x10 fwd+bwd: medians 60-80 us, minima 15-20 us, for optax and
    lsbench alike; pinned to one core or dispatched synchronously, 12-18 us with median = minimum),
    several times the kernel at small shapes, and which case paid it varied from pass to pass. A
    training step pays it once per step, not once per loss, so the benchmark measures the program
    on the calling thread; XLA's intra-op thread pool still runs the kernels on every core (1024x32000
    measured the same both ways).
    """
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", bool(asynchronous))


def environment() -> dict:
    """The ``environment`` record of the results JSON (see :mod:`lsbench.bench`)."""
    import jax

    devices = jax.devices()
    backend = jax.default_backend()
    packages = provenance.package_versions((*provenance.NUMERIC_PACKAGES, "torch"))
    cores = provenance.usable_cores()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
        "jax_backend": backend,
        "device_platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "devices": [str(d) for d in devices],
        "cpu_model": cpu_model(),
        "cores": cores,
        "gpu": devices[0].device_kind if backend != "cpu" else None,
        "torch_threads": cores if packages["torch"] and backend == "cpu" else None,  # set on the CPU only
        "loadavg_start": provenance.load_average(),
        "env": {k: provenance.portable_text(os.environ[k]) for k in sorted(os.environ) if k.startswith(ENV_PREFIXES)},
        "runtime": provenance.runtime_env(),
        "cpu_dispatch": DISPATCH_MODES[bool(jax.config.read("jax_cpu_enable_async_dispatch"))] if backend == "cpu" else None,
        "memory_note": None if rss_applies(backend) else RSS_ACCELERATOR_NOTE,
    }


@dataclasses.dataclass
class Settings:
    """What one run measures (``python -m lsbench bench``'s flags); :meth:`make` checks and fills it."""

    quick: bool = False
    shapes: tuple = SHAPES
    linear_shapes: tuple = LINEAR_SHAPES
    dtypes: tuple = DTYPES
    cases: tuple | None = None
    min_rounds: int = 5      # timed calls per case, at least (over all passes)
    max_rounds: int = 50     # timed calls per case and pass, at most
    min_time_s: float = 0.5  # seconds of timed calls per case over the first min_passes passes, about
    rss: str = "auto"
    noise_bound: float = 0.05  # relative spread (IQR / median) of per-pass medians that ends the passes
    min_passes: int = 3
    max_passes: int = 10       # then a case still above the bound is flagged noisy
    chunk_size: int = CHUNK_SIZE
    linear_chunk_size: int = LINEAR_CHUNK_SIZE
    more_recipe_shapes: tuple | None = MORE_RECIPE_SHAPES  # where MORE_RECIPE_NAMES run; None: every shape

    @classmethod
    def make(cls, quick=False, shapes=None, linear_shapes=None, dtypes=None, cases=None, rss="auto",
             more_recipe_shapes="default", **kw):
        """``more_recipe_shapes``: ``"default"`` (:data:`MORE_RECIPE_SHAPES`; every shape under ``quick``),
        None or ``"all"`` (every shape) or shapes."""
        base = cls(quick=quick)
        if more_recipe_shapes == "default":
            more_recipe_shapes = None if quick else MORE_RECIPE_SHAPES
        elif more_recipe_shapes == "all":
            more_recipe_shapes = None
        base.more_recipe_shapes = None if more_recipe_shapes is None else tuple(
            tuple(int(x) for x in s) for s in more_recipe_shapes)
        if quick:
            base.shapes, base.linear_shapes = QUICK_SHAPES, QUICK_LINEAR_SHAPES
            base.min_rounds, base.max_rounds, base.min_time_s = 2, 5, 0.0
            base.min_passes, base.max_passes = 2, 3
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
        if not 0 < base.noise_bound < 1:
            raise ValueError(f"noise bound must be a fraction in (0, 1), e.g. 0.05, got {base.noise_bound!r}")
        if base.max_passes < 1:
            raise ValueError(f"max passes must be at least 1, got {base.max_passes!r}")
        base.min_passes = min(base.min_passes, base.max_passes)
        return base


def _record(case) -> dict:
    return {"id": case.id, "name": case.name, "impl": case.impl, "mode": case.mode, "dtype": case.dtype,
            "shape": list(case.shape), "group": case.group, "logits_bytes": case.logits_bytes,
            "status": "ok", "note": None, "compile_s": None, "time_s": None, "ratios": {}, "peers": {},
            "memory": {"xla": None, "rss": None}}


def _groups(cases: list) -> list[list]:
    """Consecutive cases that share their inputs (dtype, shape, linear), in suite order."""
    groups: list[list] = []
    for case in cases:
        if groups and (groups[-1][0].dtype, groups[-1][0].shape, groups[-1][0].linear) == (
                case.dtype, case.shape, case.linear):
            groups[-1].append(case)
        else:
            groups.append([case])
    return groups


def run_suite(settings: Settings, *, progress: bool = True, log=print) -> dict:
    """Run every selected case; return the results document (see the module docstring).

    The cases of one ``(dtype, shape)`` group are compiled together and timed
    interleaved (:func:`~lsbench.bench.measure.time_interleaved`); then their
    XLA memory is read and, for the selected cases, peak RSS measured in a child.
    """
    from tqdm import tqdm

    env = environment()
    cases = select_cases(make_cases(settings.shapes, settings.dtypes, settings.linear_shapes,
                                    settings.more_recipe_shapes), settings.cases)
    records = {case.id: _record(case) for case in cases}
    kw = {"chunk_size": settings.chunk_size, "linear_chunk_size": settings.linear_chunk_size}
    bar = tqdm(total=len(cases), disable=not progress, unit="case", dynamic_ncols=True)

    def fail(case_id, exc):
        rec = records[case_id]
        rec["status"], rec["note"] = "error", f"{type(exc).__name__}: {exc}"[:2000]
        log(f"error in {case_id}: {rec['note']}")

    for group in _groups(cases):
        gc.collect()
        inputs = Inputs(group[0].dtype, group[0].shape, linear=group[0].linear)
        bar.set_description(f"{group[0].group} (compiling)"[:60])
        preps = {}
        for case in group:
            try:
                preps[case.id] = prepare(case, inputs, **kw)
                records[case.id]["compile_s"] = preps[case.id].compile_s
            except Skip as exc:
                records[case.id]["status"], records[case.id]["note"] = "skipped", str(exc)
            except Exception as exc:  # noqa: BLE001 - one failing case must not lose the run
                fail(case.id, exc)
        bar.set_description(f"{group[0].group} (timing)"[:60])
        timed = time_interleaved(preps, min_rounds=settings.min_rounds, max_rounds=settings.max_rounds,
                                 min_time_s=settings.min_time_s, noise_bound=settings.noise_bound,
                                 min_passes=settings.min_passes, max_passes=settings.max_passes, on_error=fail)
        for case in group:
            rec = records[case.id]
            if case.id in timed:
                rec["noisy"] = timed[case.id].pop("noisy")
                rec["time_s"] = timed[case.id]
                prep = preps[case.id]
                if prep.compiled is not None and case.impl != "floor":
                    rec["memory"]["xla"] = xla_memory(prep.compiled, case.logits_bytes)
        preps.clear()
        inputs.clear()
        for case in group:
            if records[case.id]["status"] == "ok" and wants_rss(case, settings.rss, settings.quick):
                bar.set_description(f"{case.id} (rss)"[:60])
                try:
                    records[case.id]["memory"]["rss"] = measure_rss(case, **kw)
                except Exception as exc:  # noqa: BLE001
                    fail(case.id, exc)
        bar.update(len(group))
    bar.close()
    results = list(records.values())
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
                     "min_time_s": settings.min_time_s, "rss": settings.rss, "timing": "interleaved",
                     "noise_bound": settings.noise_bound, "min_passes": settings.min_passes,
                     "max_passes": settings.max_passes, "temperature": TEMPERATURE,
                     "more_recipes": list(MORE_RECIPE_NAMES),
                     "more_recipe_shapes": (None if settings.more_recipe_shapes is None
                                            else [list(s) for s in settings.more_recipe_shapes])},
        "floors": dict(FLOORS),
        "peers": {family: dict(by_impl) for family, by_impl in PEERS.items()},
        "results": results,
    }
    doc["targets"] = evaluate_targets(results)
    return doc


def noisy_cases(doc: dict) -> list[str]:
    """Ids of the timed cases whose per-pass medians spread beyond the run's noise bound."""
    return [r["id"] for r in doc.get("results", []) if r.get("noisy")]


def validate(doc: dict) -> None:
    """Raise ``ValueError`` when ``doc`` does not follow schema ``lsbench.bench/2``."""
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
    need(doc, "peers", dict, "doc")
    for i, r in enumerate(need(doc, "results", list, "doc")):
        w = f"results[{i}]"
        for k, t in (("id", str), ("name", str), ("impl", str), ("mode", str), ("dtype", str), ("shape", list),
                     ("group", str), ("logits_bytes", int), ("status", str), ("ratios", dict), ("memory", dict)):
            need(r, k, t, w)
        if r["status"] == "ok" and r["impl"] != "floor":
            for peer in set(r["ratios"]) & {"optax", "torch"}:
                if peer not in need(r, "peers", dict, w):
                    raise ValueError(f"{w}.peers: ratio to {peer!r} but no peer id")
        if r["status"] not in ("ok", "skipped", "error"):
            raise ValueError(f"{w}.status: {r['status']!r}")
        if r["status"] == "ok":
            ts = need(r, "time_s", dict, w)
            for k in ("median", "q1", "q3", "iqr", "min", "mean"):
                need(ts, k, float, f"{w}.time_s")
            need(ts, "rounds", int, f"{w}.time_s")
            if "spread" in ts:  # interleaved timing (older files have none)
                need(ts, "spread", float, f"{w}.time_s")
                need(ts, "passes", int, f"{w}.time_s")
        if "noisy" in r:
            need(r, "noisy", bool, w)
        for kind in ("xla", "rss"):
            m = r["memory"].get(kind)
            if m is not None:
                need(m, "extra_bytes", int, f"{w}.memory.{kind}")
    for i, t in enumerate(need(doc, "targets", list, "doc")):
        for k in ("name", "metric", "op", "limit"):
            need(t, k, (str, float, int), f"targets[{i}]")


def results_path(doc_or_machine: dict | str, out: str | os.PathLike) -> Path:
    """``<out>/results/bench-<machine>.json``."""
    machine = doc_or_machine if isinstance(doc_or_machine, str) else doc_or_machine["machine"]
    return Path(out) / "results" / f"bench-{machine}.json"


def write_results(doc: dict, out: str | os.PathLike) -> Path:
    """Validate ``doc``, check it records no absolute path or host name
    (:func:`lsbench.provenance.assert_no_absolute_paths`), and write it atomically to
    ``<out>/results/bench-<machine>.json``."""
    validate(doc)
    provenance.assert_no_absolute_paths(doc, "the bench results")
    path = results_path(doc, out)
    provenance.atomic_write_bytes(path, (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode("utf-8"))
    return path
