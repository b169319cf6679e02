r"""The measurements and the verdict rule of the Müller et al. (2019) reproduction (pure NumPy).

**Projection onto the plane of three templates** (Müller, Kornblith, Hinton
2019, §2 and Figure 1). The logit of class ``k`` is ``z_k = hᵀw_k + b_k``:
``w_k`` (a column of the last layer's weight matrix) is the class *template*
and ``h`` the penultimate-layer activation. For three classes ``a, b, c``,
:func:`template_plane_basis` returns an orthonormal basis ``E = [e₁ e₂]``
(``D × 2``) of the directions of the plane through ``w_a, w_b, w_c``, by
Gram–Schmidt (a reduced QR) on ``[w_b − w_a, w_c − w_a]``, with the sign of
each column fixed so that the results are deterministic.
:func:`project_onto_plane` gives the 2-D coordinates ``(h − o)ᵀE`` with the
origin ``o`` = mean of the three templates. Because
``z_b − z_a = hᵀ(w_b − w_a) + const``, the coordinates determine the
differences between the three logits, so the figure shows exactly what the
classifier sees of those classes.

**Cluster tightness** (:func:`cluster_tightness`), over all classes of a set
of penultimate activations ``h_i`` with labels ``y_i``: class centroids
``μ_c``, then::

    within  = mean_i ‖h_i − μ_{y_i}‖                 (mean distance to own centroid)
    between = mean_{c < c'} ‖μ_c − μ_{c'}‖           (mean distance between centroids)
    ratio   = within / between                       (scale-free; smaller = tighter)
    between_cv = std_{c<c'} ‖μ_c − μ_{c'}‖ / between (0 = equidistant centroids)

Müller et al.'s claim is that label smoothing makes ``ratio`` smaller
(tight clusters) and the centroids closer to equidistant (``between_cv``
smaller).

**Measured as the paper does** (:func:`template_geometry`): inside the
*template subspace* (:func:`template_subspace_basis`: an orthonormal basis
``E`` of ``span{w_k − w_0 : k = 1..K−1}``, the ``K − 1`` directions that change
the differences between logits; for three classes it is the plane of the
figure), with the origin ``o`` at the templates' mean, ``p_i = (h_i − o)ᵀE``
and ``t_k = (w_k − o)ᵀE``:

* ``spread`` -- the within-class spread relative to the distance between
  clusters there: ``mean_i ‖p_i − m_{y_i}‖ / mean_{c<c'} ‖m_c − m_{c'}‖`` (``m_c``
  the class means of ``p``; the ``ratio`` of :func:`cluster_tightness` in the
  subspace; scale-free, so the arbitrary scale between ``h`` and ``w`` cancels);
* ``wrong_spread`` -- how unequal an example's squared distances
  ``d²_ik = ‖p_i − t_k‖²`` to the wrong-class templates ``k ≠ y_i`` are,
  relative to how much closer its own template is:
  ``mean_i std_{k≠y_i} d²_ik / mean_i (mean_{k≠y_i} d²_ik − d²_{i,y_i})``
  (0 = every wrong-class template at the same distance). Because
  ``‖h − w_k‖² = ‖p − t_k‖² + ‖(h − o)_⊥‖²`` with the orthogonal part the same for
  every ``k``, these are the paper's distances with the directions the last
  layer ignores (which no loss constrains) removed; and as
  ``z_k = −½‖h − w_k‖² + ½‖h‖² + ½‖w_k‖² + b_k``, equal squared distances mean equal
  wrong-class logits up to the templates' norms and biases. Scale-free (a
  common rescaling of ``h`` and ``w`` cancels), unlike a plain CV of the
  distances, which shrinks for any point far from all templates.

The full penultimate space (:func:`cluster_tightness` on ``h``) is kept as
a supplementary measure.

**Verdict rule** (:func:`verdict`). A published claim is a sign: "the
difference ``d = x(method) − x(reference)`` is negative" (or positive).
With the per-seed paired differences ``d_s`` summarised by
:func:`lsbench.metrics.paired_difference` (mean and 95 % Student-t CI over
the seeds):

* ``reproduced``     -- the whole CI lies on the published side of 0;
* ``not reproduced`` -- the whole CI lies on the other side of 0;
* ``inconclusive``   -- the CI contains 0, or there are fewer than 2 seeds;
* ``precondition not met`` -- the sub-claim's premise (checked in code
  before the sign is looked at, :func:`gated_verdict`) does not hold in this
  regime, so the sign says nothing about the claim.

A finding made of several such sub-claims (:func:`combine`) is
``not reproduced`` when any is, ``reproduced`` when all are, ``precondition
not met`` when none could be tested, otherwise ``inconclusive``; across
data sets, a finding is ``reproduced`` / ``not reproduced`` only when every
data set that ran agrees, otherwise ``inconclusive``
(:func:`combine_datasets`).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

__all__ = [
    "REPRODUCED",
    "NOT_REPRODUCED",
    "INCONCLUSIVE",
    "PRECONDITION_NOT_MET",
    "VERDICT_RULE",
    "template_subspace_basis",
    "template_plane_basis",
    "project_onto_plane",
    "cluster_tightness",
    "template_geometry",
    "verdict",
    "gated_verdict",
    "combine",
    "combine_datasets",
]

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
PRECONDITION_NOT_MET = "precondition not met"

VERDICT_RULE = (
    "Each sub-claim is a published sign of a per-seed paired difference d = x(method) - x(reference). "
    "reproduced: the 95% Student-t CI of mean(d) over seeds lies entirely on the published side of 0; "
    "not reproduced: it lies entirely on the other side; inconclusive: it contains 0 or fewer than 2 "
    "seeds; precondition not met: the sub-claim's premise (stated with it and checked first) does not "
    "hold in this regime, so its sign is not judged. A finding is not reproduced if any sub-claim is, "
    "reproduced if all are, precondition not met if none could be tested, else inconclusive; across "
    "data sets it is reproduced / not reproduced only if every data set that ran agrees, else inconclusive."
)


def template_subspace_basis(templates: np.ndarray) -> np.ndarray:
    """Orthonormal ``[D, K−1]`` basis of ``span{w_k − w_0}`` for templates ``[K, D]`` (rows), ``K ≥ 2``.

    Gram–Schmidt order (reduced QR of ``[w_1 − w_0, …, w_{K−1} − w_0]``) with
    the signs fixed so that ``e_k · (w_k − w_0) > 0``: the same templates
    always give the same basis. Raises ``ValueError`` when the differences
    are linearly dependent (the templates span fewer than ``K − 1`` dimensions).
    """
    w = np.asarray(templates, np.float64)
    if w.ndim != 2 or w.shape[0] < 2:
        raise ValueError(f"templates must be [K, D] with K >= 2, got shape {w.shape}")
    if w.shape[0] - 1 > w.shape[1]:
        raise ValueError(f"{w.shape[0]} templates in {w.shape[1]} dimensions cannot be affinely independent")
    a = (w[1:] - w[0]).T  # [D, K-1]
    q, r = np.linalg.qr(a)
    scale = max(1.0, float(np.abs(a).max()))
    if np.any(np.abs(np.diag(r)) < 1e-12 * scale):
        raise ValueError("the templates are collinear (affinely dependent): they span no "
                         f"{w.shape[0] - 1}-dimensional subspace")
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def template_plane_basis(templates: np.ndarray) -> np.ndarray:
    """Orthonormal ``[D, 2]`` basis of the plane through three templates (rows of ``templates [3, D]``):
    ``e1`` along ``w_b − w_a``, ``e2`` towards ``w_c``."""
    w = np.asarray(templates, np.float64)
    if w.ndim != 2 or w.shape[0] != 3:
        raise ValueError(f"templates must be [3, D], got shape {w.shape}")
    return template_subspace_basis(w)


def project_onto_plane(h: np.ndarray, templates: np.ndarray, basis: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(coords [N, 2], template_coords [3, 2])``: ``(h − o)ᵀE`` with ``o`` the templates' mean."""
    w = np.asarray(templates, np.float64)
    e = template_plane_basis(w) if basis is None else np.asarray(basis, np.float64)
    o = w.mean(axis=0)
    return (np.asarray(h, np.float64) - o) @ e, (w - o) @ e


