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
    assert info["model"] == model and info["logical_cores"] == os.cpu_count() and info["usable_cores"] == cores


def test_package_versions_and_collect():
    import numpy

    versions = provenance.package_versions(("numpy", "no-such-package-lsbench"))
    assert versions == {"numpy": numpy.__version__, "no-such-package-lsbench": None}
    rec = provenance.collect(files={"me": __file__, "gone": "/nonexistent/file"}, packages=("numpy",), run=7)
    for key in ("created_utc", "git", "packages", "python", "platform", "argv", "jax", "runtime", "cpu", "gpu"):
        assert key in rec
    assert "hostname" not in rec
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["created_utc"])
    assert rec["files"]["me"]["sha256"] == provenance.sha256_file(__file__)
    assert rec["files"]["me"]["path"] == "tests/test_provenance.py"  # relative to the repository
    assert rec["files"]["gone"] == {"path": "file", "sha256": None, "bytes": None}
    assert rec["run"] == 7
    json.dumps(rec, allow_nan=False)  # JSON-able as promised
    provenance.assert_no_absolute_paths(rec)


def test_default_packages_cover_everything_that_shapes_the_numbers():
    for name in ("numpy", "jax", "jaxlib", "optax", "flax", "scipy", "Pillow", "scikit-learn", "mlxtend",
                 "matplotlib", "sympy"):
        assert name in provenance.DEFAULT_PACKAGES
    rec = provenance.collect()
    assert set(provenance.NUMERIC_PACKAGES) <= set(rec["packages"])
    from importlib import metadata
    assert rec["packages"]["jaxlib"] == metadata.version("jaxlib")
    assert rec["jax"]["platform"] == rec["jax"]["devices"][0].rsplit("(", 1)[1].rstrip(")")
    assert rec["cpu"]["model"] == provenance.cpu_model() and rec["cpu"]["usable_cores"] >= 1


def test_runtime_env_records_xla_flags_and_threads(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_dump_to=/home/me/dump")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = provenance.runtime_env()
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_dump_to=dump"
    assert env["OMP_NUM_THREADS"] is None and "JAX_PLATFORMS" in env
    assert provenance.collect()["runtime"] == env


def test_portable_path_and_text(tmp_path):
    assert provenance.portable_path(tmp_path / "data" / "a.txt", root=tmp_path) == "data/a.txt"
    assert provenance.portable_path(tmp_path / "cache" / "f.npz") == "f.npz"
    assert provenance.portable_path(provenance.REPO_ROOT / "lsbench" / "cli.py") == "lsbench/cli.py"
    assert provenance.portable_path("C:\\Users\\me\\x.json") == "x.json"
    assert provenance.portable_text(f"--data-dir={tmp_path}/pets --quick", root=tmp_path) == "--data-dir=pets --quick"
    for text in ("lsbench:uniform/fwd+bwd/float32/1024x32000", "chunked[uniform]/fwd", "(K-1)/K", "t / t_floor",
                 "https://example.com/a/b", "1/3 /4"):
        assert provenance.portable_text(text) == text and not provenance.find_absolute_paths(text)


def test_assert_no_absolute_paths_names_the_key():
    import socket

    provenance.assert_no_absolute_paths({"a": ["x/y", {"b": "rel/path"}], "n": 1.5})
    with pytest.raises(ValueError, match=r"provenance\.argv\[1\]: '/home/me/x'"):
        provenance.assert_no_absolute_paths({"provenance": {"argv": ["run", "/home/me/x"]}})
    with pytest.raises(ValueError, match=r"env\.XLA_FLAGS"):
        provenance.assert_no_absolute_paths({"env": {"XLA_FLAGS": "--xla_dump_to=/tmp/d"}})
    with pytest.raises(ValueError, match=r"files\[0\]"):
        provenance.assert_no_absolute_paths({"files": ["~/data/x"]})
    with pytest.raises(ValueError, match=r"p\.hostname"):
        provenance.assert_no_absolute_paths({"p": {"hostname": "box"}})
    with pytest.raises(ValueError, match=r"machine"):
        provenance.assert_no_absolute_paths({"machine": socket.gethostname()})


def test_require_clean_tree(tmp_path):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    with pytest.raises(provenance.DirtyTreeError, match="not a git checkout"):
        provenance.require_clean_tree(False, root=tmp_path)
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "first")
    assert provenance.require_clean_tree(False, root=tmp_path)["dirty"] is False
    (tmp_path / "paper" / "results").mkdir(parents=True)
    (tmp_path / "paper" / "results" / "bench-x.json").write_text("{}\n")  # outputs do not count
    info = provenance.require_clean_tree(False, root=tmp_path)
    assert info["dirty"] is False and provenance.git_info(tmp_path)["dirty"] is True
    for i in range(7):
        (tmp_path / f"new{i}.py").write_text("y = 1\n")
    (tmp_path / "a.py").write_text("x = 2\n")
    with pytest.raises(provenance.DirtyTreeError, match=r"a\.py, new0\.py.* and 3 more.*commit first.*--allow-dirty"):
        provenance.require_clean_tree(False, root=tmp_path)
    assert provenance.require_clean_tree(True, root=tmp_path)["dirty"] is True


def test_check_writable(tmp_path, monkeypatch):
    provenance.check_writable(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir() and list((tmp_path / "new" / "dir").iterdir()) == []

    def refuse(*args, **kwargs):  # as a read-only directory would (root can write anywhere)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(provenance.tempfile, "mkstemp", refuse)
    with pytest.raises(OSError, match=f"cannot write to {tmp_path}: Permission denied"):
        provenance.check_writable(tmp_path)
