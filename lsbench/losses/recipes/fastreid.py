r"""``fastreid``: fixed or adaptive ε with ε/(K−1) spreading (JDAI-CV/fast-reid).

fast-reid's ``cross_entropy_loss(pred, gt, eps, alpha=0.2)``:

* ``epsilon ≥ 0``: ``ε_i = epsilon`` for every row;
* ``adaptive=True``, or ``epsilon < 0`` (fast-reid's published switch): ``ε_i = α·p_{i,y_i}``, the model's own softmax
  probability of the true class, treated as a constant (fast-reid builds the
  targets under ``torch.no_grad``).

Targets ``q_y = 1 − ε_i``, ``q_j = ε_i/(K−1)`` (constants), so per row::

    L_i = lse − (1 − ε_i)·z_y − ε_i/(K−1)·(S − z_y)

Gradient (what fast-reid computes): ``softmax(z) − q``. The full derivative of
the adaptive loss has an extra term from ``∂ε_i/∂z`` that the stop-gradient
drops (``proofs/fastreid.py`` derives it). Reduction:
``Σ_i L_i / max(#{i : L_i ≠ 0}, 1)`` -- the sum divided by the number of rows
whose loss is non-zero, not by the batch size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api
from lsbench.losses.recipes.off_target import spread_rows


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon, alpha, adaptive=False) -> jax.Array:
    """``L_i`` with ``ε_i = ε`` or, adaptive (``adaptive`` or ε < 0), ``ε_i = α·sg(p_y)`` (every path calls this)."""
    dt = stats.lse.dtype
    eps = jnp.asarray(epsilon, dt)
    p_y = jax.lax.stop_gradient(jnp.exp(stats.target - stats.lse))
    eps_i = jnp.where(jnp.asarray(adaptive) | (eps < 0), jnp.asarray(alpha, dt) * p_y, eps)
    return spread_rows(stats, num_classes, eps_i)


def check_params(num_classes: int, *, epsilon, alpha, adaptive=False, **_):
    P.check_epsilon(epsilon, allow_negative=True)
    P.check_epsilon(alpha, name="alpha")
    if P.is_concrete(adaptive) and np.asarray(adaptive).dtype != np.bool_:
        raise TypeError(f"adaptive must be a bool, got {adaptive!r}")
    P.check_num_classes(num_classes, 2, "fastreid")


def reduce(rows, mask=None, norm=None):
    """``Σ_i L_i / max(#{i : L_i ≠ 0}, 1)`` (fast-reid's reduction; masked rows are 0)."""
    count = jax.lax.stop_gradient(jnp.sum(rows != 0)).astype(rows.dtype)
    return jnp.sum(rows) / jnp.maximum(count, 1)


@recipe_api.shared_docs
def fastreid(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, alpha: float = 0.2,
             adaptive: bool = False, ignore_index: int | None = None,
             where: jax.Array | None = None) -> jax.Array:
    r"""Per-example fast-reid loss: fixed ε, or adaptive ``ε_i = α·p_y`` (a constant), spread as ε/(K−1).

    .. math::

      L_i = \operatorname{logsumexp}(z) - (1-\varepsilon_i)\, z_y
            - \frac{\varepsilon_i}{K-1}\Big(\sum_j z_j - z_y\Big),
      \qquad \varepsilon_i = \begin{cases} \alpha\,\mathrm{sg}(p_y) & \text{adaptive} \\
                                            \varepsilon & \text{otherwise} \end{cases}

    Args:
      logits: ``[..., K]`` floating logits, ``K ≥ 2``.
      {INTEGER_LABEL_ARGS}
      epsilon: fixed ε in ``[0, 1]``; a negative value selects the adaptive mode
        (fast-reid's published convention).
      alpha: ``α`` in ``[0, 1]`` of the adaptive mode.
      adaptive: use ``ε_i = α·p_y`` (same as a negative ``epsilon``).

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import fastreid
      >>> print(fastreid(jnp.zeros((1, 4)), jnp.array([0]), adaptive=True))  # log 4 for every ε_i
      [1.3862944]

    References:
      JDAI-CV/fast-reid, ``fastreid/modeling/losses/cross_entroy_loss.py``.
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon, alpha=alpha, adaptive=adaptive)[0]



loss = recipe_api.reduced(fastreid, reduce, "Σ_i L_i / max(#{i : L_i ≠ 0}, 1), fast-reid's reduction")


def targets(labels, num_classes, *, epsilon, alpha=P.keyword_defaults(fastreid)["alpha"], adaptive=False,
            logits=None):
    """Dense fast-reid targets; the adaptive mode (``adaptive`` or ``epsilon < 0``) needs ``logits``."""
    P.check_epsilon(epsilon, allow_negative=True)
    P.check_num_classes(num_classes, 2, "fastreid")
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    if not adaptive and epsilon >= 0:
        eps = jnp.asarray(epsilon, onehot.dtype)[..., None]
    else:
        if logits is None:
            raise ValueError("adaptive fastreid targets (adaptive=True or epsilon < 0) depend on the logits: pass logits=")
        p = jax.nn.softmax(jnp.asarray(logits, onehot.dtype), axis=-1)
        eps = alpha * jnp.sum(p * onehot, axis=-1, keepdims=True)
    return onehot * (1 - eps) + (1 - onehot) * eps / (num_classes - 1)
