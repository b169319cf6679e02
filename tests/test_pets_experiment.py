"""``python -m lsbench reproduce pets``: protocol pieces, recording, resume, determinism, both profiles."""

import errno
import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lsbench import provenance as prov
from lsbench.cli import main
from lsbench.experiments import pets
from lsbench.experiments.pets import run as pets_run
from lsbench.experiments.pets.run import Experiment
from lsbench.experiments.workdir import code_sha256
from pets_tiny import make_tiny_pets

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "oxford-iiit-pet"
needs_data = pytest.mark.skipif(not (DATA / "annotations" / "trainval.txt").is_file(),
                                reason=f"Oxford-IIIT Pet not found at {DATA} (shared data absent)")


# --------------------------------------------------------------------------- pieces (no data)


def test_heldout_split_is_stratified_seeded_and_disjoint():
    labels = np.repeat(np.arange(37), 99)[np.random.default_rng(0).permutation(37 * 99)]
    train, held = pets.heldout_split(labels, seed=0)
    assert len(held) == round(0.1 * len(labels)) and len(train) + len(held) == len(labels)
    assert not set(train) & set(held)
    counts = np.bincount(labels[held], minlength=37)
    assert counts.min() >= 9 and counts.max() <= 10  # ⌊0.1·99⌋ or one more
    again_train, again_held = pets.heldout_split(labels, seed=0)
    np.testing.assert_array_equal(held, again_held)
    assert not np.array_equal(held, pets.heldout_split(labels, seed=1)[1])
    # tiny subsets still hold something out and keep something to train on
    t, h = pets.heldout_split(np.arange(37), seed=3)
    assert len(h) == 4 and len(t) == 33


def test_augment_batch_is_seeded():
    imgs = np.random.default_rng(0).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    a = pets.augment_batch(imgs, np.random.default_rng(5), 32)
    b = pets.augment_batch(imgs, np.random.default_rng(5), 32)
    assert a.shape == (3, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, pets.augment_batch(imgs, np.random.default_rng(6), 32))


def _record(name, seed, error, params=None):
    test = {"error": error, "nll": 1 + error, "brier": 0.5, "ece": 0.05, "nll_ts": 0.9, "brier_ts": 0.4,
            "ece_ts": 0.02, "temperature": 1.5}
    return {"name": name, "seed": seed, "loss": {"recipe": "uniform", "params": params or {"epsilon": 0.1}},
            "test": test}


def test_aggregate_and_table():
    runs = [_record("ce", s, e, {"epsilon": 0.0}) for s, e in enumerate([0.07, 0.08, 0.06])]
    runs += [_record("uniform", s, e) for s, e in enumerate([0.075, 0.085, 0.065])]
    agg, ignored = pets.aggregate(runs)
    assert not ignored
    assert agg["ce"]["metrics"]["error"]["mean"] == pytest.approx(0.07)
    d = agg["uniform"]["paired_vs_ce"]["error"]
    assert d["mean"] == pytest.approx(0.005) and d["ci"] == pytest.approx(0.0, abs=1e-12)
    table = pets.format_table(agg)
    assert "7.00 ±" in table and "+0.50 ± 0.00" in table and "(baseline)" in table
    assert "7.5 % error" in table and "5.7–7.3 %" in table
    # runs of one name with different loss parameters are not mixed
    bad = runs + [_record("off_target", 0, 0.1), _record("off_target", 1, 0.1, {"epsilon": 0.2})]
    agg, ignored = pets.aggregate(bad)
    assert "off_target" not in agg and ignored[0]["name"] == "off_target"


def test_recipe_table_covers_the_issue():
    assert list(pets.RUN_SPECS) == ["ce", "uniform", "off_target", "fastai", "tf_onehot",
                                    "speech_transformer", "fastreid_adaptive", "self_correction"]
    assert pets.RUN_SPECS["ce"].loss_params(0.3) == {"epsilon": 0.0}
    assert pets.RUN_SPECS["uniform"].loss_params(0.3) == {"epsilon": 0.3}
    assert pets.RUN_SPECS["fastreid_adaptive"].loss_params(0.3) == {"alpha": 0.2, "epsilon": -1.0}


