r"""The benchmark engine: cases, timing, memory, results JSON and tables.

Used by ``python -m lsbench bench`` (:mod:`lsbench.commands.bench`) and by the
pytest-benchmark files under ``benchmarks/`` (which time the same callables
with pytest-benchmark instead of :func:`time_callable`).

What is measured
================

Every case is one callable on inputs built once per ``(shape, dtype)`` group
(logits ``N(0, 2²)``, uniform integer labels, ε = 0.1):

* **recipes** (``impl="lsbench"``): ``jax.jit`` of ``RECIPES[name].loss``
  (``fwd``) or of ``jax.value_and_grad`` of it (``fwd+bwd``), for every recipe;
  ``tf_onehot`` gets a one-hot label matrix, ``distillation`` teacher logits;
* **chunked** (``impl="lsbench-chunked"``, name ``chunked[uniform]``):
  :func:`lsbench.losses.chunked.loss` with ``chunk_size`` classes per block;
* **donated** (mode ``fwd+bwd:donated``, ``uniform`` and ``chunked[uniform]``):
  ``jax.jit(value_and_grad(...), donate_argnums=0)``, a fresh copy of the
  logits per round (made outside the timed region), as in a training step where
  the logits die at the loss;
* **peers**: optax (``softmax_cross_entropy(z, smooth_labels(one_hot(y), ε))``,
  mean, jitted) and PyTorch (``F.cross_entropy(z, y, label_smoothing=ε)``,
  ``torch.autograd.grad`` for ``fwd+bwd``, ``torch.set_num_threads(cores)``;
  skipped with a note when torch is not installed);
* **floors**, same inputs: ``read`` = ``jax.jit(max over the class axis)`` (one
  read pass), ``read+write`` = ``np.multiply(z, 2, out=buf)`` into a
  preallocated buffer (bfloat16: ``np.bitwise_xor(u16, 0x8000, out=buf)``, the
  same bytes, a sign flip), and ``xla-write`` = ``jax.jit(lambda z: z * 2)``,
  which returns a fresh array: the cost XLA:CPU pays for any ``[.., K]``
  output, page faults of a new buffer included (informational);
* **fused linear** (``linear[uniform]`` vs ``linear-unfused[uniform]``, shapes
  ``N×H×K``): :func:`lsbench.losses.linear.linear_smoothed_cross_entropy`
  against ``RECIPES["uniform"].loss(hidden @ weight, labels)``, gradients with
  respect to hidden and weight.

Timing (:func:`time_callable`): one untimed warm-up call after compiling, then
rounds of one call each (``time.perf_counter`` around the call and
``block_until_ready``) until at least ``min_rounds`` rounds and ``min_time_s``
seconds, at most ``max_rounds``. Reported: median, quartiles, IQR, min, mean,
rounds. Ratios divide a case's median by the median of a reference measured in
the same group, minutes apart: ``ratios[ref] = t_case / t_ref`` for the floors
and for the peer of the same mode (``< 1`` = faster than the peer).

Memory ("peak extra memory beyond the inputs"), two measurements:

* ``memory.xla`` (every JAX case): ``jax.jit(f).lower(...).compile().memory_analysis()``
  of the compiled executable: ``extra_bytes = temp + output − alias`` (the
  buffers the call allocates: scratch and results not written in place);
* ``memory.rss`` (selected cases, ``--rss``): a child process builds the
  inputs, compiles, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``
  ← ``5``), runs the case once and reports ``VmHWM − VmRSS_before``: the
  resident memory the call added at its peak, outputs included, allocator
  effects included. (Where ``clear_refs`` is not writable it falls back to
  ``ru_maxrss`` after the call minus ``VmRSS`` before, which over-counts
  compile-time peaks.) Torch is measured this way only.

``extra_ratio = extra_bytes / logits_bytes`` (for linear cases: relative to the
``[N, K]`` logits the fused path avoids).

Results JSON (``<out>/results/bench-<machine>.json``, schema ``lsbench.bench/1``)
================================================================================

::

    {
      "schema": "lsbench.bench/1",
      "machine": "cpu-amd-epyc-2c",          # cpu-<model>-<cores>c or gpu-<device kind>
      "created": "2026-11-22T21:40:00Z",     # UTC, ISO 8601
      "git": {"commit": "<sha or null>", "dirty": bool | null},
      "environment": {
        "python": str, "platform": str,
        "packages": {"jax": str, "jaxlib": str, "optax": str, "numpy": str,
                     "torch": str | null, "lsbench": str},
        "jax_backend": "cpu" | "gpu" | ..., "devices": [str, ...],
        "cpu_model": str, "cores": int, "gpu": str | null,
        "torch_threads": int | null,
        "loadavg_start": [1m, 5m, 15m] | null, "loadavg_end": [...] | null,
        "env": {"XLA_FLAGS": ..., "MALLOC_ARENA_MAX": ..., ...}   # only the variables that are set
      },
      "settings": {"quick": bool, "shapes": [[N, K], ...], "linear_shapes": [[N, H, K], ...],
                   "dtypes": [...], "cases": [pattern, ...] | null, "epsilon": 0.1,
                   "chunk_size": int, "linear_chunk_size": int, "min_rounds": int,
                   "max_rounds": int, "min_time_s": float, "rss": "auto" | "all" | "none"},
      "floors": {"read": str, "read+write": str, "xla-write": str},   # descriptions
      "results": [
        {"id": "lsbench:uniform/fwd+bwd/float32/1024x32000",
         "name": "uniform", "impl": "lsbench" | "lsbench-chunked" | "lsbench-linear" | "unfused"
                                     | "optax" | "torch" | "floor",
         "mode": "fwd" | "fwd+bwd" | "fwd+bwd:donated" | "floor",
         "dtype": "float32" | "bfloat16", "shape": [1024, 32000],
         "group": "float32/1024x32000",
         "logits_bytes": int,
         "status": "ok" | "skipped" | "error", "note": str | null,
         "compile_s": float | null,
         "time_s": {"median", "q1", "q3", "iqr", "min", "mean": float, "rounds": int} | null,
         "ratios": {"read": float, "read+write": float, "xla-write": float,
                    "optax": float, "torch": float, "unfused": float},   # present keys only
         "memory": {"xla": {"temp_bytes", "output_bytes", "alias_bytes", "argument_bytes",
                            "extra_bytes": int, "extra_ratio": float} | null,
                    "rss": {"extra_bytes": int, "extra_ratio": float, "method": str} | null}},
        ...
      ],
      "targets": [
        {"name": str, "case": id, "metric": str, "value": float | null,
         "op": "<=" | ">=", "limit": float, "met": bool | null, "note": str | null}, ...
      ]
    }

Tables (:func:`render_tables`): ``<out>/tables/bench.tex`` (booktabs) and
``<out>/tables/bench.md``, generated from the JSON alone, so ``python -m
lsbench paper`` can regenerate them from ``paper/results``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fnmatch
import gc
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

SCHEMA = "lsbench.bench/1"
EPSILON = 0.1
CHUNK_SIZE = 8192
LINEAR_CHUNK_SIZE = 4096
QUICK_CHUNK_SIZE = 32  # --quick: small blocks, so the tiny shapes still exercise the loops

SHAPES: tuple[tuple[int, ...], ...] = ((256, 10), (256, 1000), (4096, 1000), (1024, 32000), (256, 128000),
                                       (8, 512, 32000))
QUICK_SHAPES: tuple[tuple[int, ...], ...] = ((2, 8, 100),)
LINEAR_SHAPES: tuple[tuple[int, int, int], ...] = ((256, 256, 32000), (256, 256, 128000))
QUICK_LINEAR_SHAPES: tuple[tuple[int, int, int], ...] = ((16, 8, 100), (16, 8, 300))
DTYPES = ("float32", "bfloat16")
RECIPE_NAMES = ("uniform", "off_target", "fastai", "tf_onehot", "fastreid", "speech_transformer", "distillation")
FLOORS = {
    "read": "jax.jit(max over the class axis): one read pass over the logits",
    "read+write": "np.multiply(z, 2, out=buf) into a preallocated buffer (bfloat16: bitwise_xor of the uint16 "
                  "view with 0x8000): one read and one write pass, no allocation",
    "xla-write": "jax.jit(lambda z: z * 2): one read and one write pass into a fresh XLA output buffer "
                 "(allocation and page faults included)",
}
# Cases whose peak RSS is measured in a child process under --rss auto.
RSS_NAMES = ("uniform", "chunked[uniform]", "optax", "torch", "linear[uniform]", "linear-unfused[uniform]")
RSS_MIN_BYTES = 32 << 20


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark: ``name`` (recipe / peer / floor), implementation, mode, dtype, shape."""

    name: str
    impl: str
    mode: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def linear(self) -> bool:
        return self.impl in ("lsbench-linear", "unfused")

    @property
    def group(self) -> str:
        return f"{self.dtype}/{shape_str(self.shape)}"

    @property
    def id(self) -> str:
        return f"{self.impl}:{self.name}/{self.mode}/{self.group}"

    @property
    def logits_shape(self) -> tuple[int, ...]:
        if self.linear:
            n, _, k = self.shape
            return (n, k)
        return self.shape

    @property
    def logits_bytes(self) -> int:
        return int(np.prod(self.logits_shape)) * (2 if self.dtype == "bfloat16" else 4)


def shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad shape {text!r}: expected e.g. 1024x32000 or 8x512x32000") from None
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"bad shape {text!r}: need at least two positive sizes")
    return shape


def make_cases(shapes: Iterable[Sequence[int]], dtypes: Iterable[str],
               linear_shapes: Iterable[Sequence[int]] = ()) -> list[Case]:
    """Every case, grouped by (dtype, shape): floors first, then peers, then lsbench."""
    cases: list[Case] = []
    for dtype in dtypes:
        for shape in shapes:
            shape = tuple(int(s) for s in shape)
            cases += [Case(f, "floor", "floor", dtype, shape) for f in FLOORS]
            for mode in ("fwd", "fwd+bwd"):
                cases += [Case("optax", "optax", mode, dtype, shape), Case("torch", "torch", mode, dtype, shape)]
            for mode in ("fwd", "fwd+bwd"):
                cases += [Case(r, "lsbench", mode, dtype, shape) for r in RECIPE_NAMES]
            cases.append(Case("uniform", "lsbench", "fwd+bwd:donated", dtype, shape))
            for mode in ("fwd", "fwd+bwd", "fwd+bwd:donated"):
                cases.append(Case("chunked[uniform]", "lsbench-chunked", mode, dtype, shape))
        for shape in linear_shapes:
            shape = tuple(int(s) for s in shape)
            for mode in ("fwd", "fwd+bwd"):
                cases.append(Case("linear-unfused[uniform]", "unfused", mode, dtype, shape))
                cases.append(Case("linear[uniform]", "lsbench-linear", mode, dtype, shape))
    return cases


