"""lsbench.experiments.workdir (code hash, lock) and lsbench.experiments.compare (tolerance rule, verdict)."""

import os
import subprocess
import sys
import threading
import time

import pytest

from lsbench.experiments import compare, workdir


def _run(name, seed, **test):
    return {"name": name, "seed": seed, "loss": {"recipe": "uniform", "params": {}}, "test": test}


def test_code_hash_covers_the_sources_and_changes_with_any_of_them(tmp_path):
    files = workdir.code_files("pets")
    assert "train.py" in files and "metrics.py" in files and "experiments/pets/run.py" in files
    assert any(f.startswith("losses/") for f in files) and any(f.startswith("models/") for f in files)
    assert files == sorted(files) and not any(os.path.isabs(f) for f in files)
    root = tmp_path / "pkg"
    (root / "experiments" / "x").mkdir(parents=True)
    (root / "train.py").write_text("a = 1\n")
    (root / "experiments" / "x" / "run.py").write_text("b = 2\n")
    h = workdir.code_sha256("x", root)
    assert workdir.code_sha256("x", root) == h
    (root / "train.py").write_text("a = 2\n")
    assert workdir.code_sha256("x", root) != h
    (root / "train.py").write_text("a = 1\n")
    (root / "experiments" / "x" / "new.py").write_text("")
    assert workdir.code_sha256("x", root) != h


def test_tolerance_is_the_reference_ci_with_a_floor():
    ref = [_run("ce", 0, error=0.10), _run("ce", 1, error=0.12), _run("ce", 2, error=0.11), _run("one", 0, error=0.2)]
    tol = compare.tolerances(ref, ["error"])
    from lsbench.metrics import summarize

    assert tol["ce"]["error"] == pytest.approx(summarize([0.10, 0.12, 0.11])["ci"])
    assert tol["one"]["error"] == compare.ABSOLUTE_FLOOR["error"]  # a single seed: the floor alone
    fresh = [_run("ce", 0, error=0.10), _run("ce", 1, error=0.12 + tol["ce"]["error"] / 2),
             _run("ce", 2, error=0.11 + 2 * tol["ce"]["error"]), _run("ce", 9, error=0.1)]
    c = compare.compare_runs(fresh, ref, ["error"])
    assert [r["status"] for r in c["runs"]] == ["bit-identical", "within tolerance", "different", "no reference"]
    assert c["largest_difference"]["error"]["run"] == "ce seed 2" and not compare.agrees(c)
    assert c["verdict"].startswith("2/3 within the reference's tolerance") and "1 without a reference" in c["verdict"]


def test_config_and_provenance_differences_are_named():
    ref = [_run("ce", 0, error=0.1)]
    c = compare.compare_runs([_run("ce", 0, error=0.1)], ref, ["error"], fresh_config={"train": {"lr": 1}},
                             reference_config={"train": {"lr": 2}},
                             fresh_provenance={"cpu": {"model": "Intel Xeon"}, "packages": {"jax": "1"}},
                             reference_provenance={"cpu": {"model": "AMD EPYC"}, "packages": {"jax": "1"},
                                                   "git": {"commit": "abcdef0123"}})
    assert c["runs"][0]["status"] == "config differs" and c["runs"][0]["config_differs"] == ["train.lr"]
    assert [d["field"] for d in c["provenance_differs"]] == ["CPU model", "commit"]
    assert c["verdict"] == ("0/1 runs comparable with the reference recorded on AMD EPYC at commit abcdef0: "
                            "1 not comparable (configuration differs: train.lr)")
    assert "verdict: " + c["verdict"] in compare.format_comparison(c)


def test_lock_refuses_waits_and_takes_over_a_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(f"{holder.pid}\n")
        with pytest.raises(workdir.LockHeld, match=f"pid {holder.pid}"):
            workdir.WorkdirLock(tmp_path).acquire()
        threading.Timer(0.3, lambda: (tmp_path / ".lock").unlink()).start()
        t0 = time.perf_counter()
        with workdir.WorkdirLock(tmp_path, wait=True, poll=0.05):
            assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        assert time.perf_counter() - t0 >= 0.25 and not (tmp_path / ".lock").exists()
    finally:
        holder.kill()
        holder.wait()
    (tmp_path / ".lock").write_text(f"{holder.pid}\n")  # its process is gone: stale
    with workdir.WorkdirLock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
