r"""pets: the fastai Oxford-IIIT Pets experiment for every label-smoothing recipe, several seeds.

The claim: fastai's pets example (ResNet-34 pretrained on ImageNet, frozen
body, fastai head, ``fit_one_cycle(4)``, batch 64, size 224, lr 3e-3, weight
decay 1e-2, momentum 0.95→0.85, div 25, pct_start 0.3) trained with
``LabelSmoothingCrossEntropy`` (ε = 0.1) is reported at 7.5 % error; plain
cross-entropy gave 5.7–7.3 % across the nine committed reruns of the fastai
course-v3 ``lesson1-pets`` notebook. Is label smoothing a gain, a loss or
noise, and which form? (:data:`lsbench.published.PETS_ANCHORS`, printed beside the table and stored
in the results file.)

**Profiles** (``--profile``; the default, ``frozen``, is the same on every machine -- an
accelerator only makes it faster):

* ``frozen`` -- an EfficientNet-Lite body (``--backbone``: ``lite2``, the default, at its native
  260 px, the 224 px images upscaled; ``lite0`` at 224 px) with its real ImageNet weights, frozen
  *and in eval mode*; its final feature map is pooled once (fastai's concat pooling ``[max, avg]``)
  for every image and for its mirror image, and cached on disk
  (:func:`lsbench.data.features.cached_features_with_mirrors`); the fastai head
  (:class:`lsbench.models.FastaiHead`, v1 linear biases) is trained on the cached features, each
  example of each epoch taking its mirror image's features with p = 0.5 (``--p-flip``, fastai's
  flip; :func:`~.protocol.mirror_batch`), and reported on the unflipped images. No other
  augmentation, and the body's BatchNorm statistics stay the ImageNet ones (a cached body cannot
  train them).
* ``fastai`` -- the fastai recipe on the same backbone: body frozen except its BatchNorm layers
  (fastai v1 ``train_bn=True``: BN affine parameters trained, batch statistics in train mode),
  fastai head, host-side augmentation (:func:`~.protocol.augment_batch`: random resized crop with
  scale ∈ [0.35, 1] and ratio ∈ [3/4, 4/3], horizontal flip p = 0.5, brightness/contrast ±20 %
  with p = 0.75), ``fit_one_cycle(4)``. Needs no other weights; slow without an accelerator.

Both: one-cycle Adam of :mod:`lsbench.train` with fastai v1 defaults
(:data:`lsbench.train.FASTAI_V1`), 4 epochs, batch 64, lr 3e-3, wd 1e-2; the seeds of a recipe
(default ten, 0–9) are trained together, one vmapped program per recipe and split
(:func:`lsbench.train.fit_seeds`), each seed exactly as if trained alone.

**Recipes** (``--recipes``, default all of :data:`RUN_SPECS`): ``ce`` (plain cross-entropy,
``uniform`` with ε = 0: the baseline), ``uniform`` at ε = ``--epsilon`` (0.1) and the ε sweep
``uniform_eps0.05``, ``uniform_eps0.2``, ``uniform_eps0.3`` (:data:`EPSILON_SWEEP`), ``off_target``,
``fastai``, ``tf_onehot``, ``speech_transformer`` (ε = ``--epsilon``, their published 0.1),
``fastreid_adaptive`` (``fastreid`` with ``epsilon=-1, alpha=0.2``: ε_i = 0.2·p_y) and
``self_correction`` (:func:`lsbench.losses.self_correction_loss`, α = 0.1, ``clip=False``, on top
of plain cross-entropy). ``fastai`` is proved to be ``uniform`` (:data:`PROVED_IDENTICAL`): it is
trained and shown as one row that counts its identical runs, not as independent evidence.

**Protocol** (``--splits``, default both): ``official`` trains on all of ``trainval`` (3,680
images) and reports on ``test`` (3,669); ``fastai`` draws, per seed, a random 20 % of all images as
the report set (fastai's ``split_by_rand_pct(0.2)``) and trains on the other 80 %, as the claim's
notebook did. The temperature of temperature scaling is cross-fitted on the report set (two
halves, each scaled by the T fitted on the other), so no training image is held out. Every run
stores compact per-example outputs beside its record (``<run>.npz``: label, predicted class,
confidence, p_true, Σp², and after temperature scaling confidence and p_true; uint8/float16), from
which :mod:`lsbench.stats` gives each recipe's paired difference from ``ce`` in error, NLL, Brier,
ECE and ECE after temperature scaling, a 95 % interval from a bootstrap over seeds *and* report
images, the probability that the recipe is better, and a verdict (better / worse / equivalent /
inconclusive) by a rule fixed in code.

**Recording.** A plain run trains into a work directory, ``--workdir`` (default
``./lsbench-runs/pets-<profile>/`` for Lite2, ``pets-<profile>-lite0`` with ``--backbone lite0``,
``...-limit<N>`` with ``--per-class-limit N``):
each finished (recipe, split, seed) run is written atomically (temp file + rename) to
``<workdir>/runs/<recipe>-<split>-seed<k>.json`` (outputs ``.npz`` beside it) and the work directory's results file
``<workdir>/pets-<profile>.json`` is rewritten after every (recipe, split) group. A rerun skips runs whose
recorded ``run_key`` matches (the key hashes the whole configuration, the loss, the seed and
:func:`lsbench.experiments.workdir.code_sha256` of the code behind the run, so a record made by
other code is retrained, the old one kept under ``runs/replaced/``); a recorded run with another
configuration stops the command before anything is trained (``--force`` or another
``--workdir``). An interrupt (Ctrl-C or SIGTERM) loses at most the run in progress; a lock file
``<workdir>/.lock`` keeps a second invocation out (``--wait`` waits for it).

After the runs, the work directory is compared run by run with the committed reference ``--out``
(default ``paper/results/pets-<profile>.json``, ``pets-<profile>-lite0.json`` for Lite0) by :mod:`lsbench.experiments.compare`: each run
bit-identical, within tolerance (the reference's 95 % CI half-width over seeds, per metric) or
different, the largest difference per metric, the provenance fields that differ and a one-line
verdict, printed and saved as ``<workdir>/comparison.json`` and ``comparison.txt``; ``--check``
exits 1 when the runs do not agree. ``--record`` (from a clean commit; ``--allow-dirty`` to
override, recorded as ``dirty: true``) writes the results file to ``--out`` and exactly these run
records to ``<out dir>/runs/<out stem>/``.

Metrics are fractions (error 0.075 = 7.5 %), NLL in nats; see :mod:`lsbench.metrics`.

**Layout.** :mod:`~.config` (every setting as a frozen dataclass tree:
:func:`~.config.get_config`; the recipes :data:`RUN_SPECS`), :mod:`~.protocol` (held-out
split, augmentation, aggregation, terminal table), :mod:`~.model` (the backbone, the fastai-profile
network), :mod:`~.run` (the command); run records through
:mod:`lsbench.experiments.records`; tables and figures in :mod:`lsbench.report.pets`.
Results and run-record schemas: ``lsbench/experiments/README.md``.
"""

from lsbench.experiments.pets.config import (DEFAULT_RECIPES, EPSILON_SWEEP, PROVED_IDENTICAL, RUN_SPECS, SPLITS,
                                            PetsConfig, RunSpec, get_config)
from lsbench.experiments.pets.protocol import (METRICS, OUTPUT_FIELDS, aggregate, augment_batch, cross_fit_temperature,
                                               evaluate_run, format_table, heldout_split, random_split)
from lsbench.experiments.pets.run import default_out
from lsbench.published import PETS_ANCHORS as ANCHORS

__all__ = [
    "ANCHORS",
    "RUN_SPECS",
    "DEFAULT_RECIPES",
    "EPSILON_SWEEP",
    "PROVED_IDENTICAL",
    "SPLITS",
    "OUTPUT_FIELDS",
    "random_split",
    "cross_fit_temperature",
    "evaluate_run",
    "METRICS",
    "RunSpec",
    "PetsConfig",
    "get_config",
    "heldout_split",
    "augment_batch",
    "aggregate",
    "format_table",
    "default_out",
]