def select_cases(cases: Sequence[Case], patterns: Sequence[str] | None) -> list[Case]:
    """Cases whose name, ``impl:name`` or id matches a glob; floors always stay (ratios need them)."""
    if not patterns:
        return list(cases)
    keep = []
    for c in cases:
        keys = (c.name, f"{c.impl}:{c.name}", c.id, f"{c.name}/{c.mode}")
        if c.impl == "floor" or any(fnmatch.fnmatchcase(k, p) for p in patterns for k in keys):
            keep.append(c)
    return keep


# --------------------------------------------------------------------------
# inputs and callables
# --------------------------------------------------------------------------

class Inputs:
    """Lazily built inputs of one (dtype, shape) group, shared by its cases."""

    def __init__(self, dtype: str, shape: Sequence[int], linear: bool = False, seed: int = 0):
        import jax
        import jax.numpy as jnp

        self.dtype = dtype
        self.shape = tuple(shape)
        self.linear = linear
        self._jdt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
        key = jax.random.PRNGKey(seed)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        self._keys = (k1, k2, k3, k4)
        self._cache: dict[str, Any] = {}

    def _get(self, name, build):
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    # -- logits cases
    def logits(self):
        import jax
        import jax.numpy as jnp

        return self._get("logits", lambda: jax.block_until_ready(
            (2.0 * jax.random.normal(self._keys[0], self.shape, jnp.float32)).astype(self._jdt)))

    def labels(self):
        import jax
        import jax.numpy as jnp

        k = self.shape[-1]
        batch = self.shape[:-1]
        return self._get("labels", lambda: jax.random.randint(self._keys[1], batch, 0, k, jnp.int32))

    def onehot(self):
        import jax

        return self._get("onehot", lambda: jax.block_until_ready(
            jax.nn.one_hot(self.labels(), self.shape[-1], dtype=self._jdt)))

    def teacher(self):
        import jax
        import jax.numpy as jnp

        return self._get("teacher", lambda: jax.block_until_ready(
            (2.0 * jax.random.normal(self._keys[2], self.shape, jnp.float32)).astype(self._jdt)))

    def numpy_logits(self):
        """A NumPy view of the logits (bfloat16: its uint16 bit pattern)."""
        def build():
            a = np.asarray(self.logits())
            return a.view(np.uint16) if self.dtype == "bfloat16" else a
        return self._get("np", build)

    # -- linear cases
    def linear_inputs(self):
        import jax
        import jax.numpy as jnp

        def build():
            n, h, k = self.shape
            hid = (jax.random.normal(self._keys[0], (n, h), jnp.float32)).astype(self._jdt)
            w = (jax.random.normal(self._keys[2], (h, k), jnp.float32) / np.sqrt(h)).astype(self._jdt)
            y = jax.random.randint(self._keys[1], (n,), 0, k, jnp.int32)
            return jax.block_until_ready((hid, w, y))
        return self._get("linear", build)

    def clear(self):
        self._cache.clear()


