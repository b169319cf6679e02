"""The jaxpr interpreter over SymPy (``proofs/jaxpr.py``), the exact residual check and the certificate digests."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from proofs import certificate, code as cd, code_recipes as cr
from proofs import jaxpr as jx

x = sp.Symbol("x", real=True)
a, b = sp.symbols("a b", positive=True)


def ev(fn, *examples, args, **kw):
    return jx.evaluate(jax.make_jaxpr(fn)(*examples), [jx.as_object(v) for v in args], **kw)


def test_float_literals_become_the_rationals_the_source_wrote():
    (out,) = ev(lambda v: v * 0.1 + v / 3.0 + 1e-10, jnp.float32(0), args=[x])
    assert sp.expand(out[()] - (x / 10 + x / 3 + sp.Rational(1, 10**10))) == 0
    assert jx.exact(np.float32(1 / 3)) == sp.Rational(1, 3)
    assert jx.exact(np.float32(0.1)) == sp.Rational(1, 10)
    assert jx.exact(np.float32(1e-10)) == sp.Rational(1, 10**10)
    assert jx.exact(2.0) == 2 and jx.exact(float("-inf")) == -sp.oo


def test_unknown_primitive_is_an_error_naming_it():
    with pytest.raises(jx.UnsupportedPrimitive, match="'sort'"):
        ev(lambda v: jnp.sort(v), jnp.zeros(2), args=[np.array([x, 2 * x], dtype=object)])


def test_comparisons_on_symbolic_operands_are_refused_unless_decidable():
    with pytest.raises(jx.SymbolicBranch):
        ev(lambda v: jnp.where(v > 0, v, -v), jnp.float32(0), args=[x])
    (out,) = ev(lambda v: jnp.where(jnp.exp(v) > 0, v, -v), jnp.float32(0), args=[x])  # exp(x) > 0 is decided
    assert out[()] == x


def test_logsumexp_shift_is_a_free_symbol_and_cancels_exactly():
    row = np.array([sp.log(a), sp.log(b)], dtype=object)
    (out,) = ev(lambda v: jax.nn.logsumexp(v), jnp.zeros(2), args=[row])
    assert out[()].free_symbols - {a, b}, "the shift should appear as a free symbol"
    assert cd.is_exact_zero(out[()] - sp.log(a + b))
    assert not cd.is_exact_zero(out[()] - sp.log(a + b) - sp.Rational(1, 10**16))
    assert not cd.is_exact_zero(sp.log(a + b) - sp.log(a) - sp.log(b))


def test_gather_scatter_and_loops_with_concrete_indices():
    v = np.array([x, 2 * x, 3 * x], dtype=object)
    (out,) = ev(lambda u: u.at[1].set(u[2] * 2), jnp.zeros(3), args=[v])
    assert list(out) == [x, 6 * x, 3 * x]
    (out,) = ev(lambda u: jax.lax.fori_loop(0, 3, lambda i, c: c + u[i], 0.0), jnp.zeros(3), args=[v])
    assert sp.expand(out[()] - 6 * x) == 0
    (out,) = ev(lambda u: jax.lax.dynamic_slice(u, (jnp.int32(1),), (2,)), jnp.zeros(3), args=[v])
    assert list(out) == [2 * x, 3 * x]


def test_a_code_theorem_refuses_the_wrong_spec():
    uniform_code = cr.plain_call(cr.spec_named("uniform"))
    wrong = cr.spec_named("off_target")  # ε/(K−1) spreading against the ε/K code
    claims = cr.int_claims(wrong, uniform_code, 3, "float32", "fused")
    refused = [c.label for c in claims if not cd.is_exact_zero(c.expr)]
    assert refused and all("K=3" in label for label in refused)
    right = cr.int_claims(cr.spec_named("uniform"), uniform_code, 3, "float32", "fused")
    assert all(cd.is_exact_zero(c.expr) for c in right)


def test_certificate_digests_detect_a_changed_source(tmp_path):
    for d in certificate.SOURCE_DIRS:
        shutil.copytree(certificate.REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    cert = {"sources": certificate.source_digests(tmp_path)}
    assert certificate.stale_sources(cert, tmp_path) == []
    target = tmp_path / "lsbench" / "losses" / "recipes" / "off_target.py"
    target.write_text(target.read_text() + "\n# changed\n")
    assert certificate.stale_sources(cert, tmp_path) == ["lsbench/losses/recipes/off_target.py"]
    assert certificate.stale_sources({}, tmp_path) is None  # a certificate from before the digests
    assert json.dumps(cert)  # plain JSON


def test_custom_jvp_and_log1p_evaluate_their_primal():
    @jax.custom_jvp
    def f(v):
        return jnp.log1p(jnp.exp(v))

    f.defjvp(lambda primals, tangents: (f(primals[0]), tangents[0] * jax.nn.sigmoid(primals[0])))
    (out,) = ev(f, jnp.float32(0), args=[sp.log(a)])
    assert cd.is_exact_zero(out[()] - sp.log(1 + a))
    (g,) = ev(jax.grad(f), jnp.float32(0), args=[sp.log(a)])
    assert cd.is_exact_zero(g[()] - a / (1 + a))