def cluster_tightness(h: np.ndarray, labels: np.ndarray) -> dict:
    """``{"within", "between", "ratio", "between_cv", "classes"}`` (see the module docstring)."""
    h = np.asarray(h, np.float64)
    y = np.asarray(labels)
    if h.ndim != 2 or y.shape != (h.shape[0],):
        raise ValueError(f"h must be [N, D] and labels [N], got {h.shape} and {y.shape}")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("cluster tightness needs at least two classes")
    mu = np.stack([h[y == c].mean(axis=0) for c in classes])
    pos = np.searchsorted(classes, y)
    within = float(np.mean(np.linalg.norm(h - mu[pos], axis=1)))
    iu = np.triu_indices(len(classes), k=1)
    d = np.linalg.norm(mu[:, None, :] - mu[None, :, :], axis=-1)[iu]
    between = float(d.mean())
    if between <= 0:
        raise ValueError("all class centroids coincide")
    return {"within": within, "between": between, "ratio": within / between,
            "between_cv": float(d.std() / between), "classes": int(len(classes))}


def template_geometry(h: np.ndarray, labels: np.ndarray, templates: np.ndarray) -> dict:
    """``{"spread", "wrong_spread", "classes"}`` of activations ``h [N, D]`` against templates ``[K, D]``
    inside the template subspace (see the module docstring).

    >>> t = np.array([[0., 0.], [2., 0.], [1., 2.]])
    >>> g = template_geometry(t, np.array([0, 1, 2]), t)  # each example on its template
    >>> # wrong-class squared distances (4, 5), (4, 5), (5, 5): stds 0.5, 0.5, 0; margins 4.5, 4.5, 5
    >>> round(g["spread"], 6), round(g["wrong_spread"], 6), round(1 / 14, 6)
    (0.0, 0.071429, 0.071429)
    """
    w = np.asarray(templates, np.float64)
    y = np.asarray(labels)
    h = np.asarray(h, np.float64)
    if h.ndim != 2 or h.shape[1] != w.shape[1] or y.shape != (h.shape[0],):
        raise ValueError(f"h must be [N, D] with the templates' D and labels [N], got {h.shape}, {w.shape}, "
                         f"{y.shape}")
    if w.shape[0] < 3:
        raise ValueError("wrong-class distances need at least three templates")
    e = template_subspace_basis(w)
    o = w.mean(axis=0)
    p, t = (h - o) @ e, (w - o) @ e
    d2 = np.sum((p[:, None, :] - t[None, :, :]) ** 2, axis=-1)  # [N, K]
    rows = np.arange(len(y))
    wrong = np.ones_like(d2, dtype=bool)
    wrong[rows, y] = False
    dw = d2[wrong].reshape(len(y), -1)
    margin = float(np.mean(dw.mean(axis=1) - d2[rows, y]))
    if margin <= 0:
        raise ValueError("the examples are on average no closer to their own template than to the others")
    tight = cluster_tightness(p, y)
    return {"spread": tight["ratio"], "wrong_spread": float(dw.std(axis=1).mean() / margin),
            "classes": tight["classes"]}