@dataclasses.dataclass
class Prepared:
    """A case ready to run: ``run(*setup())``; ``compiled`` for JAX cases (memory analysis)."""

    run: Callable[..., Any]
    setup: Callable[[], tuple]
    compiled: Any = None
    compile_s: float | None = None
    sync: Callable[[Any], Any] = lambda out: out


class Skip(Exception):
    """Raised by :func:`prepare` when a case cannot run here (e.g. torch missing)."""


def _aot(fn, args, donate=()):
    """``jax.jit(fn).lower(*args).compile()`` and the compile time."""
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _jax_prepared(fn, args, donate=()) -> Prepared:
    import jax

    compiled, compile_s = _aot(fn, args, donate)
    if donate:
        def setup():
            return tuple(a.copy() if i in donate else a for i, a in enumerate(args))
    else:
        def setup():
            return args
    return Prepared(run=compiled, setup=setup, compiled=compiled, compile_s=compile_s,
                    sync=jax.block_until_ready)


def _recipe_fn(name):
    from lsbench.losses import RECIPES

    loss = RECIPES[name].loss
    eps_key = "temperature" if name == "distillation" else "epsilon"
    value = 2.0 if name == "distillation" else EPSILON
    return lambda z, y: loss(z, y, **{eps_key: value})


def _optax_fn(k):
    import jax
    import optax

    def f(z, y):
        q = optax.smooth_labels(jax.nn.one_hot(y, k), EPSILON)
        return optax.softmax_cross_entropy(z, q).mean()
    return f


def _torch_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _torch_prepared(case: Case, inputs: Inputs) -> Prepared:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise Skip("torch is not installed (pip install -e '.[peers]')") from None
    import torch.nn.functional as F

    torch.set_num_threads(_torch_threads())
    k = case.shape[-1]
    z = torch.from_numpy(np.array(inputs.logits(), dtype=np.float32)).reshape(-1, k)
    if case.dtype == "bfloat16":
        z = z.to(torch.bfloat16)
    y = torch.from_numpy(np.array(inputs.labels(), dtype=np.int64)).reshape(-1)
    if case.mode == "fwd":
        def run(z, y):
            with torch.inference_mode():
                return F.cross_entropy(z, y, label_smoothing=EPSILON)
    elif case.mode == "fwd+bwd":
        z.requires_grad_(True)

        def run(z, y):
            loss = F.cross_entropy(z, y, label_smoothing=EPSILON)
            (g,) = torch.autograd.grad(loss, z)
            return loss, g
    else:
        raise Skip(f"no torch case for mode {case.mode}")
    return Prepared(run=run, setup=lambda: (z, y))


