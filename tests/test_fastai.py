"""``fastai``: the literal two-term mix, reduced term by term."""

import jax
import jax.numpy as jnp
import numpy as np

import reference as ref
from lsbench.losses import RECIPES


def test_matches_fastai_literal_two_term_form():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 9, 12)) * 3
    y = rng.integers(0, 12, size=(2, 9))
    with jax.enable_x64(True):
        got = RECIPES["fastai"].loss(jnp.asarray(z), jnp.asarray(y), epsilon=0.1)
    np.testing.assert_allclose(got, ref.fastai_literal(z.reshape(-1, 12), y.reshape(-1), 0.1), rtol=1e-12)