def gated_verdict(diff: Mapping | None, direction: int, precondition_met: bool) -> str:
    """:data:`PRECONDITION_NOT_MET` when the premise fails, else :func:`verdict`."""
    return verdict(diff, direction) if precondition_met else PRECONDITION_NOT_MET


def verdict(diff: Mapping | None, direction: int) -> str:
    """The verdict for a paired-difference summary whose published sign is ``direction`` (−1 or +1)."""
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got {direction}")
    if not diff or diff.get("ci") is None or diff.get("n", 0) < 2:
        return INCONCLUSIVE
    lo, hi = float(diff["lo"]), float(diff["hi"])
    if direction < 0:
        return REPRODUCED if hi < 0 else NOT_REPRODUCED if lo > 0 else INCONCLUSIVE
    return REPRODUCED if lo > 0 else NOT_REPRODUCED if hi < 0 else INCONCLUSIVE


def combine(verdicts: Iterable[str]) -> str:
    """Any not reproduced -> not reproduced; all reproduced -> reproduced; none testable (all
    precondition not met) -> precondition not met; else inconclusive."""
    vs = list(verdicts)
    if not vs:
        return INCONCLUSIVE
    if any(v == NOT_REPRODUCED for v in vs):
        return NOT_REPRODUCED
    if all(v == REPRODUCED for v in vs):
        return REPRODUCED
    if all(v == PRECONDITION_NOT_MET for v in vs):
        return PRECONDITION_NOT_MET
    return INCONCLUSIVE


def combine_datasets(verdicts: Mapping[str, str]) -> str:
    """The same verdict on every data set -> that verdict; disagreement or none -> inconclusive."""
    vs = set(verdicts.values())
    return vs.pop() if len(vs) == 1 else INCONCLUSIVE
