r"""Machine-checked SymPy derivations for every label-smoothing recipe in :mod:`lsbench.losses`.

One module per recipe (``proofs.<name>``, the ``proof`` field of
``RECIPES[name]``), each exposing

* ``RECIPE``: the recipe name;
* ``theorems()``: the list of :class:`proofs.kernel.Theorem` records, each a set
  of claims the checker in :mod:`proofs.kernel` must reduce to ``0`` or ``True``,
  derived for symbolic ``K`` (falling back to every K from 2 to 16, recorded as
  ``method="instances"``, where SymPy cannot close a claim symbolically);
* ``closed_form(K)``: the proven per-example loss and gradient instantiated for
  a concrete ``K`` (:class:`proofs.kernel.ClosedForm`), which
  ``tests/test_proofs_tie.py`` lambdifies and compares with the JAX code.

Beside them, the *code theorems* (:mod:`proofs.code`, built in
:mod:`proofs.code_recipes` and :mod:`proofs.code_paths`) evaluate the recipes'
own ``jax.make_jaxpr`` traces with the SymPy interpreter :mod:`proofs.jaxpr`
and check them against the dense spec exactly, for K = 2..5 (method ``code``).

``python -m lsbench verify`` runs them all and writes the certificate
(:mod:`proofs.certificate`).
"""

from __future__ import annotations

import importlib

MODULES = (
    "uniform",
    "off_target",
    "fastai",
    "tf_onehot",
    "fastreid",
    "speech_transformer",
    "distillation",
    "self_correction",
    "flax_kl",
    "opennmt",
    "hf_label_smoother",
    "fairseq_v0_10",
    "fairseq",
    "keras_binary",
    "timm_binary",
    "mmpretrain_multilabel",
    "poly",
    "label_relaxation",
)


def module(name: str):
    """The proof module of recipe ``name``."""
    if name not in MODULES:
        raise KeyError(f"no proof module for recipe {name!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(f"proofs.{name}")


def all_theorems(recipes=None):
    """Every theorem of the selected recipes (all by default), in catalogue order."""
    out = []
    for name in recipes or MODULES:
        out.extend(module(name).theorems())
    return out


def code_theorems(recipes=None, *, ks=None, names=None):
    """The code theorems (:mod:`proofs.code`) of the selected recipes, every path.

    ``ks`` overrides the class counts (default :data:`proofs.code.KS`); ``names`` keeps
    only the theorems with these names (e.g. ``"code_fused_bfloat16"``).
    """
    from proofs import code, code_paths, code_recipes

    ks = tuple(ks or code.KS)
    out = code_recipes.theorems(recipes, ks=ks) + code_paths.theorems(recipes, ks=ks)
    return [th for th in out if names is None or th.name in names]


def run(recipes=None, *, progress=None, timeout: float | None = 120.0):
    """Check the theorems of ``recipes``; ``progress(result)`` is called after each."""
    from proofs.kernel import check_theorem

    results = []
    for th in all_theorems(recipes):
        res = check_theorem(th, timeout=timeout)
        results.append(res)
        if progress is not None:
            progress(res)
    return results
