r"""Every published form of label smoothing as a pure, jit-compiled JAX loss.

Each recipe is a public, type-hinted function returning per-example losses,
``lsbench.losses.uniform(logits, labels, *, epsilon=0.1, where=None, ...)``
(beside ``off_target``, ``fastai``, ``tf_onehot``, ``fastreid``,
``speech_transformer`` and ``distillation``, and the sequence-model forms
``flax_kl``, ``opennmt``, ``hf_label_smoother``, ``fairseq_v0_10`` and ``fairseq``),
as optax's losses are.
``RECIPES[name].loss(logits, labels, **params)`` returns the scalar loss with
the recipe's own published reduction; ``.per_example`` returns the per-position
losses; ``.targets`` (where a recipe has one) the dense target distribution,
for tests and proofs only. One module per recipe in ``lsbench.losses.recipes``
(``lsbench.losses.recipes.uniform`` is the module, ``lsbench.losses.uniform``
its function), beside its proof under ``proofs/`` with the same name; the exact
maths is in each module's docstring. :mod:`lsbench.losses.primitives` holds the
row-statistics primitive and the checks that every path shares.

Shared behaviour:

* any leading batch shape; works under ``jax.jit``, ``jax.grad``, ``jax.vmap``;
* float32 computation for bf16/f16/float32 logits, float64 for float64 logits
  (with ``jax_enable_x64``); the loss is returned in that compute dtype and the
  gradient in the logits' own dtype;
* the fast path never builds a ``[..., K]`` one-hot or target matrix: it uses
  ``logsumexp``, the gathered target logit and the row sum, all relative to the
  row maximum (a constant offset of the logits never rounds), with a
  ``jax.custom_vjp`` whose backward is the closed form ``(Σq)·softmax − q``;
* masked rows (``where=False`` or ``labels == ignore_index``) contribute
  exactly zero loss and zero gradient whatever their logits hold (NaN, ±inf),
  and a batch with nothing kept gives 0;
* a −inf logit masks its class: with ε = 0 the loss is the cross-entropy of
  the other classes; with ε > 0 the smoothed target puts mass on a class of
  probability 0, so the loss is +inf (the true value) and the gradient ``p − q``;
* bad input raises ``ValueError``/``TypeError`` naming the parameter. Checks on
  values (label range, ε range, T > 0) run when the values are concrete; under
  ``jax.jit`` an out-of-range label (negative ones included) makes its row's
  loss and gradient NaN (never a silent wrong number), on every path; use
  :func:`check_labels` with ``jax.experimental.checkify`` for an error. A
  traced ε is not range-checked.
"""

from __future__ import annotations

from lsbench.losses._recipe import Recipe, recipe_entry
from lsbench.losses.primitives import check_labels
from lsbench.losses.recipes import (
    distillation as distillation_recipe,
    fairseq as fairseq_recipe,
    fairseq_v0_10 as fairseq_v0_10_recipe,
    fastai as fastai_recipe,
    fastreid as fastreid_recipe,
    flax_kl as flax_kl_recipe,
    hf_label_smoother as hf_label_smoother_recipe,
    off_target as off_target_recipe,
    opennmt as opennmt_recipe,
    speech_transformer as speech_transformer_recipe,
    tf_onehot as tf_onehot_recipe,
    uniform as uniform_recipe,
)
from lsbench.losses.recipes import (
    keras_binary as keras_binary_recipe,
    label_relaxation as label_relaxation_recipe,
    mmpretrain_multilabel as mmpretrain_multilabel_recipe,
    poly as poly_recipe,
    timm_binary as timm_binary_recipe,
)
from lsbench.losses.self_correction import self_correction_loss, self_correction_weights

