"""The official Oxford-IIIT Pet archives: where they are, how they are downloaded (resumable,
size- and sha256-checked) and safely unpacked; the errors of :mod:`lsbench.data.pets`."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lsbench.provenance import sha256_file

__all__ = ["ENV_DATA_DIR", "ENV_CACHE_DIR", "Archive", "ARCHIVES", "PetsDataError", "PetsNotFoundError",
           "PetsDownloadError", "has_layout", "how_to_provide", "download_archives", "extract_archive"]

ENV_DATA_DIR = "LSBENCH_DATA_DIR"
ENV_CACHE_DIR = "LSBENCH_CACHE_DIR"


@dataclass(frozen=True)
class Archive:
    """One official archive: file name, mirror URLs (tried in order), size in bytes, sha256."""

    name: str
    urls: tuple[str, ...]
    size: int
    sha256: str


# Sizes and sha256 copied from tensorflow-datasets 4.9.10,
# tensorflow_datasets/datasets/oxford_iiit_pet/checksums.tsv, whose URLs come
# first.  The other mirrors are VGG's newer dataset host and the address used
# by torchvision's OxfordIIITPet; every download is checked against the same
# size and sha256 whichever mirror serves it.
ARCHIVES: tuple[Archive, ...] = (
    Archive(
        "images.tar.gz",
        (
            "https://thor.robots.ox.ac.uk/~vgg/data/pets/images.tar.gz",
            "https://thor.robots.ox.ac.uk/datasets/pets/images.tar.gz",
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
        ),
        791_918_971,
        "67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d",
    ),
    Archive(
        "annotations.tar.gz",
        (
            "https://thor.robots.ox.ac.uk/~vgg/data/pets/annotations.tar.gz",
            "https://thor.robots.ox.ac.uk/datasets/pets/annotations.tar.gz",
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
        ),
        19_173_078,
        "52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91",
    ),
)


class PetsDataError(RuntimeError):
    """The Oxford-IIIT Pet data is malformed (bad split file, missing or corrupt images...)."""


class PetsNotFoundError(PetsDataError):
    """No copy of the data could be found (and downloading was not allowed)."""


class PetsDownloadError(PetsDataError):
    """Downloading or verifying an official archive failed."""


def how_to_provide(extra: str = "") -> str:
    """The ways to give lsbench the data, after ``extra`` (what went wrong)."""
    names = " and ".join(a.name for a in ARCHIVES)
    return (
        f"{extra}Provide Oxford-IIIT Pet in one of these ways:\n"
        f"  * pass --data-dir DIR (data_dir=DIR), or set {ENV_DATA_DIR}=DIR, where DIR holds the "
        "official layout images/*.jpg + annotations/trainval.txt + annotations/test.txt;\n"
        f"  * or make DIR a directory holding the official archives {names} "
        "(from https://www.robots.ox.ac.uk/~vgg/data/pets/); they are unpacked on first use;\n"
        "  * or allow downloading them (download=True, the CLI's --download flag): "
        f"about 811 MB into {ENV_CACHE_DIR} or ~/.cache/lsbench."
    )


def has_layout(d: Path) -> bool:
    """``d`` holds the official layout (``images/`` and ``annotations/``)."""
    return (d / "images").is_dir() and (d / "annotations").is_dir()


# --------------------------------------------------------------------------- download


def _fetch(url: str, part: Path, size: int, desc: str, progress: bool, timeout: float) -> None:
    """Append the missing bytes of ``url`` to ``part`` (resuming with HTTP Range)."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        return
    headers = {"User-Agent": "lsbench (urllib)"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # range not satisfiable: start again
            part.unlink()
            return _fetch(url, part, size, desc, progress, timeout)
        raise
    with resp:
        status = resp.status
        if have and status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise PetsDownloadError(f"{url}: unexpected Content-Range {content_range!r}")
            mode = "ab"
        elif status == 200:
            have, mode = 0, "wb"  # server ignored the Range header: restart
        else:
            raise PetsDownloadError(f"{url}: unexpected HTTP status {status}")
        with open(part, mode) as f, tqdm(total=size, initial=have, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=desc, disable=not progress) as bar:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                have += len(chunk)
                if have > size:
                    raise PetsDownloadError(f"{url}: server sent more than the published {size} bytes")
                f.write(chunk)
                bar.update(len(chunk))


def _download_archive(archive: Archive, dest: Path, progress: bool, timeout: float) -> Path:
    final = dest / archive.name
    if final.is_file() and final.stat().st_size == archive.size and sha256_file(final) == archive.sha256:
        return final
    part = dest / (archive.name + ".part")
    errors = []
    for url in archive.urls:
        try:
            _fetch(url, part, archive.size, archive.name, progress, timeout)
            break
        except (urllib.error.URLError, OSError, PetsDownloadError) as exc:
            errors.append(f"{url}: {exc}")
    else:
        raise PetsDownloadError(
            f"could not download {archive.name}:\n  " + "\n  ".join(errors)
            + f"\nThe partial file {part} is kept; run again to resume.\n" + how_to_provide())
    got = part.stat().st_size
    if got != archive.size:
        raise PetsDownloadError(
            f"{archive.name}: downloaded {got} bytes, expected {archive.size}; run again to resume "
            f"(partial file {part}).")
    digest = sha256_file(part)
    if digest != archive.sha256:
        part.unlink()
        raise PetsDownloadError(
            f"{archive.name}: sha256 mismatch (got {digest}, expected {archive.sha256}); "
            "the corrupt download was deleted, run again to re-download.")
    os.replace(part, final)
    return final


def download_archives(dest: Path, archives: tuple[Archive, ...] = ARCHIVES, *, progress: bool = True,
                      timeout: float = 60.0, keep_archives: bool = False) -> Path:
    """Download, verify and unpack the official archives into ``dest``.

    Uses urllib only.  An interrupted download leaves ``<name>.part``; the
    next call resumes it with an HTTP ``Range`` request (or restarts when the
    server ignores ranges).  Each archive must match the published size and
    sha256 (:data:`ARCHIVES`); a mismatching file is deleted and
    :class:`PetsDownloadError` raised.  Returns the data directory.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        top = archive.name.split(".")[0]  # images / annotations
        if (dest / top).is_dir():
            continue
        path = _download_archive(archive, dest, progress, timeout)
        extract_archive(path, dest, expect_top=top, progress=progress)
        if not keep_archives:
            path.unlink()
    if not has_layout(dest):
        raise PetsDownloadError(f"{dest}: archives unpacked but images/ or annotations/ is missing")
    return dest


# --------------------------------------------------------------------------- safe extraction


def _check_member(m: tarfile.TarInfo, archive: Path) -> None:
    name = m.name
    p = PurePosixPath(name)
    if name.startswith(("/", "\\")) or p.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise PetsDataError(f"{archive}: refusing to extract absolute path {name!r}")
    if ".." in p.parts:
        raise PetsDataError(f"{archive}: refusing to extract {name!r} (escapes the target directory)")
    if not (m.isfile() or m.isdir()):
        raise PetsDataError(f"{archive}: refusing to extract {name!r} (links and special files "
                            "are not expected in the official archives)")


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike, *, expect_top: str | None = None,
                    progress: bool = True) -> Path:
    """Safely unpack a ``.tar.gz`` into ``dest``.

    Every member is checked first: absolute paths, ``..`` components, links
    and special files are rejected (:class:`PetsDataError`) before anything is
    written.  Members are unpacked into a temporary directory inside ``dest``
    and moved into place at the end, so an interrupted run leaves no
    half-filled ``images/``.  ``expect_top`` (e.g. ``"images"``) must be the
    archive's top-level directory.
    """
    from tqdm.auto import tqdm

    archive, dest = Path(archive), Path(dest)
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise PetsDataError(f"{archive} is not a readable tar archive: {exc}") from exc
    with tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise PetsDataError(f"{archive} is corrupt: {exc}") from exc
        for m in members:
            _check_member(m, archive)
        tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
        tops.discard(".")
        if expect_top is not None and expect_top not in tops:
            raise PetsDataError(f"{archive}: expected a top-level {expect_top}/ directory, found {sorted(tops)}")
        tmp = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}-", dir=dest))
        try:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            for m in tqdm(members, desc=f"unpack {archive.name}", unit="file", disable=not progress):
                try:
                    tf.extract(m, tmp, **kwargs)
                except (tarfile.TarError, OSError, EOFError) as exc:
                    raise PetsDataError(f"{archive}: cannot extract {m.name!r}: {exc}") from exc
            for top in sorted(tops):
                target = dest / top
                if target.exists():
                    if top == expect_top or target.is_file():
                        shutil.rmtree(target) if target.is_dir() else target.unlink()
                    else:
                        continue
                os.replace(tmp / top, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
