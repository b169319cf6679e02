r"""Code theorems of the large-vocabulary paths: ``chunked``, the fused linear layer, vocabulary sharding.

Each path is reached through ONE small adapter function (:func:`chunked_call`,
:func:`linear_call`, :func:`vocab_call`), so that a change of the paths' calling
convention is a change here only. What is proved is described in :mod:`proofs.code`.

Chunk sizes: for each K, sizes that divide K and sizes that do not
(:data:`CHUNKS`), so both the exact block loop and the shifted, masked last
block are covered; ``chunk_size < K`` always, so the ``fori_loop`` runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import sympy as sp

from proofs import code as cd
from proofs import code_recipes as cr
from proofs import kernel as kn

CHUNKS = {2: (1,), 3: (1, 2), 4: (2, 3), 5: (2, 4)}  #: chunk sizes per K (dividing and not)
LINEAR_CHUNKS = {2: (1,), 3: (2,), 4: (2,), 5: (2,)}  #: one per K for the (costlier) linear path: divides K = 2, 4
CHUNKED_RECIPES = ("uniform", "off_target", "fastai", "speech_transformer", "fastreid")
LINEAR_RECIPES = ("uniform", "off_target")
HIDDEN = 2  #: hidden size of the fused linear theorems
VOCAB_RECIPES = ("uniform", "off_target")
VOCAB_SHARDS = 2  #: devices of the vocabulary-sharded theorems' mesh (odd K: padded vocabulary)


# --------------------------------------------------------------------------
# adapters: the only places that know the paths' calling conventions
# --------------------------------------------------------------------------


def chunked_call(recipe: str, chunk_size: int):
    """``call(kind, logits, labels, **params)`` on ``lsbench.losses.chunked``."""
    from lsbench.losses import chunked

    def call(kind, logits, labels, **kw):
        fn = chunked.per_example if kind == "per_example" else chunked.loss
        return fn(logits, labels, recipe=recipe, chunk_size=chunk_size, **kw)
    return call


def linear_call(recipe: str, chunk_size: int):
    """``call(kind, hidden, weight, labels, epsilon=, ignore_index=)`` on ``lsbench.losses.linear``."""
    from lsbench.losses import linear

    def call(kind, hidden, weight, labels, **kw):
        return linear.linear_smoothed_cross_entropy(
            hidden, weight, labels, recipe=recipe, chunk_size=chunk_size,
            reduction="none" if kind == "per_example" else "mean", **kw)
    return call


def vocab_call(recipe: str, mesh, num_classes: int | None):
    """``call(kind, logits, labels, **params)`` on ``lsbench.parallel.vocab``'s sharded loss."""
    from lsbench.parallel import vocab_sharded_loss, vocab_sharded_per_example

    def call(kind, logits, labels, **kw):
        fn = vocab_sharded_per_example if kind == "per_example" else vocab_sharded_loss
        return fn(logits, labels, mesh, recipe=recipe, num_classes=num_classes, **kw)
    return call


# --------------------------------------------------------------------------
# chunked
# --------------------------------------------------------------------------


def chunked_theorem(recipe: str, dtype: str, ks=cd.KS) -> kn.Theorem:
    spec = cr.spec_named(recipe)

    def build_k(k):
        claims = []
        for c in CHUNKS[k]:
            claims += cr.int_claims(spec, chunked_call(recipe, c), k, dtype, f"chunked(c={c})")
        return claims

    statement = (rf"\text{{jaxpr of chunked per\_example, loss, grad ({dtype}, chunk sizes dividing K and not)}}"
                 r" = \text{dense spec and its derivative}")
    return cd.code_theorem(recipe, f"code_chunked_{dtype}", statement, build_k, spec.assumptions, ks)


# --------------------------------------------------------------------------
# fused linear layer
# --------------------------------------------------------------------------


def linear_claims(recipe: str, K: int, dtype: str, chunk_size: int) -> list:
    import jax
    import jax.numpy as jnp

    spec = cr.spec_named(recipe)
    b = cd.Batch.make(K, where=False, ignore_index=cd.IGNORE)
    n = len(b.labels)
    H = cd.symbols("h", (n, HIDDEN), real=True)
    # weight entries are shared by every row: named so that proofs.code.row_groups does not link rows by them
    Wt = np.array([[sp.Symbol(f"W{k}c{j}", real=True) for j in range(K)] for k in range(HIDDEN)], dtype=object)
    labels = jnp.asarray(b.labels, jnp.int32)
    call = linear_call(recipe, chunk_size)
    kw = {"ignore_index": cd.IGNORE}

    def loss(h, w, e):
        return call("loss", h, w, labels, epsilon=e, **kw)

    def program(h, w, e):
        return call("per_example", h, w, labels, epsilon=e, **kw), loss(h, w, e), jax.grad(loss, (0, 1))(h, w, e)

    dt = jnp.dtype(dtype)
    outs = cd.run(program, [jnp.zeros((n, HIDDEN), dt), jnp.zeros((HIDDEN, K), dt), 0.1], [H, Wt, kn.eps],
                  params_from=2)
    rows, stopped = cr._row_specs(spec, b, {"epsilon": kn.eps})
    logits = H.dot(Wt)
    to_code = {b.Z[ix]: logits[ix] for ix in np.ndindex(n, K)}
    total = spec.reduce(rows, b, {})
    total_code = total.xreplace(to_code)
    label = f"{recipe} linear(c={chunk_size}) {dtype} K={K}"
    return (cd.compare(outs[0], np.array([r.xreplace(to_code) for r in rows], dtype=object), f"{label} per_example")
            + cd.compare(outs[1], np.array(total_code, dtype=object), f"{label} loss")
            + cd.compare(outs[2], cd.gradient_spec(total_code, H, {}, {}), f"{label} grad[hidden]")
            + cd.compare(outs[3], cd.gradient_spec(total_code, Wt, {}, {}), f"{label} grad[weight]"))


