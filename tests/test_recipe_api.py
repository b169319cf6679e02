"""``lsbench.losses.recipe_api``: the scalar loss built from a per-example function, shared docs."""

import jax.numpy as jnp
import numpy as np
import pytest

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def _rows(a, b, *, scale=2.0, ignore_index=None, where=None):
    rows = scale * jnp.asarray(a, jnp.float32)
    mask = P.row_mask(jnp.asarray(b), ignore_index=ignore_index, where=where)
    return P.apply_mask(rows, mask)


def test_reduced_uses_the_defaults_and_the_rows_that_ignore_index_and_where_keep():
    loss = recipe_api.reduced(_rows, P.masked_mean, "the mean over kept rows")
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, -1, 2, 3])
    assert float(loss(a, b)) == pytest.approx(5.0)
    assert float(loss(a, b, ignore_index=-1)) == pytest.approx(2.0 * 8 / 3)
    assert float(loss(a, b, ignore_index=-1, where=np.array([True, True, False, True]), scale=1.0)) == 2.5
    assert "the mean over kept rows" in loss.__doc__ and loss.__name__ == "loss"
    with pytest.raises(TypeError, match="unexpected"):
        loss(a, b, epsilon=0.1)


def test_shared_docs_fills_the_markers():
    def f():
        """Args:
          {INTEGER_LABEL_ARGS}

        {PER_EXAMPLE_RETURNS}
        """

    doc = recipe_api.shared_docs(f).__doc__
    assert "ignore_index:" in doc and "Returns:" in doc and "{" not in doc
