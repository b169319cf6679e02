"""Tests of lsbench.data.pets: official layout, archives, download, cache, bad input.

Nothing here touches the internet: downloads are served by a local
``http.server`` on 127.0.0.1 with small fake archives.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lsbench.data import pets
from lsbench.data.pets import (
    PetsDataError,
    PetsDownloadError,
    PetsNotFoundError,
    load_pets,
    read_split_file,
    resize_shorter_center_crop,
)

SHARED_PETS = Path(__file__).resolve().parents[2] / "shared/data/oxford-iiit-pet"

OFFICIAL_NAMES = [
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal",
    "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
    "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
    "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug",
    "Ragdoll", "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "Siamese",
    "Sphynx", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
]

# tiny tree: (stem, class id, size, colour); class ids 1, 2 and 37 only
TINY = {
    "trainval": [("Abyssinian_1", 1, (40, 30), (200, 10, 10)), ("Abyssinian_2", 1, (30, 30), (190, 20, 20)),
                 ("Abyssinian_3", 1, (64, 48), (180, 30, 30)), ("american_bulldog_1", 2, (30, 50), (10, 200, 10)),
                 ("american_bulldog_2", 2, (33, 33), (20, 190, 20)),
                 ("yorkshire_terrier_1", 37, (50, 40), (10, 10, 200))],
    "test": [("Abyssinian_4", 1, (36, 36), (170, 40, 40)), ("american_bulldog_3", 2, (45, 30), (30, 180, 30)),
             ("yorkshire_terrier_2", 37, (30, 30), (20, 20, 190))],
}


def _write_tree(root: Path, splits=TINY, comment=True) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    for split, rows in splits.items():
        lines = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids"] if comment else []
        for stem, cid, size, colour in rows:
            Image.new("RGB", size, colour).save(root / "images" / f"{stem}.jpg", quality=95)
            lines.append(f"{stem} {cid} {1 if stem[0].isupper() else 2} 1")
        (root / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture()
def tiny(tmp_path):
    return _write_tree(tmp_path / "pets")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test may see the developer's data or cache directories."""
    monkeypatch.delenv(pets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv(pets.ENV_CACHE_DIR, str(tmp_path / "default-cache"))


def _make_archives(tree: Path, dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for top in ("images", "annotations"):
        path = dest / f"{top}.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            tf.add(tree / top, arcname=top)
        out[top] = path
    return out


# --------------------------------------------------------------------------- directory layout


def test_load_tiny_tree(tiny, tmp_path):
    s = load_pets(tiny, "trainval", image_size=16, cache_dir=tmp_path / "c", progress=False)
    assert s.images.shape == (6, 16, 16, 3) and s.images.dtype == np.uint8
    assert s.labels.dtype == np.int32
    assert s.labels.tolist() == [0, 0, 0, 1, 1, 36]
    assert s.files == [f"{r[0]}.jpg" for r in TINY["trainval"]]
    assert len(s.names) == 37 and len(s) == 6
    assert (s.names[0], s.names[1], s.names[36]) == ("Abyssinian", "american_bulldog", "yorkshire_terrier")
    assert s.names[5] == "class_6"  # class ids absent from every split file
    # solid-colour images keep their colour after resize + crop (JPEG noise aside)
    for img, (_, _, _, colour) in zip(s.images, TINY["trainval"]):
        assert np.abs(img[4:12, 4:12].astype(int) - colour).max() <= 12
    t = load_pets(tiny, "test", image_size=16, cache_dir=tmp_path / "c", progress=False)
    assert t.labels.tolist() == [0, 1, 36] and t.names == s.names


def test_per_class_limit(tiny, tmp_path):
    s = load_pets(tiny, "trainval", image_size=8, per_class_limit=2, cache_dir=tmp_path / "c", progress=False)
    assert s.files == ["Abyssinian_1.jpg", "Abyssinian_2.jpg", "american_bulldog_1.jpg",
                       "american_bulldog_2.jpg", "yorkshire_terrier_1.jpg"]
    with pytest.raises(ValueError, match="per_class_limit"):
        load_pets(tiny, "trainval", per_class_limit=0, cache_dir=tmp_path / "c", progress=False)


def test_bad_arguments(tiny, tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_pets(tiny, "train", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="source"):
        load_pets(tiny, source="kaggle", cache_dir=tmp_path / "c")


def test_resize_shorter_side_then_center_crop():
    # 80x40: red | green (middle half) | blue; shorter side 40 -> 20 gives 40x20, crop keeps the middle
    a = np.zeros((40, 80, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    a[:, 20:60] = (0, 255, 0)
    a[:, 60:] = (0, 0, 255)
    out = resize_shorter_center_crop(Image.fromarray(a), 20)
    assert out.shape == (20, 20, 3)
    assert (out[:, 1:-1] == (0, 255, 0)).all()
    # portrait image: crop vertically
    b = np.zeros((90, 30, 3), np.uint8)
    b[30:60] = 255
    out = resize_shorter_center_crop(Image.fromarray(b), 10)
    assert out.shape == (10, 10, 3) and (out[1:-1] == 255).all()
    # an image already at the target size is returned unchanged (the shared 224x224 copy)
    c = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_shorter_center_crop(Image.fromarray(c), 24), c)
    # grayscale and RGBA inputs become RGB
    assert resize_shorter_center_crop(Image.new("L", (12, 20), 7), 8).shape == (8, 8, 3)
    assert resize_shorter_center_crop(Image.new("RGBA", (12, 20)), 8).shape == (8, 8, 3)


def test_env_var_data_dir(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(pets.ENV_DATA_DIR, str(tiny))
    s = load_pets(split="test", image_size=8, cache_dir=tmp_path / "c", progress=False)
    assert len(s) == 3
    monkeypatch.setenv(pets.ENV_DATA_DIR, str(tmp_path / "nowhere"))
    with pytest.raises(PetsNotFoundError, match=r"\$LSBENCH_DATA_DIR .*nowhere does not exist"):
        load_pets(split="test", cache_dir=tmp_path / "c")


def test_nested_official_directory_is_accepted(tmp_path):
    _write_tree(tmp_path / "parent" / "oxford-iiit-pet")
    s = load_pets(tmp_path / "parent", "test", image_size=8, cache_dir=tmp_path / "c", progress=False)
    assert len(s) == 3


# --------------------------------------------------------------------------- cache


def test_second_load_hits_cache_and_changes_invalidate(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    first = load_pets(tiny, "trainval", image_size=16, cache_dir=cache, progress=False)
    files = list((cache / "arrays").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"
    assert not list((cache / "arrays").glob("*.tmp"))

    def no_decode(*a, **k):
        raise AssertionError("decoded again instead of using the cache")

    real_decode = pets._decode_all
    monkeypatch.setattr(pets, "_decode_all", no_decode)
    second = load_pets(tiny, "trainval", image_size=16, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first.images, second.images)
    assert second.labels.tolist() == first.labels.tolist() and second.files == first.files

    # a changed image (size/mtime), target size, limit or split file gives a new key
    for kwargs in ({"image_size": 12}, {"per_class_limit": 1}):
        with pytest.raises(AssertionError, match="decoded again"):
            load_pets(tiny, "trainval", cache_dir=cache, progress=False, **dict({"image_size": 16}, **kwargs))
    Image.new("RGB", (40, 30), (0, 0, 0)).save(tiny / "images" / "Abyssinian_1.jpg", quality=50)
    os.utime(tiny / "images" / "Abyssinian_1.jpg", ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded again"):
        load_pets(tiny, "trainval", image_size=16, cache_dir=cache, progress=False)
    monkeypatch.setattr(pets, "_decode_all", real_decode)
    third = load_pets(tiny, "trainval", image_size=16, cache_dir=cache, progress=False)
    assert third.images[0].mean() < 20 and first.images[0].mean() > 50
    # use_cache=False neither reads nor writes
    n = len(list((cache / "arrays").iterdir()))
    load_pets(tiny, "trainval", image_size=10, cache_dir=cache, use_cache=False, progress=False)
    assert len(list((cache / "arrays").iterdir())) == n


def test_corrupt_cache_file_is_rebuilt(tiny, tmp_path):
    cache = tmp_path / "c"
    first = load_pets(tiny, "test", image_size=8, cache_dir=cache, progress=False)
    (f,) = (cache / "arrays").iterdir()
    f.write_bytes(f.read_bytes()[:50])
    again = load_pets(tiny, "test", image_size=8, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first.images, again.images)


# --------------------------------------------------------------------------- bad input


def test_missing_split_file(tiny, tmp_path):
    (tiny / "annotations" / "test.txt").unlink()
    with pytest.raises(PetsDataError, match=r"annotations/test.txt"):
        load_pets(tiny, "test", cache_dir=tmp_path / "c", progress=False)


def test_unknown_class_ids_are_all_reported(tiny, tmp_path):
    f = tiny / "annotations" / "trainval.txt"
    f.write_text(f.read_text() + "Abyssinian_1x 0 1 1\nAbyssinian_1y 38 1 1\nAbyssinian_1z abc 1 1\nlonely\n")
    with pytest.raises(PetsDataError) as e:
        load_pets(tiny, "trainval", cache_dir=tmp_path / "c", progress=False)
    msg = str(e.value)
    for part in ("unknown class id 0", "unknown class id 38", "'abc'", "lonely", "4 bad line(s)"):
        assert part in msg


def test_duplicate_and_conflicting_names(tiny, tmp_path):
    f = tiny / "annotations" / "trainval.txt"
    f.write_text(f.read_text() + "Abyssinian_2 1 1 1\n")
    with pytest.raises(PetsDataError, match="listed twice"):
        read_split_file(f)
    _write_tree(tiny)  # restore
    f.write_text(f.read_text() + "beagle_1 1 2 1\n")
    Image.new("RGB", (20, 20)).save(tiny / "images" / "beagle_1.jpg")
    with pytest.raises(PetsDataError, match="class id 1: \\['Abyssinian', 'beagle'\\]"):
        load_pets(tiny, "trainval", cache_dir=tmp_path / "c", progress=False)


def test_missing_images_are_all_reported(tiny, tmp_path):
    (tiny / "images" / "Abyssinian_2.jpg").unlink()
    (tiny / "images" / "yorkshire_terrier_1.jpg").unlink()
    with pytest.raises(PetsDataError) as e:
        load_pets(tiny, "trainval", cache_dir=tmp_path / "c", progress=False)
    msg = str(e.value)
    assert "2 image(s)" in msg and "Abyssinian_2.jpg" in msg and "yorkshire_terrier_1.jpg" in msg


def test_corrupt_images_are_all_reported_never_skipped(tiny, tmp_path):
    (tiny / "images" / "Abyssinian_3.jpg").write_bytes(b"not a jpeg at all")
    good = (tiny / "images" / "american_bulldog_2.jpg").read_bytes()
    (tiny / "images" / "american_bulldog_2.jpg").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(PetsDataError) as e:
        load_pets(tiny, "trainval", cache_dir=tmp_path / "c", progress=False)
    msg = str(e.value)
    assert "2 unreadable or corrupt image(s)" in msg
    assert "Abyssinian_3.jpg" in msg and "american_bulldog_2.jpg" in msg
    assert not (tmp_path / "c" / "arrays").exists() or not list((tmp_path / "c" / "arrays").iterdir())


def test_no_source_gives_instructions(tmp_path):
    with pytest.raises(PetsNotFoundError) as e:
        load_pets(cache_dir=tmp_path / "empty-cache")
    msg = str(e.value)
    for part in ("--data-dir", "LSBENCH_DATA_DIR", "images.tar.gz", "annotations.tar.gz", "download=True"):
        assert part in msg


def test_data_dir_without_data(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "readme.txt").write_text("hi")
    with pytest.raises(PetsNotFoundError, match="neither the official layout"):
        load_pets(tmp_path / "d", cache_dir=tmp_path / "c")
    with pytest.raises(PetsNotFoundError, match="does not exist"):
        load_pets(tmp_path / "missing", cache_dir=tmp_path / "c")


def test_tfds_source_without_tensorflow(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("No module named 'tensorflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(PetsDataError, match="needs TensorFlow.*lsbench\\[tfds\\]"):
        load_pets(source="tfds", cache_dir=tmp_path)


# --------------------------------------------------------------------------- archives


def test_archives_are_unpacked_and_match_directory(tiny, tmp_path):
    arch_dir = tmp_path / "archives"
    _make_archives(tiny, arch_dir)
    from_dir = load_pets(tiny, "trainval", image_size=16, cache_dir=tmp_path / "c1", progress=False)
    from_arch = load_pets(arch_dir, "trainval", image_size=16, cache_dir=tmp_path / "c2", progress=False)
    np.testing.assert_array_equal(from_dir.images, from_arch.images)
    assert from_arch.files == from_dir.files
    assert (arch_dir / "images").is_dir() and (arch_dir / "annotations" / "test.txt").is_file()
    assert not [p for p in arch_dir.iterdir() if p.name.startswith(".extract")]


def test_read_only_archive_dir_unpacks_into_cache(tiny, tmp_path, monkeypatch):
    arch_dir = tmp_path / "archives"
    _make_archives(tiny, arch_dir)
    monkeypatch.setattr(pets, "_writable", lambda d: False)
    s = load_pets(arch_dir, "test", image_size=8, cache_dir=tmp_path / "c", progress=False)
    assert len(s) == 3
    assert not (arch_dir / "images").exists()
    assert list((tmp_path / "c" / "extracted").glob("*/images"))


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_unsafe_archive_members_are_rejected(tmp_path, kind):
    evil = tmp_path / "archives"
    evil.mkdir()
    ok = tarfile.TarInfo("images/a.jpg")
    ok.size = 3
    bad = tarfile.TarInfo({"dotdot": "images/../../escaped.txt", "absolute": str(tmp_path / "abs.txt"),
                           "symlink": "images/link", "hardlink": "images/hard"}[kind])
    data = b"bad"
    if kind in ("symlink", "hardlink"):
        bad.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
        bad.linkname = "/etc/passwd"
        data = None
    else:
        bad.size = 3
    _tar_with(evil / "images.tar.gz", [(ok, b"abc"), (bad, data)])
    with pytest.raises(PetsDataError, match="refusing to extract"):
        pets.extract_archive(evil / "images.tar.gz", evil, expect_top="images", progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "abs.txt").exists()
    assert not (evil / "images").exists()  # nothing was written


def test_corrupt_archive(tmp_path):
    d = tmp_path / "archives"
    d.mkdir()
    (d / "images.tar.gz").write_bytes(b"\x1f\x8b garbage")
    (d / "annotations.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(PetsDataError, match="images.tar.gz"):
        load_pets(d, cache_dir=tmp_path / "c", progress=False)


# --------------------------------------------------------------------------- download (local server)


class _Server:
    """127.0.0.1 HTTP server for fake archives; optional Range support, request log."""

    def __init__(self, files: dict[str, bytes], support_range: bool = True):
        self.files, self.support_range, self.log = files, support_range, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.log.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                rng = self.headers.get("Range")
                if rng and server.support_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    body = data[start:]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    body = data
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def served(tiny, tmp_path, monkeypatch):
    """Fake official archives served locally; pets.ARCHIVES patched to point at them."""
    paths = _make_archives(tiny, tmp_path / "origin")
    blobs = {p.name: p.read_bytes() for p in paths.values()}
    srv = _Server(blobs)
    dead = "http://127.0.0.1:9/"  # discard port: connection refused -> next mirror
    archives = tuple(pets.Archive(name, (dead + name, f"{srv.url}/{name}"), len(data),
                                  hashlib.sha256(data).hexdigest()) for name, data in blobs.items())
    monkeypatch.setattr(pets, "ARCHIVES", archives)
    yield srv, blobs
    srv.close()


def test_download_verify_unpack_and_load(served, tmp_path):
    srv, _ = served
    cache = tmp_path / "dl"
    s = load_pets(split="test", image_size=8, download=True, cache_dir=cache, progress=False)
    assert len(s) == 3 and s.labels.tolist() == [0, 1, 36]
    root = cache / "oxford-iiit-pet"
    assert (root / "images").is_dir() and (root / "annotations" / "trainval.txt").is_file()
    assert not list(root.glob("*.tar.gz")) and not list(root.glob("*.part"))
    # the next call finds the downloaded copy without the network, even with download=False
    n = len(srv.log)
    load_pets(split="trainval", image_size=8, download=False, cache_dir=cache, progress=False)
    assert len(srv.log) == n


def test_download_resumes_partial_file_with_range(served, tmp_path):
    srv, blobs = served
    root = tmp_path / "dl" / "oxford-iiit-pet"
    root.mkdir(parents=True)
    data = blobs["images.tar.gz"]
    k = len(data) // 3
    (root / "images.tar.gz.part").write_bytes(data[:k])
    pets.download_pets(tmp_path / "dl", progress=False)
    assert ("images.tar.gz", f"bytes={k}-") in srv.log
    assert (root / "images" / "Abyssinian_1.jpg").is_file()


def test_download_restarts_when_server_ignores_range(served, tmp_path):
    srv, blobs = served
    srv.support_range = False
    root = tmp_path / "dl" / "oxford-iiit-pet"
    root.mkdir(parents=True)
    (root / "images.tar.gz.part").write_bytes(b"garbage prefix that must be discarded")
    pets.download_pets(tmp_path / "dl", progress=False, keep_archives=True)
    assert (root / "images.tar.gz").read_bytes() == blobs["images.tar.gz"]


def test_download_hash_mismatch(served, tmp_path, monkeypatch):
    archives = tuple(pets.Archive(a.name, a.urls, a.size, "0" * 64) for a in pets.ARCHIVES)
    monkeypatch.setattr(pets, "ARCHIVES", archives)
    with pytest.raises(PetsDownloadError, match="sha256 mismatch"):
        load_pets(download=True, cache_dir=tmp_path / "dl", progress=False)
    root = tmp_path / "dl" / "oxford-iiit-pet"
    assert not list(root.glob("*.part")) and not list(root.glob("*.tar.gz"))


def test_download_size_mismatch_and_unreachable(served, tmp_path, monkeypatch):
    srv, blobs = served
    archives = tuple(pets.Archive(a.name, a.urls, a.size - 10, a.sha256) for a in pets.ARCHIVES)
    monkeypatch.setattr(pets, "ARCHIVES", archives)
    with pytest.raises(PetsDownloadError, match="more than the published"):
        pets.download_pets(tmp_path / "dl", progress=False)
    archives = tuple(pets.Archive(a.name, ("http://127.0.0.1:9/x", f"{srv.url}/missing"), a.size, a.sha256)
                     for a in pets.ARCHIVES)
    monkeypatch.setattr(pets, "ARCHIVES", archives)
    with pytest.raises(PetsDownloadError, match="could not download images.tar.gz") as e:
        pets.download_pets(tmp_path / "dl2", progress=False)
    assert "127.0.0.1:9/x" in str(e.value) and "404" in str(e.value)


def test_archive_constants_match_tfds_checksums():
    tfds_dir = Path(pytest.importorskip("tensorflow_datasets").__file__).parent
    tsv = tfds_dir / "datasets/oxford_iiit_pet/checksums.tsv"
    if not tsv.is_file():
        pytest.skip(f"{tsv} not installed")
    rows = {}
    for line in tsv.read_text().splitlines():
        url, size, sha, name = line.split("\t")
        rows[name] = (url, int(size), sha)
    assert {a.name for a in pets.ARCHIVES} == set(rows)
    for a in pets.ARCHIVES:
        assert (a.urls[0], a.size, a.sha256) == rows[a.name]
    assert {a.name: a.size for a in pets.ARCHIVES} == {"images.tar.gz": 791_918_971,
                                                       "annotations.tar.gz": 19_173_078}


# --------------------------------------------------------------------------- shared copy


@pytest.fixture(scope="module")
def shared():
    if not (SHARED_PETS / "annotations" / "trainval.txt").is_file():
        pytest.skip(f"shared Oxford-IIIT Pet copy not found at {SHARED_PETS}")
    return SHARED_PETS


def test_shared_copy_official_split_sizes(shared):
    tv = read_split_file(shared / "annotations" / "trainval.txt")
    te = read_split_file(shared / "annotations" / "test.txt")
    assert (len(tv), len(te)) == (3680, 3669)
    assert not {s for s, _ in tv} & {s for s, _ in te}
    assert sorted({c for _, c in tv}) == list(range(1, 38))
    counts = np.bincount([c - 1 for _, c in tv], minlength=37)
    assert counts.min() >= 93 and counts.max() == 100


def test_shared_copy_loads_with_official_names(shared, tmp_path):
    s = load_pets(shared, "test", per_class_limit=2, cache_dir=tmp_path, progress=False)
    assert s.images.shape == (74, 224, 224, 3)
    assert s.names == OFFICIAL_NAMES
    assert np.bincount(s.labels, minlength=37).tolist() == [2] * 37
    for f, label in zip(s.files, s.labels):
        assert f.rsplit("_", 1)[0] == s.names[label]
    # 224x224 already: decoded pixels are exactly the JPEG's
    first = np.asarray(Image.open(shared / "images" / s.files[0]).convert("RGB"))
    np.testing.assert_array_equal(s.images[0], first)
