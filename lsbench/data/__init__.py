"""Datasets for the lsbench reproductions.

- :mod:`lsbench.data.pets` -- Oxford-IIIT Pet (37 breeds): local directory,
  official archives, resumable verified download, or tensorflow-datasets.
"""

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
    "PetsDataError",
    "PetsDownloadError",
    "PetsNotFoundError",
    "PetsSplit",
    "default_cache_dir",
    "download_pets",
    "load_pets",
    "resolve_pets_dir",
]