uniform = uniform_recipe.uniform
off_target = off_target_recipe.off_target
fastai = fastai_recipe.fastai
tf_onehot = tf_onehot_recipe.tf_onehot
fastreid = fastreid_recipe.fastreid
speech_transformer = speech_transformer_recipe.speech_transformer
distillation = distillation_recipe.distillation
flax_kl = flax_kl_recipe.flax_kl
opennmt = opennmt_recipe.opennmt
hf_label_smoother = hf_label_smoother_recipe.hf_label_smoother
fairseq_v0_10 = fairseq_v0_10_recipe.fairseq_v0_10
fairseq = fairseq_recipe.fairseq
keras_binary = keras_binary_recipe.keras_binary
timm_binary = timm_binary_recipe.timm_binary
mmpretrain_multilabel = mmpretrain_multilabel_recipe.mmpretrain_multilabel
poly = poly_recipe.poly
label_relaxation = label_relaxation_recipe.label_relaxation

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    recipe_entry(
        uniform_recipe, "int",
        title="ε/K on every class",
        formula=r"q = (1-\varepsilon)\,\mathbf{1}_y + \varepsilon/K",
        closed_form=r"L = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K}\sum_j z_j",
        source="Szegedy et al. 2016, Rethinking the Inception Architecture, §7",
        reduction="mean over kept rows",
        peers=("optax", "PyTorch", "Keras", "timm", "Liger"),
    ),
    recipe_entry(
        off_target_recipe, "int",
        title="ε/(K−1) on the other classes",
        formula=r"q_y = 1-\varepsilon,\ q_{j\neq y} = \varepsilon/(K-1)",
        closed_form=r"L = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K-1}\big(\sum_j z_j - z_y\big)",
        source="fast-reid (eps ≥ 0); Megatron-LM; Flax WMT/LM1B examples",
        reduction="mean over kept rows",
        peers=("fast-reid", "Megatron-LM", "Flax examples"),
    ),
    recipe_entry(
        fastai_recipe, "int",
        title="linear combination of mean −log p and NLL",
        formula=r"L = \varepsilon\,\tfrac{1}{K}\sum_j(-\log p_j) + (1-\varepsilon)(-\log p_y)",
        closed_form=r"L = \varepsilon\big(\mathrm{lse}(z) - \tfrac{1}{K}\sum_j z_j\big) + (1-\varepsilon)\big(\mathrm{lse}(z) - z_y\big)",
        source="fastai LabelSmoothingCrossEntropy (fastai/losses.py)",
        reduction="each term's mean over kept rows, then mixed",
        peers=("fastai", "timm"),
    ),
    recipe_entry(
        tf_onehot_recipe, "dense",
        title="smoothing a dense label matrix",
        formula=r"Y' = (1-\varepsilon) Y + \varepsilon/K",
        closed_form=r"L = \big((1-\varepsilon)\textstyle\sum_j Y_j + \varepsilon\big)\mathrm{lse}(z) - (1-\varepsilon)\sum_j Y_j z_j - \tfrac{\varepsilon}{K}\sum_j z_j",
        source="TensorFlow/Keras CategoricalCrossentropy(label_smoothing=ε)",
        reduction="mean over kept rows",
        peers=("Keras", "optax", "PyTorch", "timm"),
    ),
    recipe_entry(
        fastreid_recipe, "int",
        title="fixed or adaptive ε = α·p_y, ε/(K−1) spreading",
        formula=r"q_y = 1-\varepsilon_i,\ q_{j\neq y} = \varepsilon_i/(K-1),\ \varepsilon_i = \alpha\,\mathrm{sg}(p_y)\ \text{if}\ \varepsilon<0",
        closed_form=r"L_i = \mathrm{lse}(z) - (1-\varepsilon_i) z_y - \tfrac{\varepsilon_i}{K-1}\big(\sum_j z_j - z_y\big)",
        source="JDAI-CV/fast-reid, fastreid/modeling/losses/cross_entroy_loss.py",
        reduction="sum / max(#non-zero rows, 1)",
        peers=("fast-reid",),
    ),
    recipe_entry(
        speech_transformer_recipe, "int",
        title="cal_loss as published: q_y = 1−ε, others ε/K (mass 1−ε/K)",
        formula=r"q_y = 1-\varepsilon,\ q_{j\neq y} = \varepsilon/K",
        closed_form=r"L = (1-\tfrac{\varepsilon}{K})\,\mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K}\big(\sum_j z_j - z_y\big)",
        source="kaituoxu/Speech-Transformer, src/utils/utils.py cal_loss",
        reduction="sum over kept rows / their count",
        peers=("Speech-Transformer copies",),
    ),
    recipe_entry(
        distillation_recipe, "logits",
        title="temperature distillation, T²·KL",
        formula=r"L = T^2\,\mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)\big)",
        closed_form=r"L = T^2\Big(\sum_j q_j \tfrac{t_j - s_j}{T} - \mathrm{lse}(t/T) + \mathrm{lse}(s/T)\Big)",
        source="Hinton, Vinyals, Dean 2015, Distilling the Knowledge in a Neural Network",
        reduction="sum / number of rows (batchmean)",
        peers=("PyTorch",),
    ),
    recipe_entry(
        flax_kl_recipe, "int",
        title="KL(q‖p) of the off_target target (its entropy subtracted, 1e-20 guard)",
        formula=r"q_y = 1-\varepsilon,\ q_{j\neq y} = \varepsilon/(K-1);\ L = \mathrm{CE}(q,p) - \tilde H(q)",
        closed_form=r"L = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K-1}\big(\sum_j z_j - z_y\big) + (1-\varepsilon)\log(1-\varepsilon) + \varepsilon\log\big(\tfrac{\varepsilon}{K-1} + 10^{-20}\big)",
        source="google/flax examples/wmt/train.py compute_weighted_cross_entropy; google-research/t5x t5x/losses.py",
        reduction="sum / #kept tokens (normalization: real_tokens, total_tokens, sum or a constant)",
        peers=("Flax examples", "T5X"),
    ),
    recipe_entry(
        opennmt_recipe, "int",
        title="KL(q‖p), ε/(K−2) on the non-pad classes, pad rows dropped",
        formula=r"q_y = 1-\varepsilon,\ q_{\mathrm{pad}} = 0,\ q_{j} = \varepsilon/(K-2)",
        closed_form=r"L = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K-2}\big(\sum_{j\neq\mathrm{pad}} z_j - z_y\big) - H(q)",
        source="OpenNMT-py onmt/utils/loss.py LabelSmoothingLoss; The Annotated Transformer LabelSmoothing",
        reduction="sum over kept tokens (KLDivLoss reduction='sum')",
        peers=("OpenNMT-py", "Annotated Transformer"),
    ),
    recipe_entry(
        hf_label_smoother_recipe, "int",
        title="uniform over the full (possibly padded) logit width, −100 ignored",
        formula=r"q = (1-\varepsilon)\,\mathbf{1}_y + \varepsilon/W,\ W = \text{logits width}",
        closed_form=r"L = (1-\varepsilon)(\mathrm{lse}(z) - z_y) + \tfrac{\varepsilon}{W}\sum_j(\mathrm{lse}(z) - z_j)",
        source="huggingface/transformers src/transformers/trainer_pt_utils.py LabelSmoother",
        reduction="mean over active tokens (labels ≠ −100)",
        peers=("transformers Trainer",),
    ),
    recipe_entry(
        fairseq_v0_10_recipe, "int",
        title="fairseq v0.4.0–v0.10.2: eps_i = ε/K (uniform), pad rows dropped",
        formula=r"q = (1-\varepsilon)\,\mathbf{1}_y + \varepsilon/K",
        closed_form=r"L = (1-\varepsilon)(\mathrm{lse}(z) - z_y) + \tfrac{\varepsilon}{K}\sum_j(\mathrm{lse}(z) - z_j)",
        source="fairseq/criterions/label_smoothed_cross_entropy.py, v0.4.0–v0.10.2",
        reduction="sum over kept tokens",
        peers=("fairseq < 0.12",),
    ),
    recipe_entry(
        fairseq_recipe, "int",
        title="fairseq ≥ v0.12.0: eps_i = ε/(K−1), mass on the pad token, pad rows dropped",
        formula=r"q_y = 1-\varepsilon,\ q_{j\neq y} = \varepsilon/(K-1)\ (\text{pad included})",
        closed_form=r"L = (1-\varepsilon-\tfrac{\varepsilon}{K-1})(\mathrm{lse}(z) - z_y) + \tfrac{\varepsilon}{K-1}\sum_j(\mathrm{lse}(z) - z_j)",
        source="fairseq/criterions/label_smoothed_cross_entropy.py label_smoothed_nll_loss, v0.12.0+ (commit 791ab7c2)",
        reduction="sum over kept tokens",
        peers=("fairseq ≥ 0.12",),
    ),
    recipe_entry(
        keras_binary_recipe, "dense",
        title="sigmoid BCE, labels squeezed towards 1/2: t = (1−ε)Y + ε/2",
        formula=r"t_j = (1-\varepsilon) Y_j + \varepsilon/2",
        closed_form=r"L = \tfrac{1}{K}\sum_j \big(\log(1+e^{x_j}) - t_j x_j\big)",
        source="keras-team/keras, keras/src/losses/losses.py BinaryCrossentropy(from_logits=True, label_smoothing=ε)",
        reduction="mean over classes, then over kept rows",
        peers=("Keras", "TensorFlow"),
    ),
    recipe_entry(
        timm_binary_recipe, "int",
        title="sigmoid BCE with off ε/K, on 1−ε+ε/K",
        formula=r"t_y = 1-\varepsilon+\varepsilon/K,\ t_{j\neq y} = \varepsilon/K",
        closed_form=r"L = \tfrac{1}{K}\Big(\sum_j \log(1+e^{x_j}) - \tfrac{\varepsilon}{K}\sum_j x_j - (1-\varepsilon) x_y\Big)",
        source="huggingface/pytorch-image-models, timm/loss/binary_cross_entropy.py BinaryCrossEntropy(smoothing=ε)",
        reduction="mean over all B·K elements of the kept rows",
        peers=("timm",),
    ),
    recipe_entry(
        mmpretrain_multilabel_recipe, "int",
        title="sigmoid BCE with off ε, on 1−ε",
        formula=r"t_y = 1-\varepsilon,\ t_{j\neq y} = \varepsilon",
        closed_form=r"L = \tfrac{1}{K}\Big(\sum_j \log(1+e^{x_j}) - \varepsilon\sum_j x_j - (1-2\varepsilon) x_y\Big)",
        source="open-mmlab/mmpretrain, mmpretrain/models/losses/label_smooth_loss.py LabelSmoothLoss(mode='multi_label')",
        reduction="mean over all B·K elements of the kept rows",
        peers=("mmpretrain", "mmcls"),
    ),
    recipe_entry(
        poly_recipe, "int",
        title="Poly-1: smoothed CE + poly·(1 − Σ q p)",
        formula=r"L = -\sum_j q_j \log p_j + \mathrm{poly}\,(1 - \sum_j q_j p_j),\ q = (1-\varepsilon)\mathbf{1}_y + \varepsilon/K",
        closed_form=r"L = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K}\sum_j z_j + \mathrm{poly}\big(1 - \tfrac{\varepsilon}{K} - (1-\varepsilon) p_y\big)",
        source="Leng et al. 2022, PolyLoss (ICLR); timm/loss/poly_loss.py PolyCrossEntropy(epsilon, smoothing)",
        reduction="mean over kept rows",
        peers=("timm", "PolyLoss listing"),
    ),
    recipe_entry(
        label_relaxation_recipe, "int",
        title="label relaxation: 0 on {p_y ≥ 1−ε}, else KL to the projection",
        formula=r"L = 0 \text{ if } p_y \ge 1-\varepsilon,\ \text{else } \mathrm{KL}(r\,\|\,p),\ r_y = 1-\varepsilon,\ r_j = \varepsilon p_j/(1-p_y)",
        closed_form=r"L = (1-\varepsilon)\log\tfrac{1-\varepsilon}{p_y} + \varepsilon\log\tfrac{\varepsilon}{1-p_y}\ (p_y < 1-\varepsilon)",
        source="Lienen & Hüllermeier 2021 (AAAI); julilien/LabelRelaxation, src/label_relaxation/loss.py",
        reduction="mean over kept rows",
        peers=("LabelRelaxation (TF, PyTorch)",),
    ),
)}

__all__ = [
    "RECIPES", "Recipe", "check_labels", "distillation", "fastai", "fastreid", "off_target",
    "self_correction_loss", "self_correction_weights", "speech_transformer", "tf_onehot", "uniform",
    "flax_kl", "opennmt", "hf_label_smoother", "fairseq_v0_10", "fairseq",
    "keras_binary", "timm_binary", "mmpretrain_multilabel", "poly", "label_relaxation",
]