def linear_theorem(recipe: str, dtype: str, ks=cd.KS) -> kn.Theorem:
    statement = (rf"\text{{jaxpr of the fused linear loss (H = {HIDDEN}, {dtype}), grad in hidden and weight}}"
                 r" = \text{dense spec of } hW \text{ and its derivative}")
    return cd.code_theorem(recipe, f"code_linear_{dtype}", statement,
                           lambda k: [c for cs in LINEAR_CHUNKS[k] for c in linear_claims(recipe, k, dtype, cs)], "", ks)


# --------------------------------------------------------------------------
# vocabulary-sharded (a subprocess with a multi-device CPU backend)
# --------------------------------------------------------------------------


def vocab_claims(recipe: str, K: int, dtype: str) -> list:
    """The claims on a mesh of :data:`VOCAB_SHARDS` devices (needs that many JAX devices).

    For K not divisible by the shard count the class axis is padded with one more
    symbolic column and ``num_classes=K``: the padding must get zero gradient.
    """
    import jax

    from lsbench.parallel import make_mesh

    if jax.device_count() < VOCAB_SHARDS:
        raise RuntimeError(f"the vocabulary-sharded theorems need {VOCAB_SHARDS} devices, found "
                           f"{jax.device_count()} (run them through vocab_results)")
    mesh = make_mesh(VOCAB_SHARDS, ("model",))
    pad = (-K) % VOCAB_SHARDS
    spec = cr.spec_named(recipe)
    call = vocab_call(recipe, mesh, K if pad else None)
    path = f"vocab(n={VOCAB_SHARDS}{', padded' if pad else ''})"
    return cr.int_claims(spec, call, K, dtype, path, pad=pad)


def _vocab_worker(jobs) -> dict:
    out = {}
    for recipe, dtype, ks in jobs:
        rows = []
        for k in ks:
            try:
                for c in vocab_claims(recipe, k, dtype):
                    ok = cd.is_exact_zero(c.expr)
                    rows.append([c.label, ok, "" if ok else sp.sstr(c.expr)[:300]])
            except Exception as exc:  # reported as a refused claim naming the theorem and K
                rows.append([f"{recipe} vocab {dtype} K={k}", False, f"{type(exc).__name__}: {exc}"])
        out[f"{recipe}/{dtype}"] = rows
    out["primitives"] = sorted(cd.REACHED)
    return out


_VOCAB_CACHE: dict = {}


def vocab_results(jobs: tuple) -> dict:
    """Run :func:`vocab_claims` for ``jobs`` in one subprocess with a multi-device CPU backend (cached)."""
    if jobs not in _VOCAB_CACHE:
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_force_host_platform_device_count")]
        env = {**os.environ, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": " ".join(flags + [f"--xla_force_host_platform_device_count={VOCAB_SHARDS}"]),
               "PYTHONPATH": os.pathsep.join([str(cd.ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        proc = subprocess.run([sys.executable, "-m", "proofs.code_paths", json.dumps(jobs)], env=env,
                              capture_output=True, text=True, timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the vocabulary-sharded worker failed (rc={proc.returncode}): {proc.stderr[-1500:]}")
        _VOCAB_CACHE[jobs] = json.loads(lines[-1][len("RESULT "):])
        cd.REACHED.update(_VOCAB_CACHE[jobs]["primitives"])
    return _VOCAB_CACHE[jobs]


def vocab_theorem(recipe: str, dtype: str, jobs: tuple, ks=cd.KS) -> kn.Theorem:
    def build_k(k):
        rows = vocab_results(jobs)[f"{recipe}/{dtype}"]
        mine = [r for r in rows if f" K={k} " in r[0] + " "]
        if not mine:
            raise RuntimeError(f"no vocabulary-sharded result for {recipe} {dtype} K={k}")
        # the exact check ran in the worker; its verdicts become claims here
        return [kn.Claim(sp.Integer(0) if ok else sp.Symbol(text or "refused"), "zero", label,
                         decide=cd.is_exact_zero, instances=False) for label, ok, text in mine]

    statement = (rf"\text{{jaxpr of vocab-sharded per\_example, loss, grad ({VOCAB_SHARDS} shards, {dtype},"
                 r" shard\_map and collectives)} = \text{dense spec and its derivative}")
    return cd.code_theorem(recipe, f"code_vocab_{dtype}", statement, build_k, "", ks,
                           note=f"checked in a subprocess with {VOCAB_SHARDS} CPU devices")


def theorems(recipes=None, dtypes=cr.DTYPES, ks=cd.KS) -> list[kn.Theorem]:
    out = []
    for r in CHUNKED_RECIPES:
        if recipes is None or r in recipes:
            out += [chunked_theorem(r, dt, ks) for dt in dtypes]
    for r in LINEAR_RECIPES:
        if recipes is None or r in recipes:
            out += [linear_theorem(r, dt, ks) for dt in dtypes]
    vocab = [r for r in VOCAB_RECIPES if recipes is None or r in recipes]
    jobs = tuple((r, "float32", tuple(ks)) for r in vocab)
    out += [vocab_theorem(r, "float32", jobs, ks) for r in vocab]
    return out


if __name__ == "__main__":  # the vocabulary-sharded worker (see vocab_results)
    print("RESULT " + json.dumps(_vocab_worker([(r, d, tuple(k)) for r, d, k in json.loads(sys.argv[1])])))
