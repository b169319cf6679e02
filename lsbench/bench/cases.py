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
# The catalogue's newer recipes: timed at MORE_RECIPE_SHAPES by default (``--more-recipe-shapes all``: everywhere),
# which keeps the default run near its old length.
MORE_RECIPE_NAMES = ("flax_kl", "opennmt", "hf_label_smoother", "fairseq_v0_10", "fairseq", "poly",
                     "label_relaxation", "keras_binary", "timm_binary", "mmpretrain_multilabel")
MORE_RECIPE_SHAPES: tuple[tuple[int, ...], ...] = ((256, 10), (256, 1000), (1024, 32000))  # K = 10, 1000, 32000
SIGMOID_RECIPES = ("keras_binary", "timm_binary", "mmpretrain_multilabel")
TEMPERATURE = 2.0  # distillation's case (the recipe's default)
PEER_IMPLS = ("optax", "torch")
#: What each peer family computes, per library; a recipe is timed against the family of its own computation.
PEERS = {
    "ce": {"optax": "optax.softmax_cross_entropy(z, optax.smooth_labels(one_hot(y), eps)).mean()",
           "torch": "F.cross_entropy(z, y, label_smoothing=eps)"},
    "kl": {"optax": "T**2 * optax.kl_divergence(jax.nn.log_softmax(s / T), jax.nn.softmax(t / T)).mean()",
           "torch": "F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction='batchmean') * T**2"},
    "sigmoid": {"optax": "optax.sigmoid_binary_cross_entropy(z, (1 - eps) * one_hot(y) + eps / 2).mean()",
                "torch": "F.binary_cross_entropy_with_logits(z, (1 - eps) * one_hot(y) + eps / 2)"},
}
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


def peer_family(name: str) -> str:
    """The peer family (a key of :data:`PEERS`) of a recipe or peer case name: ``kl`` for distillation,
    ``sigmoid`` for the sigmoid recipes, else ``ce`` (smoothed softmax cross-entropy)."""
    if name in ("distillation", "kl"):
        return "kl"
    if name in (*SIGMOID_RECIPES, "sigmoid"):
        return "sigmoid"
    return "ce"


def peer_case_name(family: str, impl: str) -> str:
    """The case name of a peer: ``optax`` / ``torch`` for the cross-entropy family (as before), else the family."""
    return impl if family == "ce" else family


def recipes_at(shape: Sequence[int], more_recipe_shapes: Iterable[Sequence[int]] | None = None) -> tuple[str, ...]:
    """The recipes timed at ``shape``: the original seven, and the newer ones where ``more_recipe_shapes``
    (None: every shape) has it."""
    if more_recipe_shapes is None or tuple(shape) in {tuple(s) for s in more_recipe_shapes}:
        return RECIPE_NAMES + MORE_RECIPE_NAMES
    return RECIPE_NAMES


def make_cases(shapes: Iterable[Sequence[int]], dtypes: Iterable[str],
               linear_shapes: Iterable[Sequence[int]] = (),
               more_recipe_shapes: Iterable[Sequence[int]] | None = None) -> list[Case]:
    """Every case, grouped by (dtype, shape): floors first, then peers, then lsbench.

    The newer recipes (:data:`MORE_RECIPE_NAMES`) run at the shapes of ``more_recipe_shapes`` only
    (None: at every shape); each shape gets the peer families its recipes need."""
    cases: list[Case] = []
    more = None if more_recipe_shapes is None else [tuple(int(s) for s in x) for x in more_recipe_shapes]
    for dtype in dtypes:
        for shape in shapes:
            shape = tuple(int(s) for s in shape)
            recipes = recipes_at(shape, more)
            families = list(dict.fromkeys(["ce", *(peer_family(r) for r in recipes)]))
            cases += [Case(f, "floor", "floor", dtype, shape) for f in FLOORS]
            for mode in ("fwd", "fwd+bwd"):
                cases += [Case(peer_case_name(fam, impl), impl, mode, dtype, shape)
                          for fam in families for impl in PEER_IMPLS]
            for mode in ("fwd", "fwd+bwd"):
                cases += [Case(r, "lsbench", mode, dtype, shape) for r in recipes]
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
    """Cases whose name, ``impl:name`` or id matches a glob; floors always stay, and so do the peers of
    every selected recipe in its group (ratios need them)."""
    if not patterns:
        return list(cases)

    def matches(c):
        keys = (c.name, f"{c.impl}:{c.name}", c.id, f"{c.name}/{c.mode}")
        return any(fnmatch.fnmatchcase(k, p) for p in patterns for k in keys)

    chosen = [c for c in cases if matches(c)]
    peers = {(c.group, peer_family(c.name)) for c in chosen if c.impl.startswith("lsbench")}
    return [c for c in cases if c.impl == "floor" or matches(c)
            or (c.impl in PEER_IMPLS and (c.group, peer_family(c.name)) in peers)]


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
    params = {"temperature": TEMPERATURE} if name == "distillation" else {"epsilon": EPSILON}
    return lambda z, y: loss(z, y, **params)