def test_fastai_profile_without_weights_stops_clearly(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["reproduce", "pets", "--profile", "fastai", "--data-dir", str(tmp_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--weights" in err and "--from-scratch" in err and not out.exists()


@pytest.mark.parametrize("argv", [["--recipes", "nope"], ["--epsilon", "1.5"], ["--seeds", "-1"],
                                  ["--epochs", "0"], ["--per-class-limit", "0"]])
def test_bad_arguments_exit_2_and_write_nothing(tmp_path, capsys, argv):
    out = tmp_path / "r.json"
    rc = main(["reproduce", "pets", "--data-dir", str(DATA), "--out", str(out), *argv])
    assert rc == 2 and capsys.readouterr().err and not out.exists() and not (tmp_path / "runs").exists()


def test_missing_data_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LSBENCH_DATA_DIR", raising=False)
    rc = main(["reproduce", "pets", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.json"),
               "--workdir", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert rc == 2 and "--data-dir" in capsys.readouterr().err


# --------------------------------------------------------------------------- end to end on a tiny generated data set


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_pets(tmp_path_factory.mktemp("tiny-pets"))


def _argv(work, ref, cache, data, *extra):
    return ["reproduce", "pets", "--data-dir", str(data), "--image-size", "32", "--per-class-limit", "1",
            "--seeds", "0", "--epochs", "1", "--recipes", "ce", "uniform", "--workdir", str(work),
            "--out", str(ref), "--cache-dir", str(cache), "--no-progress", *extra]


def _metrics(path):
    rec = json.loads(Path(path).read_text())
    return rec["test"], rec["temperature"], rec["train_log"][0]["loss"]


def test_end_to_end_interrupt_resume_force_and_mismatch(tmp_path, cache_dir, tiny_data, monkeypatch, capsys):
    work, ref = tmp_path / "work", tmp_path / "results" / "pets-frozen.json"
    out, runs = work / "pets-frozen.json", work / "runs"
    argv = lambda *extra: _argv(work, ref, cache_dir, tiny_data, *extra)  # noqa: E731

    # 1. interrupted after the first run: that run is recorded, the second is lost, status says so
    real = Experiment.train_one
    calls = []

    def interrupt_second(self, *a, **k):
        calls.append(a[0].name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Experiment, "train_one", interrupt_second)
    assert main(argv()) == 130
    monkeypatch.setattr(Experiment, "train_one", real)
    assert (runs / "ce-seed0.json").is_file() and not (runs / "uniform-seed0.json").exists()
    partial = json.loads(out.read_text())
    assert partial["invocation"]["status"] == "interrupted" and [r["name"] for r in partial["runs"]] == ["ce"]
    assert not (work / ".lock").exists()
    ce_bytes = (runs / "ce-seed0.json").read_bytes()

    # 2. rerun: ce is skipped (its record untouched), uniform is trained, a valid results file is written
    capsys.readouterr()
    assert main(argv()) == 0
    printed = capsys.readouterr().out
    assert "ce" in printed and "uniform" in printed and "7.5 % error" in printed
    assert "verdict: no reference to compare with" in printed and not ref.exists()
    assert (runs / "ce-seed0.json").read_bytes() == ce_bytes
    res = json.loads(out.read_text())
    inv = res["invocation"]
    assert inv["status"] == "complete" and inv["skipped"] == [["ce", 0]] and inv["trained"] == [["uniform", 0]]
    assert res["schema"] == "lsbench/pets-results/1" and res["profile"] == "frozen"
    assert res["claim"]["label_smoothing"]["error"] == 0.075
    # the whole configuration is recorded, with the command line's overrides in it
    cfg = res["experiment_config"]
    assert (cfg["train"]["epochs"], cfg["seeds"], cfg["recipes"], cfg["data"]["per_class_limit"]) == (
        1, [0], ["ce", "uniform"], 1)
    assert res["config"]["settings"]["train"] == cfg["train"] and "seeds" not in res["config"]["settings"]
    assert [(r["name"], r["seed"]) for r in res["runs"]] == [("ce", 0), ("uniform", 0)]
    for r in res["runs"]:
        t = r["test"]
        assert t["n"] == 37 and 0 <= t["error"] <= 1 and t["nll"] > 0 and 0 <= t["ece"] <= 1
        assert math.isfinite(t["ece_ts"]) and r["temperature"] > 0 and r["split"]["n_heldout"] == 4
        assert sum(t["reliability"]["count"]) == 37 and len(t["reliability"]["accuracy"]) == 15
        assert r["code_sha256"] == code_sha256("pets")
    assert set(res["aggregates"]) == {"ce", "uniform"}
    assert res["aggregates"]["uniform"]["paired_vs_ce"]["error"]["seeds"] == [0]
    p = res["provenance"]
    assert p["packages"]["jax"] and p["jax"]["backend"] == "cpu" and p["git"]["commit"]
    assert p["files"]["annotations/trainval.txt"]["sha256"] and p["files"]["weights"]["sha256"]
    assert res["config"]["train"]["epochs"] == 1 and res["config"]["data"]["per_class_limit"] == 1
    assert res["config"]["backbone"]["weights_sha256"] == p["files"]["weights"]["sha256"]

    # 3. --force: both redone with identical metrics (CPU determinism); nothing to archive
    before = {n: _metrics(runs / f"{n}-seed0.json") for n in ("ce", "uniform")}
    assert main(argv("--force")) == 0
    after = {n: _metrics(runs / f"{n}-seed0.json") for n in ("ce", "uniform")}
    assert after == before
    assert json.loads(out.read_text())["invocation"]["trained"] == [["ce", 0], ["uniform", 0]]
    assert not (runs / "replaced").exists()

    # 4. a configuration mismatch stops before anything is changed
    snapshot = {f.name: f.read_bytes() for f in runs.iterdir()}
    results_before = out.read_bytes()
    capsys.readouterr()
    assert main(argv("--epsilon", "0.2")) == 2
    assert "different configuration" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in runs.iterdir()} == snapshot and out.read_bytes() == results_before

    # 5. a record made by other code is retrained, not reused (the old one is kept under replaced/)
    stale = json.loads((runs / "ce-seed0.json").read_text())
    monkeypatch.setattr(pets_run.workdir, "code_sha256", lambda name: "0" * 64)
    assert main(argv("--recipes", "ce")) == 0
    monkeypatch.undo()
    assert json.loads((runs / "ce-seed0.json").read_text())["code_sha256"] == "0" * 64
    assert main(argv()) == 0
    inv = json.loads(out.read_text())["invocation"]
    assert inv["trained"] == [["ce", 0]] and inv["skipped"] == [["uniform", 0]]
    assert json.loads((runs / "ce-seed0.json").read_text())["test"] == stale["test"]
    assert len(list((runs / "replaced").glob("ce-seed0-*.json"))) == 2


def test_workdir_compare_record_check_and_paper(tmp_path, cache_dir, tiny_data, monkeypatch, capsys):
    """runs → work directory → comparison with the reference → --record → results file → paper table."""
    work, ref = tmp_path / "work", tmp_path / "results" / "pets-frozen.json"
    argv = lambda *extra: _argv(work, ref, cache_dir, tiny_data, "--seeds", "0", "1", *extra)  # noqa: E731

    # --record refuses a dirty tree before training anything, and says to commit first
    monkeypatch.setattr(prov, "git_info", lambda *a, **k: {"commit": "a" * 40, "dirty": True, "describe": None})
    monkeypatch.setattr(prov, "dirty_paths", lambda *a, **k: ["lsbench/train.py"])
    assert main(argv("--record")) == 2
    err = capsys.readouterr().err
    assert "commit first" in err and "lsbench/train.py" in err and "--allow-dirty" in err
    assert not ref.exists() and not (work / "runs").exists()
    monkeypatch.undo()

    # --record --allow-dirty: trains into the work directory and writes the reference
    assert main(argv("--record", "--allow-dirty")) == 0
    text = ref.read_text()
    res = json.loads(text)
    assert sorted(p.name for p in (ref.parent / "runs" / "pets-frozen").iterdir()) == [
        "ce-seed0.json", "ce-seed1.json", "uniform-seed0.json", "uniform-seed1.json"]
    assert res["runs_dir"] == "runs/pets-frozen" and res["code_sha256"] == code_sha256("pets")
    # no absolute path, no host name anywhere in what was written
    for path in [ref, *(ref.parent / "runs" / "pets-frozen").iterdir(), work / "comparison.json"]:
        body = path.read_text()
        assert prov.find_absolute_paths(json.loads(body)) == [], path
        assert str(tmp_path) not in body and str(tiny_data) not in body and socket.gethostname() not in body

    # a plain rerun compares with the reference: bit-identical; --check passes
    capsys.readouterr()
    assert main(argv("--check")) == 0
    printed = capsys.readouterr().out
    assert "verdict: 4/4 runs bit-identical to the reference recorded on" in printed
    cmp = json.loads((work / "comparison.json").read_text())
    assert cmp["counts"]["bit-identical"] == 4 and (work / "comparison.txt").read_text().strip().endswith(
        cmp["verdict"])

    # a reference that disagrees beyond tolerance: reported, and --check makes it exit 1
    bumped = json.loads(text)
    for r in bumped["runs"]:  # a shift of every run keeps the reference's spread over seeds (~0.06 nats)
        r["test"]["nll"] += 1.0
    ref.write_text(json.dumps(bumped))
    assert main(argv()) == 0
    assert main(argv("--check")) == 1
    cmp = json.loads((work / "comparison.json").read_text())
    assert cmp["counts"] == {"bit-identical": 0, "within tolerance": 0, "different": 4, "config differs": 0,
                             "no reference": 0}
    assert cmp["largest_difference"]["nll"]["difference"] == pytest.approx(-1.0)
    assert all(r["beyond_tolerance"] == ["nll"] for r in cmp["runs"])
    # a reference with another configuration is reported as such, not compared as if equal
    bumped["config"]["train"]["lr"] = 1.0
    ref.write_text(json.dumps(bumped))
    assert main(argv("--check")) == 1
    cmp = json.loads((work / "comparison.json").read_text())
    assert cmp["counts"]["config differs"] == 4 and "train.lr" in cmp["config_differs"]
    ref.write_text(text)

    # the paper table is built from the recorded reference
    assert main(["paper", "--results-dir", str(ref.parent), "--out-dir", str(tmp_path / "paper"),
                 "--no-figures", "--quiet"]) == 0
    table = (tmp_path / "paper" / "tables" / "pets-frozen.md").read_text()
    mean = res["aggregates"]["ce"]["metrics"]["error"]["mean"] * 100
    assert f"{mean:.2f}" in table


def test_sigterm_is_an_interrupt_and_the_lock_refuses_a_second_run(tmp_path, cache_dir, tiny_data, monkeypatch,
                                                                   capsys):
    work, ref = tmp_path / "work", tmp_path / "ref.json"
    argv = lambda *extra: _argv(work, ref, cache_dir, tiny_data, *extra)  # noqa: E731
    real = Experiment.train_one
    calls = []

    def term_second(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *a, **k)

    monkeypatch.setattr(Experiment, "train_one", term_second)
    assert main(argv()) == 130
    monkeypatch.undo()
    assert json.loads((work / "ref.json").read_text())["invocation"]["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and not (work / ".lock").exists()

    # a live process holding the lock: the second run exits 2 naming its pid, and changes nothing
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (work / ".lock").write_text(f"{holder.pid}\n")
        capsys.readouterr()
        assert main(argv()) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert json.loads((work / "ref.json").read_text())["invocation"]["status"] == "interrupted"
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and taken over
    assert main(argv()) == 0 and not (work / ".lock").exists()


def test_unwritable_workdir_and_disk_full_are_clear_errors(tmp_path, cache_dir, tiny_data, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(_argv(blocker / "work", tmp_path / "ref.json", cache_dir, tiny_data)) == 2
    assert "cannot write" in capsys.readouterr().err

    work = tmp_path / "work"
    assert main(_argv(work, tmp_path / "ref.json", cache_dir, tiny_data, "--recipes", "ce")) == 0
    kept = (work / "runs" / "ce-seed0.json").read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prov, "atomic_write_json", full)
    capsys.readouterr()
    assert main(_argv(work, tmp_path / "ref.json", cache_dir, tiny_data, "--force")) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "intact" in err and "Traceback" not in err
    monkeypatch.undo()
    assert (work / "runs" / "ce-seed0.json").read_bytes() == kept and not (work / ".lock").exists()


# --------------------------------------------------------------------------- fastai profile smoke test


def _random_torchvision_resnet34(path):
    """A torchvision-layout ResNet-34 state dict with random weights, saved as .safetensors."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    sd = {}

    def conv(name, cout, cin, k):
        sd[f"{name}.weight"] = (rng.normal(size=(cout, cin, k, k)) * math.sqrt(2 / (cin * k * k))).astype(np.float32)

    def bn(name, c):
        sd[f"{name}.weight"] = np.ones(c, np.float32)
        sd[f"{name}.bias"] = np.zeros(c, np.float32)
        sd[f"{name}.running_mean"] = np.zeros(c, np.float32)
        sd[f"{name}.running_var"] = np.ones(c, np.float32)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for i, (n, cout) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for j in range(n):
            stride = 2 if (j == 0 and i > 1) else 1
            p = f"layer{i}.{j}"
            conv(f"{p}.conv1", cout, cin, 3)
            bn(f"{p}.bn1", cout)
            conv(f"{p}.conv2", cout, cout, 3)
            bn(f"{p}.bn2", cout)
            if stride != 1 or cin != cout:
                conv(f"{p}.downsample.0", cout, cin, 1)
                bn(f"{p}.downsample.1", cout)
            cin = cout
    sd["fc.weight"] = (rng.normal(size=(1000, 512)) * 0.01).astype(np.float32)
    sd["fc.bias"] = np.zeros(1000, np.float32)
    save_file(sd, str(path))
    return path


@pytest.mark.slow  # compiling a ResNet-34 training step takes ~30 s on 2 CPU cores
@needs_data
def test_fastai_profile_smoke(tmp_path, cache_dir):
    weights = _random_torchvision_resnet34(tmp_path / "resnet34-random.safetensors")
    out = tmp_path / "pets-fastai.json"
    argv = ["reproduce", "pets", "--profile", "fastai", "--weights", str(weights), "--data-dir", str(DATA),
            "--per-class-limit", "1", "--image-size", "32", "--seeds", "0", "--epochs", "1",
            "--recipes", "uniform", "--out", str(out), "--workdir", str(tmp_path / "work"),
            "--cache-dir", str(cache_dir), "--no-progress"]
    assert main(argv) == 0
    res = json.loads((tmp_path / "work" / out.name).read_text())
    assert res["profile"] == "fastai" and res["config"]["backbone"]["name"] == "resnet34"
    assert res["config"]["backbone"]["frozen"] is True and res["config"]["backbone"]["augmentation"]
    run = res["runs"][0]
    assert run["test"]["n"] == 37 and math.isfinite(run["test"]["nll"]) and run["train_log"][0]["steps"] == 1
    assert res["provenance"]["files"]["weights"]["sha256"] == res["config"]["backbone"]["weights_sha256"]
