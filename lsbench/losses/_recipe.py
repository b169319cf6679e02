"""The :class:`Recipe` record that :data:`lsbench.losses.RECIPES` maps names to."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One published form of label smoothing.

    Attributes:
      name: the key in ``RECIPES``.
      title: a one-line description.
      formula: the target distribution (or loss) in LaTeX.
      closed_form: the per-example loss the fast path computes, in LaTeX.
      source: the citation of the published text/code the recipe follows.
      proof: the module under ``proofs/`` that derives it (``proofs.<name>``).
      loss: ``loss(logits, labels, **params)`` -> scalar, with the published reduction.
      per_example: ``per_example(logits, labels, **params)`` -> per-position losses.
      targets: ``targets(labels, num_classes, **params)`` -> dense ``q`` (tests and proofs
        only; never used on the fast path), or None.
      labels: what the second argument is: ``"int"`` (class indices), ``"dense"``
        (a one-hot or probability matrix) or ``"logits"`` (a teacher's logits).
      params: the keyword parameters and their defaults.
      reduction: the published reduction, in words.
      peers: libraries that implement the same maths.
    """

    name: str
    title: str
    formula: str
    closed_form: str
    source: str
    proof: str
    loss: Callable[..., Any]
    per_example: Callable[..., Any]
    targets: Callable[..., Any] | None
    labels: str
    params: Mapping[str, Any]
    reduction: str
    peers: tuple[str, ...] = ()


def recipe_entry(module, labels: str, **text) -> Recipe:
    """The :class:`Recipe` of a module of :mod:`lsbench.losses.recipes`.

    The public function of the same name as the module is ``per_example``; its
    keyword defaults (without ``where``) are ``params``, so every default is
    written once, in that signature.
    """
    from lsbench.losses.primitives import keyword_defaults

    name = module.__name__.rsplit(".", 1)[-1]
    fn = getattr(module, name)
    params = {k: v for k, v in keyword_defaults(fn).items() if k != "where"}
    return Recipe(name=name, proof=f"proofs.{name}", loss=module.loss, per_example=fn, targets=module.targets,
                  labels=labels, params=params, **text)