def recipe_second_input(name: str, inputs: "Inputs"):
    """A recipe's second argument: labels, a one-hot matrix (dense recipes) or teacher logits (distillation)."""
    from lsbench.losses import RECIPES

    kind = RECIPES[name].labels
    return {"dense": inputs.onehot, "logits": inputs.teacher}.get(kind, inputs.labels)()


def _optax_fn(family: str, k: int):
    """The optax peer of a family (see :data:`PEERS`), a function of ``(logits, labels or teacher)``."""
    import jax
    import optax

    if family == "kl":
        def f(s, t):
            kl = optax.kl_divergence(jax.nn.log_softmax(s / TEMPERATURE), jax.nn.softmax(t / TEMPERATURE))
            return TEMPERATURE ** 2 * kl.mean()
    elif family == "sigmoid":
        def f(z, y):
            target = (1 - EPSILON) * jax.nn.one_hot(y, k, dtype=z.dtype) + EPSILON / 2
            return optax.sigmoid_binary_cross_entropy(z, target).mean()
    else:
        def f(z, y):
            q = optax.smooth_labels(jax.nn.one_hot(y, k), EPSILON)
            return optax.softmax_cross_entropy(z, q).mean()
    return f


def _torch_loss(family: str, k: int):
    """The PyTorch peer of a family (see :data:`PEERS`) on ``[rows, K]`` tensors."""
    import torch.nn.functional as F

    if family == "kl":
        def loss(s, t):
            return F.kl_div(F.log_softmax(s / TEMPERATURE, dim=-1), F.softmax(t / TEMPERATURE, dim=-1),
                            reduction="batchmean") * TEMPERATURE ** 2
    elif family == "sigmoid":
        def loss(z, y):
            target = (1 - EPSILON) * F.one_hot(y, k).to(z.dtype) + EPSILON / 2
            return F.binary_cross_entropy_with_logits(z, target)
    else:
        def loss(z, y):
            return F.cross_entropy(z, y, label_smoothing=EPSILON)
    return loss


def _torch_prepared(case: Case, inputs: Inputs) -> Prepared:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise Skip("torch is not installed (pip install -e '.[peers]')") from None

    device = _torch_device(torch)
    if device == "cpu":
        torch.set_num_threads(usable_cores())
    k = case.shape[-1]
    family = peer_family(case.name)

    def tensor(a):  # [rows, K] in the case's dtype, on the peer's device
        t = torch.from_numpy(np.array(a, dtype=np.float32)).reshape(-1, k)
        return (t.to(torch.bfloat16) if case.dtype == "bfloat16" else t).to(device)

    z = tensor(inputs.logits())
    if family == "kl":
        y = tensor(inputs.teacher())
    else:
        y = torch.from_numpy(np.array(inputs.labels(), dtype=np.int64)).reshape(-1).to(device)
    loss = _torch_loss(family, k)
    if case.mode == "fwd":
        def run(z, y):
            with torch.inference_mode():
                return loss(z, y)
    elif case.mode == "fwd+bwd":
        z.requires_grad_(True)

        def run(z, y):
            value = loss(z, y)
            (g,) = torch.autograd.grad(value, z)
            return value, g
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
        family = peer_family(case.name)
        f = _optax_fn(family, case.shape[-1])
        second = inputs.teacher() if family == "kl" else inputs.labels()
    elif case.impl == "lsbench-chunked":
        from lsbench.losses import chunked

        def f(z, y):
            return chunked.loss(z, y, recipe="uniform", chunk_size=chunk_size, epsilon=EPSILON)
        second = inputs.labels()
    else:
        f = _recipe_fn(case.name)
        second = recipe_second_input(case.name, inputs)
    if case.mode == "fwd":
        return _jax_prepared(f, (inputs.logits(), second))
    if case.mode == "fwd+bwd":
        return _jax_prepared(jax.value_and_grad(f), (inputs.logits(), second))
    if case.mode == "fwd+bwd:donated":
        return _jax_prepared(jax.value_and_grad(f), (inputs.logits(), second), donate=(0,))
    raise ValueError(f"unknown mode {case.mode!r}")
