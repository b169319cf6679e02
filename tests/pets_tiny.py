"""A tiny Oxford-IIIT Pet in the official layout (``images/*.jpg``, ``annotations/{trainval,test}.txt``),
generated so that the end-to-end tests of ``reproduce pets`` run without the shared data."""

from pathlib import Path

import numpy as np

BREEDS = [f"Breed{c:02d}" if c % 2 else f"breed{c:02d}" for c in range(1, 38)]  # cats capitalised, as upstream


def make_tiny_pets(root: Path, per_class=(2, 1), size=40, seed=0) -> Path:
    """``per_class`` = (trainval, test) images of each of the 37 classes; class-coloured noise images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    n = 0
    for split, k in zip(("trainval", "test"), per_class):
        lines = []
        for cid, breed in enumerate(BREEDS, start=1):
            colour = np.array([(cid * 53) % 256, (cid * 97) % 256, (cid * 151) % 256], np.float32)
            for _ in range(k):
                n += 1
                stem = f"{breed}_{n}"
                img = np.clip(colour + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / "images" / f"{stem}.jpg", quality=90)
                lines.append(f"{stem} {cid} {1 + cid % 2} {cid}")
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