def prepare(case: Case, inputs: Inputs, *, chunk_size: int = CHUNK_SIZE,
            linear_chunk_size: int = LINEAR_CHUNK_SIZE) -> Prepared:
    """Build (and for JAX, compile) the callable of ``case`` on ``inputs``."""
    import jax
    import jax.numpy as jnp

    if case.impl == "floor":
        if case.name == "read":
            return _jax_prepared(lambda z: jnp.max(z, axis=-1), (inputs.logits(),))
        if case.name == "xla-write":
            return _jax_prepared(lambda z: z * 2, (inputs.logits(),))
        x = inputs.numpy_logits()
        buf = np.empty_like(x)
        if case.dtype == "bfloat16":
            return Prepared(run=lambda: np.bitwise_xor(x, np.uint16(0x8000), out=buf), setup=tuple)
        return Prepared(run=lambda: np.multiply(x, 2, out=buf), setup=tuple)
    if case.impl == "torch":
        return _torch_prepared(case, inputs)
    if case.linear:
        from lsbench.losses import RECIPES
        from lsbench.losses.linear import linear_smoothed_cross_entropy

        hid, w, y = inputs.linear_inputs()
        if case.impl == "lsbench-linear":
            def f(h, w, y):
                return linear_smoothed_cross_entropy(h, w, y, epsilon=EPSILON, chunk_size=linear_chunk_size)
        else:
            def f(h, w, y):
                return RECIPES["uniform"].loss(h @ w, y, epsilon=EPSILON)
        if case.mode == "fwd+bwd":
            f = jax.value_and_grad(f, argnums=(0, 1))
        return _jax_prepared(f, (hid, w, y))
    if case.impl == "optax":
        f = _optax_fn(case.shape[-1])
        second = inputs.labels()
    elif case.impl == "lsbench-chunked":
        from lsbench.losses import chunked

        def f(z, y):
            return chunked.loss(z, y, recipe="uniform", chunk_size=chunk_size, epsilon=EPSILON)
        second = inputs.labels()
    else:
        f = _recipe_fn(case.name)
        second = {"tf_onehot": inputs.onehot, "distillation": inputs.teacher}.get(case.name, inputs.labels)()
    if case.mode == "fwd":
        return _jax_prepared(f, (inputs.logits(), second))
    if case.mode == "fwd+bwd":
        return _jax_prepared(jax.value_and_grad(f), (inputs.logits(), second))
    if case.mode == "fwd+bwd:donated":
        return _jax_prepared(jax.value_and_grad(f), (inputs.logits(), second), donate=(0,))
    raise ValueError(f"unknown mode {case.mode!r}")


# --------------------------------------------------------------------------
# timing and memory
# --------------------------------------------------------------------------

def summarize(times: Sequence[float]) -> dict:
    t = np.asarray(times, dtype=np.float64)
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
            "min": float(t.min()), "mean": float(t.mean()), "rounds": int(t.size)}


def time_callable(prep: Prepared, *, min_rounds: int = 5, max_rounds: int = 50, min_time_s: float = 0.5,
                  warmup: int = 1) -> dict:
    """Median/IQR of single calls (the setup of each round is not timed)."""
    for _ in range(warmup):
        out = prep.sync(prep.run(*prep.setup()))
        del out
    times: list[float] = []
    spent = 0.0
    while len(times) < max_rounds and (len(times) < min_rounds or spent < min_time_s):
        args = prep.setup()
        t0 = time.perf_counter()
        out = prep.sync(prep.run(*args))
        dt = time.perf_counter() - t0
        del out, args
        times.append(dt)
        spent += dt
    return summarize(times)


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


def _rss_child(spec: str) -> int:
    d = json.loads(spec)
    case = Case(d["name"], d["impl"], d["mode"], d["dtype"], tuple(d["shape"]))
    inputs = Inputs(case.dtype, case.shape, linear=case.linear)
    prep = prepare(case, inputs, **d.get("prepare", {}))
    res = measure_rss_here(prep)
    print(json.dumps(res))
    return 0


def wants_rss(case: Case, policy: str, quick: bool) -> bool:
    if policy == "none" or case.impl == "floor":
        return False
    if policy == "all":
        return True
    if case.name not in RSS_NAMES:
        return False
    if quick:  # exercise the plumbing on two cases only
        return case.dtype == "float32" and case.name in ("uniform", "chunked[uniform]") and case.mode != "fwd"
    return case.dtype == "float32" and case.logits_bytes >= RSS_MIN_BYTES


