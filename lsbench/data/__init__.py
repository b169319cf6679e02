"""Datasets for the lsbench reproductions.

- :mod:`lsbench.data.pets` -- Oxford-IIIT Pet (37 breeds): local directory,
  official archives, resumable verified download, or tensorflow-datasets.
- :mod:`lsbench.data.features` -- cached backbone features of image arrays and
  of their mirror images.
"""

from lsbench.data.features import array_sha256, cached_features, cached_features_with_mirrors, feature_cache_key
from lsbench.data.pets import (
    ARCHIVES,
    NUM_CLASSES,
    PetsDataError,
    PetsDownloadError,
    PetsNotFoundError,
    PetsSplit,
    default_cache_dir,
    download_pets,
    load_pets,
    resolve_pets_dir,
)

__all__ = [
    "ARCHIVES",
    "NUM_CLASSES",
    "array_sha256",
    "cached_features",
    "cached_features_with_mirrors",
    "feature_cache_key",
    "PetsDataError",
    "PetsDownloadError",
    "PetsNotFoundError",
    "PetsSplit",
    "default_cache_dir",
    "download_pets",
    "load_pets",
    "resolve_pets_dir",
]
