"""The convention converter (``lsbench.conventions``, ``python -m lsbench convert``) against the recipes."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import proofs
from lsbench import cli, conventions
from lsbench.losses import RECIPES


def per_example_gradient(name, z, y, epsilon):
    """∂/∂z of the per-example losses of ``name`` at ``epsilon`` (float64)."""
    r = RECIPES[name]
    labels = jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype) if r.labels == "dense" else y
    return np.asarray(jax.grad(lambda a: r.per_example(a, labels, epsilon=epsilon).sum())(z))


def test_every_recipe_has_a_convention_and_every_cited_theorem_exists():
    assert set(RECIPES) <= set(conventions.REGISTRY)
    for c in conventions.REGISTRY.values():
        module, name = c.theorem.split(":")
        assert name in {t.name for t in proofs.module(module).theorems()}, c.theorem
        assert (c.to_canonical is None) == bool(c.reason), c.recipe


@pytest.mark.parametrize("k", [5, 37])
@pytest.mark.parametrize("source", [n for n, c in conventions.REGISTRY.items() if c.to_canonical is not None])
def test_converted_epsilons_give_the_same_per_example_gradient(source, k):
    rng = np.random.default_rng(k)
    y = rng.integers(2, k, size=6)  # no label 1: fairseq's and opennmt's padding index drops such rows
    eps = 0.13
    with jax.enable_x64(True):
        z = jnp.asarray(rng.normal(size=(6, k)) * 3)
        want = per_example_gradient(source, z, jnp.asarray(y), eps)
        answers = conventions.convert(source, eps, k)
        assert {a.recipe for a in answers} == set(conventions.REGISTRY) - {source}
        for a in answers:
            if a.epsilon is None:
                continue
            got = per_example_gradient(a.recipe, z, jnp.asarray(y), a.epsilon)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13, err_msg=f"{source} -> {a.recipe}")


def test_the_forms_without_an_equivalent_really_have_other_gradients():
    """opennmt and speech_transformer: no ε' of uniform matches (checked on a grid of ε')."""
    rng = np.random.default_rng(0)
    k = 7
    y = jnp.asarray(rng.integers(2, k, size=4))
    with jax.enable_x64(True):
        z = jnp.asarray(rng.normal(size=(4, k)))
        for name in ("opennmt", "speech_transformer"):
            g = per_example_gradient(name, z, y, 0.1)
            best = min(np.abs(per_example_gradient("uniform", z, y, e) - g).max() for e in np.linspace(0, 1, 201))
            assert best > 1e-3, name
            assert all(a.epsilon is None for a in conventions.convert(name, 0.1, k))


def test_fairseq_at_the_issue_s_example_is_uniform_at_eps_k_over_k_minus_one():
    (a,) = conventions.convert("fairseq", 0.1, 32000, to="uniform")
    assert a.exact == conventions.sp.Rational(1, 10) * 32000 / 31999
    (b,) = conventions.convert("uniform", float(a.exact), 32000, to="fairseq_v0_10")
    assert b.epsilon == pytest.approx(float(a.exact), rel=1e-14)
    (c,) = conventions.convert("fairseq_v0_10", 0.1, 32000, to="fairseq")
    assert c.epsilon == pytest.approx(0.1 * 31999 / 32000, rel=1e-14)


def test_out_of_range_answers_and_bad_arguments():
    (a,) = conventions.convert("off_target", 0.6, 2, to="uniform")
    assert a.epsilon is None and "outside [0, 1]" in a.why
    for kwargs, match in [({"source": "nope"}, "--from"), ({"to": "nope"}, "--to"),
                          ({"epsilon": 1.5}, "--epsilon"), ({"num_classes": 2, "source": "opennmt"}, "--num-classes")]:
        args = {"source": "fairseq", "epsilon": 0.1, "num_classes": 10, **kwargs}
        with pytest.raises(ValueError, match=match):
            conventions.convert(args.pop("source"), args.pop("epsilon"), args.pop("num_classes"), **args)


def test_convert_command_prints_every_convention(capsys):
    assert cli.main(["convert", "--from", "fairseq", "--epsilon", "0.1", "--num-classes", "32000"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  uniform +ε = 0\.1000031251 ", out, re.M)
    assert re.search(r"^  opennmt +none ", out, re.M) and "proofs.fairseq:equals_uniform" in out
    assert cli.main(["convert", "--from", "fairseq", "--epsilon", "0.1", "--num-classes", "32000",
                     "--to", "uniform"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert cli.main(["convert", "--from", "nope", "--epsilon", "0.1", "--num-classes", "3"]) == 2
    assert "--from must be one of" in capsys.readouterr().err