# --------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------

def _sanitize(text: str) -> str:
    text = re.sub(r"\((r|tm)\)|cpu @.*$|processor|\d+-core", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_id() -> str:
    """``gpu-<device kind>`` when JAX runs on a GPU, else ``cpu-<model>-<cores>c`` (no hostname)."""
    import jax

    backend = jax.default_backend()
    if backend in ("gpu", "cuda", "rocm"):
        return "gpu-" + _sanitize(jax.devices()[0].device_kind)
    return f"cpu-{_sanitize(cpu_model())}-{_torch_threads()}c"


def _version(mod: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(mod)
    except Exception:  # noqa: BLE001
        return None


def _git() -> dict:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty if commit else None}


def environment() -> dict:
    import jax

    devices = [str(d) for d in jax.devices()]
    backend = jax.default_backend()
    env_keys = [k for k in os.environ if k.startswith(("XLA_", "MALLOC_", "GLIBC_TUNABLES", "OMP_", "JAX_"))]
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in ("jax", "jaxlib", "optax", "numpy", "torch", "lsbench")},
        "jax_backend": backend,
        "devices": devices,
        "cpu_model": cpu_model(),
        "cores": _torch_threads(),
        "gpu": jax.devices()[0].device_kind if backend in ("gpu", "cuda", "rocm") else None,
        "torch_threads": _torch_threads() if _version("torch") else None,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env": {k: os.environ[k] for k in sorted(env_keys)},
    }


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


