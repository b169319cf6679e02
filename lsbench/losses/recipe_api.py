"""What every recipe module of :mod:`lsbench.losses.recipes` shares besides the maths:
the scalar ``loss`` built from the public per-example function, and docstring fragments."""

from __future__ import annotations

import jax.numpy as jnp

from lsbench.losses.primitives import bind_params


def reduced(per_example, reduce, description: str):
    """``loss(a, b, **params) = reduce(per_example(a, b, **params), mask)`` with ``per_example``'s defaults.

    ``mask`` holds the rows that ``ignore_index`` and ``where`` keep (None: all).
    ``description`` is the reduction in words, for the docstring.
    """

    def loss(a, b, **params):
        p = bind_params(per_example, params)
        rows = per_example(a, b, **p)
        mask = None
        if p.get("ignore_index") is not None:
            mask = jnp.asarray(b) != p["ignore_index"]
        if p.get("where") is not None:
            where = jnp.broadcast_to(jnp.asarray(p["where"], bool), rows.shape)
            mask = where if mask is None else mask & where
        return reduce(rows, mask)

    loss.__name__ = loss.__qualname__ = "loss"
    loss.__doc__ = (f":func:`{per_example.__name__}` reduced to a scalar: {description}.\n\n"
                    f"Takes the keyword parameters of :func:`{per_example.__name__}`, with its defaults.")
    return loss


INTEGER_LABEL_ARGS = """labels: ``[...]`` integer class indices in ``[0, K)``; under ``jax.jit`` a
        label outside that range gives a NaN loss and a NaN gradient in its row.
      ignore_index: label value whose rows are excluded, or None.
      where: boolean ``[...]`` mask of rows to keep (broadcastable)."""

SMOOTHED_LABEL_ARGS = INTEGER_LABEL_ARGS + """
      epsilon: smoothing ε in ``[0, 1]``."""

PER_EXAMPLE_RETURNS = """Returns:
      ``[...]`` losses in float32 (float64 for float64 logits); masked rows are 0."""


def shared_docs(fn):
    """Fill the ``{SMOOTHED_LABEL_ARGS}``, ``{INTEGER_LABEL_ARGS}`` and ``{PER_EXAMPLE_RETURNS}`` markers of ``fn``'s docstring."""
    fn.__doc__ = fn.__doc__.replace("{SMOOTHED_LABEL_ARGS}", SMOOTHED_LABEL_ARGS).replace(
        "{INTEGER_LABEL_ARGS}", INTEGER_LABEL_ARGS).replace(
        "{PER_EXAMPLE_RETURNS}", PER_EXAMPLE_RETURNS)
    return fn
