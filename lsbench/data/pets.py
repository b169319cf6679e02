"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012): 37 cat and dog breeds.

Where the data comes from (:func:`resolve_pets_dir`, first match wins):

1. ``data_dir`` (the CLI's ``--data-dir``), else the environment variable
   ``LSBENCH_DATA_DIR``: either the official layout -- ``images/*.jpg`` plus
   ``annotations/trainval.txt`` and ``annotations/test.txt`` -- or a directory
   holding the official ``images.tar.gz`` and ``annotations.tar.gz``, which are
   unpacked there (into the cache directory if it is read-only).  A
   sub-directory ``oxford-iiit-pet/`` of it is accepted too.
2. A copy downloaded earlier into ``<cache>/oxford-iiit-pet`` (``cache_dir``,
   else ``LSBENCH_CACHE_DIR``, else ``~/.cache/lsbench``).
3. With ``download=True``: the two official archives are downloaded there
   (:func:`download_pets`: urllib, resumable through ``<name>.part`` files and
   HTTP ``Range``, tqdm progress, published size and sha256 verified).

Otherwise :class:`PetsNotFoundError` says how to provide the data; there is
never a fallback to fake data.  ``source="tfds"`` instead reads
tensorflow-datasets' ``oxford_iiit_pet`` builder (TensorFlow required).

Split files have one line per image, ``<image> <class id 1..37> <species>
<breed id>`` (lines starting with ``#`` are comments).  Labels are ``class id
- 1`` (0..36); class names come from the image file names
(``Abyssinian_1.jpg`` -> ``Abyssinian``, ``american_bulldog_10`` ->
``american_bulldog``), gathered over every split file so both splits agree.

Images are decoded with Pillow, converted to RGB, **resized so the shorter
side equals** ``image_size`` (bilinear, Pillow's antialiased filter) and then
**center-cropped** to ``image_size x image_size``; an image already of that
size is left untouched.  Decoded splits are cached as ``.npy`` (the uint8 image array) under
``<cache>/arrays/`` (written atomically: temporary file + rename), keyed by a hash of the split files'
contents, the selected image names with their sizes and mtimes, the target
size, ``per_class_limit`` and the preprocessing version.

Public API: :class:`PetsSplit`, :func:`load_pets`, :func:`resolve_pets_dir`,
:func:`download_pets`, :func:`read_split_file`, :func:`resize_shorter_center_crop`,
:func:`default_cache_dir`, :data:`ARCHIVES`, :class:`PetsDataError`,
:class:`PetsNotFoundError`, :class:`PetsDownloadError`.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from lsbench.data.pets_archives import (ARCHIVES, ENV_CACHE_DIR, ENV_DATA_DIR, Archive, PetsDataError,
                                        PetsDownloadError, PetsNotFoundError, download_archives, extract_archive,
                                        has_layout, how_to_provide)
from lsbench.provenance import atomic_write_bytes

__all__ = ["NUM_CLASSES", "SPLITS", "ENV_DATA_DIR", "ENV_CACHE_DIR", "Archive", "ARCHIVES", "PetsSplit",
           "PetsDataError", "PetsNotFoundError", "PetsDownloadError", "load_pets", "resolve_pets_dir",
           "download_pets", "extract_archive", "read_split_file", "resize_shorter_center_crop",
           "default_cache_dir"]

NUM_CLASSES = 37
SPLITS = ("trainval", "test")
#: Bumped whenever decoding/resizing changes, so stale array caches are not reused.
PREPROCESS_VERSION = "pets-v1-pil-bilinear-shorter-side-center-crop"


@dataclass(frozen=True)
class PetsSplit:
    """One split of Oxford-IIIT Pet.

    ``images``: uint8 ``[N, S, S, 3]`` RGB; ``labels``: int32 ``[N]`` in
    0..36 (official class id - 1); ``names``: the 37 class names,
    ``names[label]``; ``files``: the image file name of each row
    (e.g. ``"pug_101.jpg"``), in split-file order.
    """

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    files: list[str]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# --------------------------------------------------------------------------- locations


def default_cache_dir() -> Path:
    """``$LSBENCH_CACHE_DIR`` if set, else ``~/.cache/lsbench``."""
    env = os.environ.get(ENV_CACHE_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lsbench"


def _writable(d: Path) -> bool:
    return os.access(d, os.W_OK | os.X_OK)


def _resolve_local(d: Path, origin: str, cache_root: Path, progress: bool) -> Path:
    if not d.exists():
        raise PetsNotFoundError(how_to_provide(f"{origin} {d} does not exist.\n"))
    if not d.is_dir():
        raise PetsNotFoundError(how_to_provide(f"{origin} {d} is not a directory.\n"))
    for cand in (d, d / "oxford-iiit-pet"):
        if has_layout(cand):
            return cand
    for cand in (d, d / "oxford-iiit-pet"):
        parts = {a.name: cand / a.name for a in ARCHIVES}
        comps = {"images": "images.tar.gz", "annotations": "annotations.tar.gz"}
        if all((cand / comp).is_dir() or parts[arc].is_file() for comp, arc in comps.items()):
            target = cand if _writable(cand) else cache_root / "extracted" / _short_hash(str(cand.resolve()))
            target.mkdir(parents=True, exist_ok=True)
            for comp, arc in comps.items():
                if (cand / comp).is_dir():
                    if target != cand and not (target / comp).exists():
                        (target / comp).symlink_to((cand / comp).resolve(), target_is_directory=True)
                    continue
                if not (target / comp).is_dir():
                    extract_archive(parts[arc], target, expect_top=comp, progress=progress)
            return target
    present = sorted(p.name for p in d.iterdir())[:10]
    raise PetsNotFoundError(how_to_provide(
        f"{origin} {d} has neither the official layout (images/, annotations/) nor the archives "
        f"images.tar.gz + annotations.tar.gz (it contains: {present}).\n"))


def resolve_pets_dir(data_dir: str | os.PathLike | None = None, *, download: bool = False,
                     cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Directory with ``images/`` and ``annotations/`` (see the module docstring for the order).

    Unpacks archives or downloads (``download=True``) as needed.  Raises
    :class:`PetsNotFoundError` with instructions when nothing is available.
    """
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if data_dir is not None:
        return _resolve_local(Path(data_dir).expanduser(), "data_dir", cache_root, progress)
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return _resolve_local(Path(env).expanduser(), f"${ENV_DATA_DIR}", cache_root, progress)
    cached = cache_root / "oxford-iiit-pet"
    if has_layout(cached):
        return cached
    if not download:
        raise PetsNotFoundError(how_to_provide(
            f"Oxford-IIIT Pet not found: no data_dir given, {ENV_DATA_DIR} is not set, "
            f"no downloaded copy in {cached}, and downloading is disabled.\n"))
    return download_pets(cache_root, progress=progress)


def download_pets(cache_dir: str | os.PathLike | None = None, *, progress: bool = True,
                  timeout: float = 60.0, keep_archives: bool = False) -> Path:
    """Download, verify and unpack the official archives into ``<cache>/oxford-iiit-pet``
    (:func:`lsbench.data.pets_archives.download_archives`); returns the data directory."""
    root = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir())
    return download_archives(root / "oxford-iiit-pet", ARCHIVES, progress=progress, timeout=timeout,
                             keep_archives=keep_archives)


# --------------------------------------------------------------------------- annotations


def _short_hash(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()[:16]


def read_split_file(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Parse a split file into ``[(image stem, class id 1..37), ...]`` in file order.

    Blank lines and lines starting with ``#`` are skipped.  Malformed lines,
    class ids outside 1..37 and duplicates raise :class:`PetsDataError`
    listing every offending line.
    """
    path = Path(path)
    if not path.is_file():
        raise PetsDataError(f"split file {path} is missing (expected the official annotations/ layout)")
    entries: list[tuple[str, int]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) < 2:
            problems.append(f"line {lineno}: expected '<image> <class id> <species> <breed id>', got {s!r}")
            continue
        stem = parts[0][:-4] if parts[0].lower().endswith(".jpg") else parts[0]
        try:
            cid = int(parts[1])
        except ValueError:
            problems.append(f"line {lineno}: class id {parts[1]!r} of {stem} is not an integer")
            continue
        if not 1 <= cid <= NUM_CLASSES:
            problems.append(f"line {lineno}: unknown class id {cid} for {stem} (expected 1..{NUM_CLASSES})")
            continue
        if stem in seen:
            problems.append(f"line {lineno}: {stem} is listed twice (first on line {seen[stem]})")
            continue
        seen[stem] = lineno
        entries.append((stem, cid))
    if problems:
        raise PetsDataError(f"{path}: {len(problems)} bad line(s):\n  " + "\n  ".join(problems))
    return entries


def breed_from_stem(stem: str) -> str:
    """``"Abyssinian_1"`` -> ``"Abyssinian"``, ``"american_bulldog_10"`` -> ``"american_bulldog"``."""
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def _class_names(split_entries: Iterable[list[tuple[str, int]]]) -> list[str]:
    by_id: dict[int, set[str]] = {}
    for entries in split_entries:
        for stem, cid in entries:
            by_id.setdefault(cid, set()).add(breed_from_stem(stem))
    conflicts = {cid: sorted(n) for cid, n in by_id.items() if len(n) > 1}
    if conflicts:
        desc = "; ".join(f"class id {cid}: {names}" for cid, names in sorted(conflicts.items()))
        raise PetsDataError(f"class ids map to more than one breed name: {desc}")
    return [next(iter(by_id[c])) if c in by_id else f"class_{c}" for c in range(1, NUM_CLASSES + 1)]


# --------------------------------------------------------------------------- decoding


def resize_shorter_center_crop(img, size: int) -> np.ndarray:
    """PIL image -> uint8 ``[size, size, 3]``: RGB, shorter side resized to ``size``
    (``Image.BILINEAR``, antialiased when shrinking), then center crop.
    An RGB image already ``size x size`` is returned unchanged."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8)
    if arr.shape != (size, size, 3):  # pragma: no cover - defensive
        raise ValueError(f"unexpected decoded shape {arr.shape}")
    return arr


def _decode_one(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return resize_shorter_center_crop(img, size)


def _decode_all(paths: Sequence[Path], size: int, desc: str, progress: bool) -> np.ndarray:
    """Decode every image into one uint8 array; collect *all* failures before raising."""
    from tqdm.auto import tqdm

    out = np.empty((len(paths), size, size, 3), np.uint8)
    failures: list[str] = []

    def work(i: int):
        try:
            out[i] = _decode_one(paths[i], size)
            return None
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported
            return f"{paths[i].name} ({type(exc).__name__}: {exc})"

    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(paths), desc=desc, unit="img",
                                                    disable=not progress) as bar:
        for err in pool.map(work, range(len(paths))):
            if err is not None:
                failures.append(err)
            bar.update(1)
    if failures:
        raise PetsDataError(f"{len(failures)} unreadable or corrupt image(s):\n  " + "\n  ".join(failures))
    return out


# --------------------------------------------------------------------------- loading


def _select(entries: list[tuple[str, int]], per_class_limit: int | None) -> list[tuple[str, int]]:
    if per_class_limit is None:
        return entries
    if per_class_limit < 1:
        raise ValueError("per_class_limit must be >= 1 or None")
    counts: dict[int, int] = {}
    out = []
    for stem, cid in entries:
        if counts.get(cid, 0) < per_class_limit:
            counts[cid] = counts.get(cid, 0) + 1
            out.append((stem, cid))
    return out


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` of ``array`` written atomically (:func:`lsbench.provenance.atomic_write_bytes`)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getbuffer())


def _load_dir(root: Path, split: str, image_size: int, per_class_limit: int | None,
              cache_root: Path, use_cache: bool, progress: bool) -> PetsSplit:
    ann = root / "annotations"
    split_file = ann / f"{split}.txt"
    if not split_file.is_file():
        raise PetsDataError(f"split file {split_file} is missing (expected annotations/{split}.txt "
                            "of the official Oxford-IIIT Pet layout)")
    entries = read_split_file(split_file)
    all_entries = [entries] + [read_split_file(ann / f"{s}.txt") for s in SPLITS
                               if s != split and (ann / f"{s}.txt").is_file()]
    names = _class_names(all_entries)
    chosen = _select(entries, per_class_limit)
    images_dir = root / "images"
    paths = [images_dir / f"{stem}.jpg" for stem, _ in chosen]

    key = hashlib.sha256()
    key.update(f"{PREPROCESS_VERSION}|{split}|{image_size}|{per_class_limit}\n".encode())
    for s in SPLITS:
        f = ann / f"{s}.txt"
        if f.is_file():
            key.update(s.encode() + b"\0" + f.read_bytes() + b"\0")
    missing = []
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            missing.append(p.name)
            continue
        key.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    if missing:
        raise PetsDataError(f"{len(missing)} image(s) listed in {split_file} are missing from "
                            f"{images_dir}:\n  " + "\n  ".join(missing))
    cache_file = (cache_root / "arrays" /
                  f"pets-{split}-{image_size}px-{per_class_limit or 'all'}-{key.hexdigest()[:20]}.npy")
    files = [p.name for p in paths]
    labels = np.asarray([cid - 1 for _, cid in chosen], np.int32)
    if use_cache and cache_file.is_file():
        try:
            images = np.load(cache_file, allow_pickle=False)
            if images.dtype == np.uint8 and images.shape == (len(paths), image_size, image_size, 3):
                return PetsSplit(images, labels, names, files)
        except (OSError, ValueError):  # unreadable/truncated cache: rebuild it
            pass
    images = _decode_all(paths, image_size, f"decode pets/{split}", progress)
    if use_cache:
        _atomic_save_npy(cache_file, images)
    return PetsSplit(images, labels, names, files)


def _load_tfds(split: str, image_size: int, per_class_limit: int | None, cache_root: Path,
               download: bool, progress: bool) -> PetsSplit:
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise PetsDataError(
            "source='tfds' needs TensorFlow, which is an optional extra: "
            "pip install 'lsbench[tfds]' (or pip install tensorflow). "
            "Without it, use the official archives or directory instead (source='auto')."
        ) from exc
    import tensorflow_datasets as tfds
    from PIL import Image
    from tqdm.auto import tqdm

    ds, info = tfds.load("oxford_iiit_pet", split={"trainval": "train", "test": "test"}[split],
                         data_dir=str(cache_root / "tfds"), download=download, with_info=True)
    names = list(info.features["label"].names)
    counts: dict[int, int] = {}
    images, labels, files = [], [], []
    for ex in tqdm(tfds.as_numpy(ds), desc=f"tfds pets/{split}", unit="img", disable=not progress):
        label = int(ex["label"])
        if per_class_limit is not None:
            if counts.get(label, 0) >= per_class_limit:
                continue
            counts[label] = counts.get(label, 0) + 1
        images.append(resize_shorter_center_crop(Image.fromarray(ex["image"]), image_size))
        labels.append(label)
        fn = ex["file_name"]
        files.append(fn.decode() if isinstance(fn, bytes) else str(fn))
    return PetsSplit(np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8),
                     np.asarray(labels, np.int32), names, files)


def load_pets(data_dir: str | os.PathLike | None = None, split: str = "trainval", image_size: int = 224,
              per_class_limit: int | None = None, download: bool = False,
              cache_dir: str | os.PathLike | None = None, *, source: str = "auto",
              use_cache: bool = True, progress: bool = True) -> PetsSplit:
    """Load one split of Oxford-IIIT Pet as decoded, resized arrays.

    ``split``: ``"trainval"`` (3,680 images) or ``"test"`` (3,669).
    ``image_size``: output side S (shorter side resized to S, center crop).
    ``per_class_limit``: keep only the first N images of each class (fast tests).
    ``download``: allow downloading the official archives when no local copy
    is found.  ``cache_dir``: downloads and the decoded-array cache
    (default ``$LSBENCH_CACHE_DIR`` or ``~/.cache/lsbench``).
    ``source``: ``"auto"`` (directory / archives / download, see
    :func:`resolve_pets_dir`) or ``"tfds"`` (tensorflow-datasets builder;
    needs TensorFlow; not cached by lsbench).  ``use_cache``: read/write the
    decoded ``.npy`` cache.

    Raises :class:`PetsNotFoundError` when no data is available and
    :class:`PetsDataError` for malformed data (missing split file, class ids
    outside 1..37, listed images that are missing, unreadable images -- each
    error lists every offending file or line).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if image_size < 1:
        raise ValueError("image_size must be positive")
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if source == "tfds":
        return _load_tfds(split, image_size, per_class_limit, cache_root, download, progress)
    if source != "auto":
        raise ValueError(f"source must be 'auto' or 'tfds', got {source!r}")
    root = resolve_pets_dir(data_dir, download=download, cache_dir=cache_root, progress=progress)
    return _load_dir(root, split, image_size, per_class_limit, cache_root, use_cache, progress)