def _find(results, impl, name, mode, dtype, shape):
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
        fb = _find(results, "lsbench", "uniform", "fwd+bwd", dtype, (1024, 32000))
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
        if (r["impl"], r["name"], r["mode"]) == ("lsbench", "uniform", "fwd+bwd") and r["logits_bytes"] >= RSS_MIN_BYTES:
            mem = r.get("memory") or {}
            for kind in ("xla", "rss"):
                if mem.get(kind):
                    add(f"uniform fwd+bwd {r['group']} extra memory ({kind})", r, "extra / logits",
                        mem[kind]["extra_ratio"], "<=", 1.25)
    for dtype in DTYPES:
        for mode in ("fwd+bwd:donated", "fwd+bwd", "fwd"):
            r = _find(results, "lsbench-chunked", "chunked[uniform]", mode, dtype, (256, 128000))
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


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically via :func:`lsbench.provenance.atomic_write_bytes`."""
    from lsbench.provenance import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


@dataclasses.dataclass
class Settings:
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
    env["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    doc = {
        "schema": SCHEMA,
        "machine": machine_id(),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": _git(),
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


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------

def _ms(r):
    return None if not r or r["status"] != "ok" else r["time_s"]["median"] * 1e3


def _fmt(v, spec="{:.2f}", missing="--"):
    return missing if v is None else spec.format(v)


def _fmt_ms(v):
    if v is None:
        return "--"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _tables_data(doc: dict):
    res = doc["results"]
    groups = []
    for r in res:
        key = (r["dtype"], tuple(r["shape"]))
        if r["impl"] not in ("lsbench-linear", "unfused") and key not in groups:
            groups.append(key)
    summary = []
    for dtype, shape in groups:
        fwd = _find(res, "lsbench", "uniform", "fwd", dtype, shape)
        fb = _find(res, "lsbench", "uniform", "fwd+bwd", dtype, shape)
        ch = _find(res, "lsbench-chunked", "chunked[uniform]", "fwd+bwd", dtype, shape)
        chd = _find(res, "lsbench-chunked", "chunked[uniform]", "fwd+bwd:donated", dtype, shape)
        rf = lambda r, k: (r or {}).get("ratios", {}).get(k) if r and r["status"] == "ok" else None  # noqa: E731
        inv = lambda v: None if not v else 1 / v  # noqa: E731
        mem = lambda r: (((r or {}).get("memory") or {}).get("xla") or {}).get("extra_ratio")  # noqa: E731
        summary.append({
            "dtype": dtype, "shape": shape_str(shape),
            "fwd_ms": _ms(fwd), "fwd_x_read": rf(fwd, "read"),
            "fb_ms": _ms(fb), "fb_x_rw": rf(fb, "read+write"), "fb_x_xlaw": rf(fb, "xla-write"),
            "optax_speedup": inv(rf(fb, "optax")), "torch_speedup": inv(rf(fb, "torch")),
            "fb_mem": mem(fb), "chunked_fb_ms": _ms(ch), "chunked_donated_mem": mem(chd),
        })
    recipes = []
    for dtype, shape in groups:
        row = {"dtype": dtype, "shape": shape_str(shape)}
        for name in RECIPE_NAMES:
            for mode in ("fwd", "fwd+bwd"):
                row[(name, mode)] = _ms(_find(res, "lsbench", name, mode, dtype, shape))
        for peer in ("optax", "torch"):
            for mode in ("fwd", "fwd+bwd"):
                row[(peer, mode)] = _ms(_find(res, peer, peer, mode, dtype, shape))
        for f in FLOORS:
            row[(f, "floor")] = _ms(_find(res, "floor", f, "floor", dtype, shape))
        recipes.append(row)
    linear = []
    for r in res:
        if r["impl"] == "lsbench-linear" and r["status"] == "ok":
            u = _find(res, "unfused", "linear-unfused[uniform]", r["mode"], r["dtype"], r["shape"])
            mx = (r.get("memory") or {}).get("xla") or {}
            mu = ((u or {}).get("memory") or {}).get("xla") or {}
            linear.append({"dtype": r["dtype"], "shape": shape_str(r["shape"]), "mode": r["mode"],
                           "fused_ms": _ms(r), "unfused_ms": _ms(u),
                           "fused_temp": mx.get("temp_bytes"), "unfused_temp": mu.get("temp_bytes")})
    return summary, recipes, linear


def _tex_shape(shape: str) -> str:
    return shape.replace("x", r"$\times$")


def _mb(b):
    return "--" if b is None else f"{b / 2**20:.1f}"


def render_tables(doc: dict) -> tuple[str, str]:
    """``(latex, markdown)`` tables from a results document."""
    summary, recipes, linear = _tables_data(doc)
    env = doc["environment"]
    load = env.get("loadavg_start")
    caption = (f"Machine {doc['machine']} ({env['cpu_model']}, {env['cores']} cores, JAX {env['packages'].get('jax')} "
               f"on {env['jax_backend']}); medians of single calls; load average at start "
               f"{'--' if not load else f'{load[0]:.1f}'}.")
    # ---- markdown
    md = [f"# lsbench benchmarks: {doc['machine']}", "", caption, "",
          "## uniform: time and ratios to the floors and peers", "",
          "| dtype | shape | fwd ms | fwd / read | fwd+bwd ms | fwd+bwd / read+write | fwd+bwd / xla-write "
          "| optax / ours | torch / ours | extra mem / logits | chunked fwd+bwd ms | chunked donated mem / logits |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        md.append(f"| {s['dtype']} | {s['shape']} | {_fmt_ms(s['fwd_ms'])} | {_fmt(s['fwd_x_read'])} | "
                  f"{_fmt_ms(s['fb_ms'])} | {_fmt(s['fb_x_rw'])} | {_fmt(s['fb_x_xlaw'])} | "
                  f"{_fmt(s['optax_speedup'])} | {_fmt(s['torch_speedup'])} | {_fmt(s['fb_mem'])} | "
                  f"{_fmt_ms(s['chunked_fb_ms'])} | {_fmt(s['chunked_donated_mem'])} |")
    cols = [(n, m) for n in RECIPE_NAMES for m in ("fwd", "fwd+bwd")]
    md += ["", "## every recipe (ms, median)", "",
           "| dtype | shape | " + " | ".join(f"{n} {m}" for n, m in cols)
           + " | optax fwd | optax fwd+bwd | torch fwd | torch fwd+bwd | read | read+write | xla-write |",
           "|---|---|" + "---:|" * (len(cols) + 7)]
    for row in recipes:
        cells = [_fmt_ms(row[c]) for c in cols]
        cells += [_fmt_ms(row[(p, m)]) for p in ("optax", "torch") for m in ("fwd", "fwd+bwd")]
        cells += [_fmt_ms(row[(f, "floor")]) for f in FLOORS]
        md.append(f"| {row['dtype']} | {row['shape']} | " + " | ".join(cells) + " |")
    if linear:
        md += ["", "## fused linear + uniform (N×H×K)", "",
               "| dtype | shape | mode | fused ms | unfused ms | fused scratch MB | unfused scratch MB |",
               "|---|---|---|---:|---:|---:|---:|"]
        for r in linear:
            md.append(f"| {r['dtype']} | {r['shape']} | {r['mode']} | {_fmt_ms(r['fused_ms'])} | "
                      f"{_fmt_ms(r['unfused_ms'])} | {_mb(r['fused_temp'])} | {_mb(r['unfused_temp'])} |")
    if doc.get("targets"):
        md += ["", "## targets", "", "| target | value | limit | met |", "|---|---:|---:|---|"]
        for t in doc["targets"]:
            met = "--" if t["met"] is None else ("yes" if t["met"] else "**no**")
            md.append(f"| {t['name']} | {_fmt(t['value'])} | {t['op']} {t['limit']} | {met} |")
    md.append("")
    # ---- latex
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    tex = [r"% generated by python -m lsbench bench from paper/results/bench-" + doc["machine"] + ".json",
           r"\begin{table}[t]", r"\centering", r"\small",
           r"\caption{" + esc(caption) + r" Ratios are to the one-read floor (fwd), the NumPy read+write floor "
           r"and the XLA fresh-output floor (fwd+bwd); peers: speed-up of \texttt{uniform} over them.}",
           r"\label{tab:bench}",
           r"\begin{tabular}{llrrrrrrrr}", r"\toprule",
           r"dtype & shape & fwd ms & $\times$read & fwd+bwd ms & $\times$r+w & $\times$xla-w & "
           r"optax$/$ours & torch$/$ours & mem$/$logits \\", r"\midrule"]
    for s in summary:
        tex.append(f"{esc(s['dtype'])} & {_tex_shape(s['shape'])} & {_fmt_ms(s['fwd_ms'])} & "
                   f"{_fmt(s['fwd_x_read'])} & {_fmt_ms(s['fb_ms'])} & {_fmt(s['fb_x_rw'])} & "
                   f"{_fmt(s['fb_x_xlaw'])} & {_fmt(s['optax_speedup'])} & {_fmt(s['torch_speedup'])} & "
                   f"{_fmt(s['fb_mem'])} \\\\")
    tex += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    tex += [r"\begin{table}[t]", r"\centering", r"\scriptsize",
            r"\caption{Every recipe, forward+backward, median ms (" + esc(doc["machine"]) + r").}",
            r"\label{tab:bench-recipes}",
            r"\begin{tabular}{ll" + "r" * (len(RECIPE_NAMES) + 3) + "}", r"\toprule",
            "dtype & shape & " + " & ".join(esc(n) for n in RECIPE_NAMES) + r" & optax & torch & r+w \\",
            r"\midrule"]
    for row in recipes:
        cells = [_fmt_ms(row[(n, "fwd+bwd")]) for n in RECIPE_NAMES]
        cells += [_fmt_ms(row[("optax", "fwd+bwd")]), _fmt_ms(row[("torch", "fwd+bwd")]),
                  _fmt_ms(row[("read+write", "floor")])]
        tex.append(f"{esc(row['dtype'])} & {_tex_shape(row['shape'])} & " + " & ".join(cells) + r" \\")
    tex += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(tex), "\n".join(md)


def write_outputs(doc: dict, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``<out>/results/bench-<machine>.json`` and ``<out>/tables/bench.{tex,md}`` atomically."""
    validate(doc)
    out = Path(out)
    paths = {"json": out / "results" / f"bench-{doc['machine']}.json",
             "tex": out / "tables" / "bench.tex", "md": out / "tables" / "bench.md"}
    tex, md = render_tables(doc)
    _atomic_write(paths["json"], json.dumps(doc, indent=1, sort_keys=False) + "\n")
    _atomic_write(paths["tex"], tex)
    _atomic_write(paths["md"], md)
    return paths


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--rss-child":
        raise SystemExit(_rss_child(sys.argv[2]))
    raise SystemExit("usage: python -m lsbench bench (this module's entry point is internal)")
