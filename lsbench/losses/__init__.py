r"""Every published form of label smoothing as a pure, jit-compiled JAX loss.

``RECIPES[name].loss(logits, labels, **params)`` returns the scalar loss with
the recipe's own published reduction; ``.per_example`` returns the per-position
losses; ``.targets`` (where a recipe has one) the dense target distribution,
for tests and proofs only. One module per recipe, beside its proof under
``proofs/`` with the same name; the exact maths is in each module's docstring.

Shared behaviour:

* any leading batch shape; works under ``jax.jit``, ``jax.grad``, ``jax.vmap``;
* float32 computation for bf16/f16/float32 logits, float64 for float64 logits
  (with ``jax_enable_x64``); the loss is returned in that compute dtype and the
  gradient in the logits' own dtype;
* the fast path never builds a ``[..., K]`` one-hot or target matrix: it uses
  ``logsumexp``, the gathered target logit and the row sum, with a
  ``jax.custom_vjp`` whose backward is the closed form ``(Σq)·softmax − q``;
* masked rows (``where=False`` or ``labels == ignore_index``) contribute
  exactly zero loss and zero gradient, and a batch with nothing kept gives 0;
* bad input raises ``ValueError``/``TypeError`` naming the problem. Checks on
  values (label range, ε range, T > 0) run when the values are concrete; under
  ``jax.jit`` an out-of-range label makes its row's loss NaN (never a silent
  wrong number) and a traced ε is not range-checked.
"""

from __future__ import annotations

from lsbench.losses import (
    distillation,
    fastai,
    fastreid,
    off_target,
    self_correction,
    speech_transformer,
    tf_onehot,
    uniform,
)
from lsbench.losses._recipe import Recipe
from lsbench.losses.self_correction import self_correction_loss, self_correction_weights

