"""``off_target``: ε/(K−1) spreading, as in the NumPy tutorial helper and Megatron."""

import jax
import jax.numpy as jnp
import numpy as np

import reference as ref
from lsbench.losses import RECIPES


def tutorial_label_smoothing(labels, epsilon, num_classes):
    """The NumPy helper that circulates in tutorials (written here from its description)."""
    out = np.full((len(labels), num_classes), epsilon / (num_classes - 1))
    out[np.arange(len(labels)), labels] = 1 - epsilon
    return out


def test_targets_match_the_tutorial_helper_and_sum_to_one():
    y = np.array([0, 4, 2])
    q = np.asarray(RECIPES["off_target"].targets(jnp.asarray(y), 5, epsilon=0.2))
    np.testing.assert_allclose(q, tutorial_label_smoothing(y, 0.2, 5), rtol=1e-6)
    np.testing.assert_allclose(q.sum(-1), 1.0, rtol=1e-6)


def test_two_classes_puts_all_of_epsilon_on_the_other_class():
    z = np.array([[2.0, -1.0]])
    with jax.enable_x64(True):
        got = RECIPES["off_target"].loss(jnp.asarray(z), jnp.asarray([0]), epsilon=0.3)
    rows, _ = ref.dense_ce(z, np.array([[0.7, 0.3]]))
    np.testing.assert_allclose(got, rows[0], rtol=1e-12)
