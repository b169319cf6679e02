"""``lsbench.provenance``: atomic writes, git state, machine and package facts, stable digests."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess

import pytest

from lsbench import provenance


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "out.json"
    provenance.atomic_write_json(path, {"a": 1})
    provenance.atomic_write_json(path, {"b": [1, 2]})
    assert provenance.read_json(path) == {"b": [1, 2]}
    assert path.read_text().endswith("\n")
    assert _leftovers(path.parent) == []


def test_atomic_write_leaves_no_partial_file_on_error(tmp_path):
    path = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="interrupted"):
        with provenance.atomic_open(path) as f:
            f.write(b"half of it")
            raise RuntimeError("interrupted")
    assert not path.exists() and _leftovers(tmp_path) == []
    provenance.atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError):
        with provenance.atomic_open(path) as f:
            f.write(b"new, half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and _leftovers(tmp_path) == []
    with pytest.raises(ValueError):  # strict JSON: NaN is refused before anything is written
        provenance.atomic_write_json(path, {"x": math.nan})
    assert path.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    path = provenance.atomic_write_bytes(tmp_path / "f", b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def _git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root,
                   check=True, capture_output=True)


def test_git_info_dirty_detection(tmp_path):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    assert provenance.git_info(tmp_path) == {"commit": None, "dirty": None, "describe": None}
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("*.log\n")
    _git(tmp_path, "add", "a.py", ".gitignore")
    _git(tmp_path, "commit", "-q", "-m", "first")
    clean = provenance.git_info(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", clean["commit"]) and clean["dirty"] is False
    assert clean["commit"].startswith(clean["describe"])
    (tmp_path / "run.log").write_text("ignored\n")
    assert provenance.git_info(tmp_path)["dirty"] is False  # ignored files do not count
    (tmp_path / "a.py").write_text("x = 2\n")
    edited = provenance.git_info(tmp_path)
    assert edited["dirty"] is True and edited["describe"].endswith("-dirty")
    _git(tmp_path, "checkout", "-q", "a.py")
    (tmp_path / "new.py").write_text("y = 1\n")
    assert provenance.git_info(tmp_path)["dirty"] is True  # untracked source counts


def test_machine_facts():
    model = provenance.cpu_model()
    assert model is None or (isinstance(model, str) and model)
    cores = provenance.usable_cores()
    assert isinstance(cores, int) and 1 <= cores <= (os.cpu_count() or cores)
    load = provenance.load_average()
    assert load is None or (len(load) == 3 and all(v >= 0 for v in load))
    info = provenance.cpu_info()
    assert info["model"] == model and info["logical_cores"] == os.cpu_count()


def test_package_versions_and_collect():
    import numpy

    versions = provenance.package_versions(("numpy", "no-such-package-lsbench"))
    assert versions == {"numpy": numpy.__version__, "no-such-package-lsbench": None}
    rec = provenance.collect(files={"me": __file__, "gone": "/nonexistent/file"}, packages=("numpy",), run=7)
    for key in ("created_utc", "git", "packages", "python", "platform", "hostname", "argv", "jax", "cpu", "gpu"):
        assert key in rec
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["created_utc"])
    assert rec["files"]["me"]["sha256"] == provenance.sha256_file(__file__)
    assert rec["files"]["gone"] == {"path": "/nonexistent/file", "sha256": None, "bytes": None}
    assert rec["run"] == 7
    json.dumps(rec, allow_nan=False)  # JSON-able as promised


def test_digest_is_stable_across_key_order_and_containers():
    a = provenance.digest({"b": (1, 2), "a": {"y": 1, "x": 2}})
    b = provenance.digest({"a": {"x": 2, "y": 1}, "b": [1, 2]})
    assert a == b and len(a) == 16
    assert provenance.digest({"b": [2, 1], "a": {"x": 2, "y": 1}}) != a