RECIPES: dict[str, Recipe] = {
    "uniform": Recipe(
        name="uniform",
        title="ε/K on every class",
        formula=r"q = (1-\varepsilon)\,\mathbf{1}_y + \varepsilon/K",
        closed_form=r"L = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K}\sum_j z_j",
        source="Szegedy et al. 2016, Rethinking the Inception Architecture, §7",
        proof="proofs.uniform",
        loss=uniform.loss,
        per_example=uniform.per_example,
        targets=uniform.targets,
        labels="int",
        params={"epsilon": uniform.DEFAULT_EPSILON, "ignore_index": None, "weight": None,
                "weight_mode": "example", "z_loss": None},
        reduction="mean over kept rows",
        peers=("optax", "PyTorch", "Keras", "timm", "Liger"),
    ),
    "off_target": Recipe(
        name="off_target",
        title="ε/(K−1) on the other classes",
        formula=r"q_y = 1-\varepsilon,\ q_{j\neq y} = \varepsilon/(K-1)",
        closed_form=r"L = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K-1}\big(\sum_j z_j - z_y\big)",
        source="fast-reid (eps ≥ 0); Megatron-LM; Flax WMT/LM1B examples",
        proof="proofs.off_target",
        loss=off_target.loss,
        per_example=off_target.per_example,
        targets=off_target.targets,
        labels="int",
        params={"epsilon": off_target.DEFAULT_EPSILON, "ignore_index": None},
        reduction="mean over kept rows",
        peers=("fast-reid", "Megatron-LM", "Flax examples"),
    ),
    "fastai": Recipe(
        name="fastai",
        title="linear combination of mean −log p and NLL",
        formula=r"L = \varepsilon\,\tfrac{1}{K}\sum_j(-\log p_j) + (1-\varepsilon)(-\log p_y)",
        closed_form=r"L = \varepsilon\big(\mathrm{lse}(z) - \tfrac{1}{K}\sum_j z_j\big) + (1-\varepsilon)\big(\mathrm{lse}(z) - z_y\big)",
        source="fastai LabelSmoothingCrossEntropy (fastai/losses.py)",
        proof="proofs.fastai",
        loss=fastai.loss,
        per_example=fastai.per_example,
        targets=fastai.targets,
        labels="int",
        params={"epsilon": fastai.DEFAULT_EPSILON, "ignore_index": None},
        reduction="each term's mean over kept rows, then mixed",
        peers=("fastai", "timm"),
    ),
    "tf_onehot": Recipe(
        name="tf_onehot",
        title="smoothing a dense label matrix",
        formula=r"Y' = (1-\varepsilon) Y + \varepsilon/K",
        closed_form=r"L = \big((1-\varepsilon)\textstyle\sum_j Y_j + \varepsilon\big)\mathrm{lse}(z) - (1-\varepsilon)\sum_j Y_j z_j - \tfrac{\varepsilon}{K}\sum_j z_j",
        source="TensorFlow/Keras CategoricalCrossentropy(label_smoothing=ε)",
        proof="proofs.tf_onehot",
        loss=tf_onehot.loss,
        per_example=tf_onehot.per_example,
        targets=tf_onehot.targets,
        labels="dense",
        params={"epsilon": tf_onehot.DEFAULT_EPSILON},
        reduction="mean over kept rows",
        peers=("Keras", "optax", "PyTorch", "timm"),
    ),
    "fastreid": Recipe(
        name="fastreid",
        title="fixed or adaptive ε = α·p_y, ε/(K−1) spreading",
        formula=r"q_y = 1-\varepsilon_i,\ q_{j\neq y} = \varepsilon_i/(K-1),\ \varepsilon_i = \alpha\,\mathrm{sg}(p_y)\ \text{if}\ \varepsilon<0",
        closed_form=r"L_i = \mathrm{lse}(z) - (1-\varepsilon_i) z_y - \tfrac{\varepsilon_i}{K-1}\big(\sum_j z_j - z_y\big)",
        source="JDAI-CV/fast-reid, fastreid/modeling/losses/cross_entroy_loss.py",
        proof="proofs.fastreid",
        loss=fastreid.loss,
        per_example=fastreid.per_example,
        targets=fastreid.targets,
        labels="int",
        params={"epsilon": fastreid.DEFAULT_EPSILON, "alpha": fastreid.DEFAULT_ALPHA, "ignore_index": None},
        reduction="sum / max(#non-zero rows, 1)",
        peers=("fast-reid",),
    ),
    "speech_transformer": Recipe(
        name="speech_transformer",
        title="cal_loss as published: q_y = 1−ε, others ε/K (mass 1−ε/K)",
        formula=r"q_y = 1-\varepsilon,\ q_{j\neq y} = \varepsilon/K",
        closed_form=r"L = (1-\tfrac{\varepsilon}{K})\,\mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K}\big(\sum_j z_j - z_y\big)",
        source="kaituoxu/Speech-Transformer, src/utils/utils.py cal_loss",
        proof="proofs.speech_transformer",
        loss=speech_transformer.loss,
        per_example=speech_transformer.per_example,
        targets=speech_transformer.targets,
        labels="int",
        params={"epsilon": speech_transformer.DEFAULT_EPSILON,
                "ignore_index": speech_transformer.DEFAULT_IGNORE_INDEX},
        reduction="sum over kept rows / their count",
        peers=("Speech-Transformer copies",),
    ),
    "distillation": Recipe(
        name="distillation",
        title="temperature distillation, T²·KL",
        formula=r"L = T^2\,\mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)\big)",
        closed_form=r"L = T^2\Big(\sum_j q_j \tfrac{t_j - s_j}{T} - \mathrm{lse}(t/T) + \mathrm{lse}(s/T)\Big)",
        source="Hinton, Vinyals, Dean 2015, Distilling the Knowledge in a Neural Network",
        proof="proofs.distillation",
        loss=distillation.loss,
        per_example=distillation.per_example,
        targets=distillation.targets,
        labels="logits",
        params={"temperature": distillation.DEFAULT_TEMPERATURE},
        reduction="sum / number of rows (batchmean)",
        peers=("PyTorch",),
    ),
}

__all__ = ["RECIPES", "Recipe", "self_correction_loss", "self_correction_weights"]
