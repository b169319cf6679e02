r"""muller: 'When Does Label Smoothing Help?' (Müller, Kornblith, Hinton 2019) on small offline data: calibration, distillation, representations.

The three published findings (:data:`lsbench.published.MULLER_PUBLISHED`), each re-tested on data that
ship with this environment -- far smaller than the published setups (see
``caveats`` in every results file):

1. **calibration** -- label smoothing lowers the expected calibration error
   (ECE, 15 bins) about as much as temperature scaling does. Published:
   ResNet-56/CIFAR-100 0.150 without LS, 0.021 with temperature scaling
   (T = 1.9), 0.024 with LS (α = 0.05); Inception-v4/ImageNet 0.071 / 0.022
   (T = 1.4) / 0.035 (α = 0.1). Here: ``uniform`` at α ∈ {0, 0.05, 0.1, 0.2}
   and the other recipes at ε = 0.1 (``fastreid`` adaptive with its published
   α = 0.2), ECE before and after temperature scaling (T fitted on the
   held-out split), on MNIST-5k and on the pets features.
2. **distillation** -- a teacher trained with label smoothing is a better
   model but a worse teacher. Published, MNIST, teacher FC 2×1200 + dropout,
   student FC 2×800, β = 0.6, α = 0.1: teacher error 0.67 % → 0.59 % with LS,
   student error 0.74 % → 0.91 %. Here: the same architectures on MNIST-5k
   (teachers trained to convergence); teachers ``ce`` and ``uniform_0.1``; students
   trained with ``β·T²·KL(teacher‖student) + (1 − β)·CE`` (β = 0.6, the KL
   term is ``RECIPES["distillation"]``) at T ∈ {1, 2, 4, 8}, and a student
   without a teacher (``student-none``, β = 0).
3. **representations** -- with LS the penultimate-layer activations of a
   class form tight clusters, equidistant from the other classes (their
   Figure 1). Here: Müller's projection (the plane through the templates of
   classes 0, 1, 2) drawn to ``<figures>/muller_representations.{png,pdf}``
   (LS and no LS on the same axes), and measured over all classes inside the
   template subspace by :func:`analysis.template_geometry` (within-class
   spread over the distance between class means; the spread of each
   example's distances to the wrong-class templates).

**Verdicts.** Every finding is split into sub-claims, each a published sign
of a per-seed paired difference with a precondition (its premise, checked in
code first), judged by :func:`lsbench.experiments.muller.analysis.gated_verdict`
(``precondition not met`` when the premise fails; else ``reproduced`` when the
95 % CI of the mean difference over seeds excludes 0 on the published side,
``not reproduced`` when it excludes 0 on the other side, else
``inconclusive``; rule text in :data:`analysis.VERDICT_RULE`). The regimes
(:mod:`~.config`) are chosen so that the premises can hold:

* calibration (per data set; α* = the ``uniform`` α ∈ {0.05, 0.1, 0.2} with
  the lowest mean *held-out* ECE): ``ls_lowers_ece``: ECE(α*) − ECE(ce) < 0;
  ``ls_matches_temperature_scaling``: ECE(α*) − ½(ECE(ce) + ECE_TS(ce)) < 0,
  i.e. LS closes at least half of the gap temperature scaling closes.
  Precondition: the ce baseline is over-confident (95 % CI of its fitted
  temperature above 1); for the second also that temperature scaling lowers
  its test ECE;
* distillation: ``ls_teacher_better_model``: error(uniform_0.1 teacher) −
  error(ce teacher) < 0; ``ls_teacher_worse_teacher``: error(student of the
  uniform_0.1 teacher at its T*) − error(student of the ce teacher at its T*)
  > 0, each teacher's T* being the temperature with the lowest mean
  *held-out* student error. Precondition of the second: distillation helps
  (the ce teacher's student at T* beats ``student-none``, CI below 0) at
  matched teacher accuracy (the LS teacher at most
  :data:`~.aggregate.TEACHER_MATCH_TOLERANCE` less accurate, upper CI bound);
* representations (test examples, template subspace): ``ls_tighter_clusters``:
  spread(uniform_0.1) − spread(ce) < 0; ``ls_equidistant_wrong_templates``:
  wrong_spread(uniform_0.1) − wrong_spread(ce) < 0 (no precondition). The centroid
  measures of the full penultimate space are ``supplementary_claims`` (not in
  the verdict).

**Data and protocol.** MNIST-5k (:func:`lsbench.data.mnist.load_mnist5k`)
and scikit-learn digits (optional, ``--datasets digits``) are split per seed
into stratified train / held-out / test = 70 / 10 / 20 %
(:func:`lsbench.data.mnist.stratified_split`). Pets uses the pooled
EfficientNet-Lite0 features that ``python -m lsbench reproduce pets`` caches
(``<cache>/features/pets-lite0-{trainval,test}-<key>.npz``) with the pets
protocol (the pets head :class:`lsbench.models.FastaiHead`, fastai v1
one-cycle for 4 epochs, 10 % of trainval held out by
:func:`lsbench.experiments.pets.protocol.heldout_split`, the official test split); if
no cache is found, pets is skipped with the reason printed and recorded.
The seed drives the split, the initialisation, the batch order and dropout,
and is shared by every method of that seed, so differences are paired.
Training is :func:`lsbench.train.fit` (one-cycle Adam), students included
(the teacher's logits ride in the batch). Metrics are
:mod:`lsbench.metrics` (ECE with 15 bins, temperature fitted on held-out).

**Recording** (the conventions of ``reproduce pets``). Every finished run is
written atomically to ``<out-dir>/runs/muller/<dataset>/<name>-seed<k>.json``
(classifier runs are shared by the three experiments; students are named
``student-<teacher>-T<T>`` and ``student-none``), and the results files
``<out-dir>/muller-<experiment>.json`` are rewritten atomically after every
run. A rerun skips runs whose recorded ``run_key`` matches; a recorded run
with a different configuration stops the command before anything is trained
unless ``--force``, which redoes the runs (an old record that differs is
copied to ``replaced/`` first). Teacher logits needed by students are cached
in ``<cache>/muller/logits/`` (a missing cache retrains the teacher).

**Layout.** :mod:`~.config` (every setting: :func:`~.config.get_config`), :mod:`~.data`,
:mod:`~.models`, :mod:`~.analysis` (measurements, verdict rule), :mod:`~.aggregate`
(summaries, sub-claims), :mod:`~.run` (the command), :mod:`~.terminal` (its report); the
figure and the paper's tables are :mod:`lsbench.report.muller`. Results and run-record
schemas: ``lsbench/experiments/README.md``.
"""

from lsbench.experiments.muller.aggregate import (aggregate_calibration, aggregate_distillation,
                                                  aggregate_representations, student_name)
from lsbench.experiments.muller.config import EXPERIMENTS, SPECS, MullerConfig, Spec, get_config
from lsbench.experiments.muller.data import DatasetSkipped, find_pets_features, load_pets_features
from lsbench.published import MULLER_PUBLISHED as PUBLISHED

__all__ = ["PUBLISHED", "SPECS", "EXPERIMENTS", "Spec", "MullerConfig", "get_config",
           "aggregate_calibration", "aggregate_distillation", "aggregate_representations", "student_name",
           "DatasetSkipped", "find_pets_features", "load_pets_features"]
