"""The benchmark's cases: what is timed, on which inputs, built how.

A :class:`Case` names one measurement (recipe / peer / floor, implementation,
mode, dtype, shape); :func:`make_cases` lists the suite, :func:`select_cases`
narrows it by glob, :class:`Inputs` builds a group's inputs once and
:func:`prepare` turns a case into a compiled callable (:class:`Prepared`).
``python -m lsbench bench`` (:mod:`lsbench.bench.run`) and the pytest-benchmark
files under ``benchmarks/`` time exactly these callables.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lsbench.provenance import usable_cores

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
                  "view with 0x8000): one read and one write pass, no allocation (on an accelerator: "
                  "jax.jit(lambda z: z * 2, donate_argnums=0), written in place in device memory)",
    "xla-write": "jax.jit(lambda z: z * 2): one read and one write pass into a fresh XLA output buffer "
                 "(allocation and page faults included)",
}

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


def _torch_prepared(case: Case, inputs: Inputs) -> Prepared:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise Skip("torch is not installed (pip install -e '.[peers]')") from None
    import torch.nn.functional as F

    device = _torch_device(torch)
    if device == "cpu":
        torch.set_num_threads(usable_cores())
    k = case.shape[-1]
    z = torch.from_numpy(np.array(inputs.logits(), dtype=np.float32)).reshape(-1, k)
    if case.dtype == "bfloat16":
        z = z.to(torch.bfloat16)
    y = torch.from_numpy(np.array(inputs.labels(), dtype=np.int64)).reshape(-1)
    z, y = z.to(device), y.to(device)
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
    sync = (lambda out: (torch.cuda.synchronize(), out)[1]) if device == "cuda" else (lambda out: out)
    return Prepared(run=run, setup=lambda: (z, y), sync=sync)


def _torch_device(torch) -> str:
    """Where the PyTorch peer runs: beside JAX (``cuda`` when JAX is on a GPU), else Skip."""
    import jax

    backend = jax.default_backend()
    if backend == "cpu":
        return "cpu"
    if backend in ("gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    raise Skip(f"JAX runs on {backend} but this PyTorch cannot use that device: a peer on another device "
               "would not be a side-by-side comparison")


def prepare_floor(case: Case, inputs: Inputs, on_host: bool) -> Prepared:
    """The memory floors; ``read+write`` in NumPy when the logits live in host memory, else in XLA (donated)."""
    import jax.numpy as jnp

    if case.name == "read":
        return _jax_prepared(lambda z: jnp.max(z, axis=-1), (inputs.logits(),))
    if case.name == "xla-write":
        return _jax_prepared(lambda z: z * 2, (inputs.logits(),))
    if not on_host:
        return _jax_prepared(lambda z: z * 2, (inputs.logits(),), donate=(0,))
    x = inputs.numpy_logits()
    buf = np.empty_like(x)
    if case.dtype == "bfloat16":
        return Prepared(run=lambda: np.bitwise_xor(x, np.uint16(0x8000), out=buf), setup=tuple)
    return Prepared(run=lambda: np.multiply(x, 2, out=buf), setup=tuple)


def prepare(case: Case, inputs: Inputs, *, chunk_size: int = CHUNK_SIZE,
            linear_chunk_size: int = LINEAR_CHUNK_SIZE) -> Prepared:
    """Build (and for JAX, compile) the callable of ``case`` on ``inputs``."""
    import jax

    if case.impl == "floor":
        return prepare_floor(case, inputs, on_host=jax.default_backend() == "cpu")
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
