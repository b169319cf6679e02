"""The published numbers the reproductions are compared with (plain data, no imports).

A module below both ``lsbench.experiments`` (which records them in every results file) and
``lsbench.report`` (which prints them beside the measured numbers, also when a results file
predates them or no run has been recorded yet, e.g. the paper's placeholder tables).

* :data:`PETS_ANCHORS` -- the fastai Oxford-IIIT Pets example (``reproduce pets``);
* :data:`MULLER_PUBLISHED` -- Müller, Kornblith & Hinton (2019) (``reproduce muller``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PETS_ANCHORS", "MULLER_PUBLISHED"]

#: The fastai pets numbers the pets experiment is compared with.
PETS_ANCHORS: dict[str, Any] = {
    "setup": ("fastai (v1, course-v3 lesson1-pets): ResNet-34 pretrained on ImageNet, frozen body, "
              "fastai head, fit_one_cycle(4), batch 64, size 224, lr 3e-3, wd 1e-2, "
              "moms 0.95->0.85, div 25, pct_start 0.3; error on fastai's random 20% validation "
              "split of all 7,390 images (not the official test split)"),
    "label_smoothing": {"loss": "fastai LabelSmoothingCrossEntropy (eps = 0.1)", "error": 0.075,
                        "note": "reported"},
    "cross_entropy": {"loss": "CrossEntropyLoss", "error_min": 0.057, "error_max": 0.073,
                      "reruns": 9, "note": "range over the nine committed reruns of the "
                                           "course-v3 lesson1-pets notebook"},
}

#: The published numbers of Müller, Kornblith, Hinton (NeurIPS 2019).
MULLER_PUBLISHED: dict[str, Any] = {
    "source": "R. Müller, S. Kornblith, G. Hinton. When Does Label Smoothing Help? NeurIPS 2019 "
              "(arXiv:1906.02629)",
    "calibration": {
        "claim": "label smoothing reduces the expected calibration error (15 bins) about as much as "
                 "temperature scaling",
        "rows": [
            {"setup": "ResNet-56 on CIFAR-100", "ece": 0.150, "ece_ts": 0.021, "temperature": 1.9,
             "ece_ls": 0.024, "alpha": 0.05},
            {"setup": "Inception-v4 on ImageNet", "ece": 0.071, "ece_ts": 0.022, "temperature": 1.4,
             "ece_ls": 0.035, "alpha": 0.1},
        ],
    },
    "distillation": {
        "claim": "a teacher trained with label smoothing is a better model but a worse teacher",
        "setup": "MNIST; teacher fully connected 2x1200 with dropout, student 2x800; distillation "
                 "weight beta = 0.6; alpha = 0.1",
        "teacher_error": {"ce": 0.0067, "ls": 0.0059},
        "student_error": {"ce": 0.0074, "ls": 0.0091},
    },
    "representations": {
        "claim": "with label smoothing the penultimate-layer activations of each class form tight "
                 "clusters, equidistant from the templates of the other classes (Figure 1: three classes "
                 "projected onto the plane through their templates)",
        "setups": ["AlexNet on CIFAR-10", "ResNet-56 on CIFAR-100", "Inception-v4 on ImageNet"],
    },
}
