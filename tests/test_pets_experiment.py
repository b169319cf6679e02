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


def test_mirror_batch_flips_half_the_rows_per_seed_and_keeps_the_batch():
    from lsbench.experiments.pets.protocol import mirror_batch

    feats = np.arange(200, dtype=np.float32).reshape(100, 2)
    mirrored = -feats
    rows = np.arange(0, 100, 2)
    a = mirror_batch(rows, np.random.default_rng(3), feats, mirrored, 0.5)
    assert a.shape == (50, 2) and np.array_equal(a, mirror_batch(rows, np.random.default_rng(3), feats, mirrored, 0.5))
    flipped = a[:, 1] < 0
    assert np.array_equal(a[flipped], mirrored[rows][flipped]) and np.array_equal(a[~flipped], feats[rows][~flipped])
    assert 15 <= flipped.sum() <= 35  # binomial(50, 0.5): far outside only by a bug
    assert not np.array_equal(a, mirror_batch(rows, np.random.default_rng(4), feats, mirrored, 0.5))
    assert np.array_equal(mirror_batch(rows, np.random.default_rng(3), feats, None, 0.0), feats[rows])
    with pytest.raises(ValueError, match="mirrored"):
        mirror_batch(rows, np.random.default_rng(3), feats, None, 0.5)
    with pytest.raises(ValueError, match="p_flip"):
        mirror_batch(rows, np.random.default_rng(3), feats, mirrored, 1.5)


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
    assert list(pets.RUN_SPECS) == ["ce", "uniform", "uniform_eps0.05", "uniform_eps0.2", "uniform_eps0.3",
                                    "off_target", "fastai", "tf_onehot", "speech_transformer",
                                    "fastreid_adaptive", "self_correction"]
    assert pets.RUN_SPECS["uniform_eps0.3"].loss_params(0.1) == {"epsilon": 0.3}
    assert sorted(pets.EPSILON_SWEEP.values()) == [0.05, 0.1, 0.2, 0.3]
    assert pets.PROVED_IDENTICAL == {"fastai": "uniform"}
    assert pets.RUN_SPECS["ce"].loss_params(0.3) == {"epsilon": 0.0}
    assert pets.RUN_SPECS["uniform"].loss_params(0.3) == {"epsilon": 0.3}
    assert pets.RUN_SPECS["fastreid_adaptive"].loss_params(0.3) == {"alpha": 0.2, "epsilon": -1.0}


def test_the_default_experiment_does_not_depend_on_the_hardware(monkeypatch):
    import argparse

    import jax

    from lsbench.experiments.pets import config, flags

    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    on_cpu = parser.parse_args([])
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    on_gpu = parser.parse_args([])
    assert vars(on_cpu) == vars(on_gpu) and on_cpu.profile == "frozen"
    cfg = config.from_args(on_gpu, flags.validate(on_gpu))
    assert cfg == config.get_config() and len(cfg.seeds) >= 10 and cfg.splits == ("official", "fastai")
    # pets-frozen.json is Lite2 at its native 260 px; Lite0 gets its own file
    assert cfg.backbone == "lite2" and cfg.data.image_size == 260
    assert flags.default_out("frozen").name == "pets-frozen.json"
    assert flags.default_out("frozen", backbone="lite2").name == "pets-frozen.json"
    assert flags.default_out("frozen", backbone="lite0").name == "pets-frozen-lite0.json"
    assert flags.default_out("fastai", 3, "lite0").name == "pets-fastai-lite0-limit3.json"


def test_random_split_is_fastai_like_and_seeded():
    train, valid = pets.random_split(7349, seed=0)
    assert len(valid) == round(0.2 * 7349) and len(train) + len(valid) == 7349
    assert not set(train) & set(valid) and np.all(np.diff(train) > 0)
    assert not np.all(np.diff(valid) > 0)  # drawn order kept (the bootstrap resamples positions)
    np.testing.assert_array_equal(valid, pets.random_split(7349, seed=0)[1])
    assert len(set(valid) & set(pets.random_split(7349, seed=1)[1])) < 0.3 * len(valid)  # redrawn per seed


def test_cross_fit_temperature_uses_the_other_half():
    from lsbench import metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    z = 3.0 * np.eye(5)[y] + rng.normal(size=(400, 5))
    z[:200] *= 4.0  # the two halves would want different temperatures if fitted on themselves
    t, (t_a, t_b) = pets.cross_fit_temperature(z, y, seed=0)
    assert set(np.unique(t)) == {t_a, t_b} and t_a != t_b
    # an example's temperature is the one fitted on the half it is not in
    half_b = t == t_a
    assert metrics.fit_temperature(z[half_b], y[half_b]) == pytest.approx(t_b)


def test_example_outputs_give_back_the_metrics():
    from lsbench import metrics

    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, 300)
    z = 2.0 * np.eye(7)[y] + rng.normal(size=(300, 7))
    test, temps, out = pets.evaluate_run(z, y, seed=0, n_bins=15)
    assert {k: v.dtype for k, v in out.items()} == {k: np.dtype(v) for k, v in pets.OUTPUT_FIELDS.items()}
    assert np.mean(out["pred"] != out["label"]) == pytest.approx(test["error"])
    p = out["p_true"].astype(np.float64)
    assert np.mean(-np.log(p)) == pytest.approx(test["nll"], rel=2e-3)
    assert np.mean(1 - 2 * p + out["sum_sq"]) == pytest.approx(test["brier"], abs=2e-3)
    probs = metrics.softmax(z)
    assert metrics.ece(probs, y) == pytest.approx(test["ece"])
    assert test["temperature"] == pytest.approx(math.sqrt(temps[0] * temps[1]))


@pytest.mark.parametrize("argv", [["--recipes", "nope"], ["--epsilon", "1.5"], ["--seeds", "-1"],
                                  ["--epochs", "0"], ["--per-class-limit", "0"], ["--p-flip", "2"], ["--image-size", "8"]])
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
            "--seeds", "0", "--epochs", "1", "--recipes", "ce", "uniform", "--splits", "official", "--workdir", str(work),
            "--out", str(ref), "--cache-dir", str(cache), "--no-progress", *extra]


def _metrics(path):
    rec = json.loads(Path(path).read_text())
    return rec["test"], rec["temperature"], rec["train_log"][0]["loss"]


def test_end_to_end_interrupt_resume_force_and_mismatch(tmp_path, cache_dir, tiny_data, monkeypatch, capsys):
    work, ref = tmp_path / "work", tmp_path / "results" / "pets-frozen.json"
    out, runs = work / "pets-frozen.json", work / "runs"
    argv = lambda *extra: _argv(work, ref, cache_dir, tiny_data, *extra)  # noqa: E731

    # 1. interrupted after the first run: that run is recorded, the second is lost, status says so
    real = Experiment.train_group
    calls = []

    def interrupt_second(self, *a, **k):
        calls.append(a[0].name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Experiment, "train_group", interrupt_second)
    assert main(argv()) == 130
    monkeypatch.setattr(Experiment, "train_group", real)
    assert (runs / "ce-official-seed0.json").is_file() and not (runs / "uniform-official-seed0.json").exists()
    partial = json.loads(out.read_text())
    assert partial["invocation"]["status"] == "interrupted" and [r["name"] for r in partial["runs"]] == ["ce"]
    assert not (work / ".lock").exists()
    ce_bytes = (runs / "ce-official-seed0.json").read_bytes()

    # 2. rerun: ce is skipped (its record untouched), uniform is trained, a valid results file is written
    capsys.readouterr()
    assert main(argv()) == 0
    printed = capsys.readouterr().out
    assert "ce" in printed and "uniform" in printed and "7.5 % error" in printed
    assert "verdict: no reference to compare with" in printed and not ref.exists()
    assert (runs / "ce-official-seed0.json").read_bytes() == ce_bytes
    res = json.loads(out.read_text())
    inv = res["invocation"]
    assert inv["status"] == "complete" and inv["skipped"] == [["ce", "official", 0]]
    assert inv["trained"] == [["uniform", "official", 0]]
    assert res["schema"] == "lsbench/pets-results/2" and res["profile"] == "frozen"
    assert res["claim"]["label_smoothing"]["error"] == 0.075
    # the whole configuration is recorded, with the command line's overrides in it
    cfg = res["experiment_config"]
    assert (cfg["train"]["epochs"], cfg["seeds"], cfg["recipes"], cfg["data"]["per_class_limit"], cfg["splits"]) == (
        1, [0], ["ce", "uniform"], 1, ["official"])
    assert res["config"]["settings"]["train"] == cfg["train"] and "seeds" not in res["config"]["settings"]
    assert [(r["name"], r["seed"]) for r in res["runs"]] == [("ce", 0), ("uniform", 0)]
    for r in res["runs"]:
        t = r["test"]
        assert t["n"] == 37 and 0 <= t["error"] <= 1 and t["nll"] > 0 and 0 <= t["ece"] <= 1
        assert math.isfinite(t["ece_ts"]) and r["temperature"] > 0 and r["split"]["n_train"] == 37
        assert r["split"]["n_report"] == 37 and r["split_name"] == "official"
        with np.load(runs / r["outputs"]) as z:
            assert len(z["pred"]) == 37 and z["conf"].dtype == np.float16
        assert sum(t["reliability"]["count"]) == 37 and len(t["reliability"]["accuracy"]) == 15
        assert r["code_sha256"] == code_sha256("pets")
    assert set(res["aggregates"]) == {"official"} and set(res["aggregates"]["official"]) == {"ce", "uniform"}
    assert res["aggregates"]["official"]["uniform"]["paired_vs_ce"]["error"]["seeds"] == [0]
    st = res["statistics"]["by_split"]["official"]["uniform"]
    assert set(st) == {"error", "nll", "brier", "ece", "ece_ts"} and st["error"]["n_images"] == 37
    assert st["error"]["verdict"] in ("better", "worse", "equivalent", "inconclusive")
    p = res["provenance"]
    assert p["packages"]["jax"] and p["jax"]["backend"] == "cpu" and p["git"]["commit"]
    assert p["files"]["annotations/trainval.txt"]["sha256"] and p["files"]["weights"]["sha256"]
    assert res["config"]["train"]["epochs"] == 1 and res["config"]["data"]["per_class_limit"] == 1
    assert res["config"]["backbone"]["weights_sha256"] == p["files"]["weights"]["sha256"]
    # flip augmentation: the mirrored images' features are cached beside the originals and keyed
    assert res["config"]["backbone"]["name"] == "efficientnet-lite2" and res["config"]["data"]["image_size"] == 32
    assert res["config"]["backbone"]["augmentation"]["flip"] == 0.5
    keys = res["config"]["data"]["trainval"]["features_keys"]
    assert set(keys) == {"features", "mirrored"} and keys["features"] != keys["mirrored"]
    for split in ("trainval", "test"):
        assert len(list((cache_dir / "features").glob(f"pets-lite2-mirrored-{split}-*.npz"))) == 1
    assert set(p["inputs_sha256"]) == {"features/trainval", "features/test", "mirrored/trainval", "mirrored/test"}

    # 3. --force: both redone with identical metrics (CPU determinism); nothing to archive
    before = {n: _metrics(runs / f"{n}-official-seed0.json") for n in ("ce", "uniform")}
    assert main(argv("--force")) == 0
    after = {n: _metrics(runs / f"{n}-official-seed0.json") for n in ("ce", "uniform")}
    assert after == before
    assert json.loads(out.read_text())["invocation"]["trained"] == [["ce", "official", 0], ["uniform", "official", 0]]
    assert not (runs / "replaced").exists()

    # 4. a configuration mismatch stops before anything is changed
    snapshot = {f.name: f.read_bytes() for f in runs.iterdir()}
    results_before = out.read_bytes()
    capsys.readouterr()
    for changed in (("--epsilon", "0.2"), ("--p-flip", "0")):
        assert main(argv(*changed)) == 2, changed
        assert "different configuration" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in runs.iterdir()} == snapshot and out.read_bytes() == results_before

    # 5. a record made by other code is retrained, not reused (the old one is kept under replaced/)
    stale = json.loads((runs / "ce-official-seed0.json").read_text())
    monkeypatch.setattr(pets_run.workdir, "code_sha256", lambda name: "0" * 64)
    assert main(argv("--recipes", "ce")) == 0
    monkeypatch.undo()
    assert json.loads((runs / "ce-official-seed0.json").read_text())["code_sha256"] == "0" * 64
    assert main(argv()) == 0
    inv = json.loads(out.read_text())["invocation"]
    assert inv["trained"] == [["ce", "official", 0]] and inv["skipped"] == [["uniform", "official", 0]]
    assert json.loads((runs / "ce-official-seed0.json").read_text())["test"] == stale["test"]
    assert len(list((runs / "replaced").glob("ce-official-seed0-*.json"))) == 2


def test_workdir_compare_record_check_and_paper(tmp_path, cache_dir, tiny_data, monkeypatch, capsys):
    """runs → work directory → comparison with the reference → --record → results file → paper table."""
    work, ref = tmp_path / "work", tmp_path / "results" / "pets-frozen.json"
    argv = lambda *extra: _argv(work, ref, cache_dir, tiny_data, "--seeds", "0", "1", "--splits", "official",  # noqa: E731
                                "fastai", "--recipes", "ce", "fastai", *extra)

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
    assert sorted(p.name for p in (ref.parent / "runs" / "pets-frozen").iterdir()) == sorted(
        f"{n}-{split}-seed{s}.{ext}" for n in ("ce", "fastai") for split in ("official", "fastai") for s in (0, 1)
        for ext in ("json", "npz"))
    assert res["splits"] == ["official", "fastai"]
    # the fastai split reports on a random 20 % of all 74 images, redrawn per seed
    fastai_runs = [r for r in res["runs"] if r["split_name"] == "fastai"]
    assert {r["split"]["n_report"] for r in fastai_runs} == {15} and {r["split"]["n_train"] for r in fastai_runs} == {59}
    assert len({r["split"]["report_digest"] for r in fastai_runs}) == 2
    assert res["runs_dir"] == "runs/pets-frozen" and res["code_sha256"] == code_sha256("pets")
    # no absolute path, no host name anywhere in what was written
    for path in [ref, *(ref.parent / "runs" / "pets-frozen").glob("*.json"), work / "comparison.json"]:
        body = path.read_text()
        assert prov.find_absolute_paths(json.loads(body)) == [], path
        assert str(tmp_path) not in body and str(tiny_data) not in body and socket.gethostname() not in body

    # a plain rerun compares with the reference: bit-identical; --check passes
    capsys.readouterr()
    assert main(argv("--check")) == 0
    printed = capsys.readouterr().out
    assert "verdict: 8/8 runs bit-identical to the reference recorded on" in printed
    cmp = json.loads((work / "comparison.json").read_text())
    assert cmp["counts"]["bit-identical"] == 8 and (work / "comparison.txt").read_text().strip().endswith(
        cmp["verdict"])

    # a reference that disagrees beyond tolerance: reported, and --check makes it exit 1
    bumped = json.loads(text)
    for r in bumped["runs"]:  # a shift of every run keeps the reference's spread over seeds (~0.06 nats)
        r["test"]["nll"] += 1.0
    ref.write_text(json.dumps(bumped))
    assert main(argv()) == 0
    assert main(argv("--check")) == 1
    cmp = json.loads((work / "comparison.json").read_text())
    assert cmp["counts"] == {"bit-identical": 0, "within tolerance": 0, "different": 8, "config differs": 0,
                             "no reference": 0}
    assert cmp["largest_difference"]["nll"]["difference"] == pytest.approx(-1.0)
    assert all(r["beyond_tolerance"] == ["nll"] for r in cmp["runs"])
    # a reference with another configuration is reported as such, not compared as if equal
    bumped["config"]["train"]["lr"] = 1.0
    ref.write_text(json.dumps(bumped))
    assert main(argv("--check")) == 1
    cmp = json.loads((work / "comparison.json").read_text())
    assert cmp["counts"]["config differs"] == 8 and "train.lr" in cmp["config_differs"]
    ref.write_text(text)

    # the paper table is built from the recorded reference
    assert main(["paper", "--results-dir", str(ref.parent), "--out-dir", str(tmp_path / "paper"),
                 "--no-figures", "--quiet"]) == 0
    table = (tmp_path / "paper" / "tables" / "pets-frozen.md").read_text()
    mean = res["aggregates"]["official"]["ce"]["metrics"]["error"]["mean"] * 100
    assert f"{mean:.2f}" in table


def test_sigterm_is_an_interrupt_and_the_lock_refuses_a_second_run(tmp_path, cache_dir, tiny_data, monkeypatch,
                                                                   capsys):
    work, ref = tmp_path / "work", tmp_path / "ref.json"
    argv = lambda *extra: _argv(work, ref, cache_dir, tiny_data, *extra)  # noqa: E731
    real = Experiment.train_group
    calls = []

    def term_second(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *a, **k)

    monkeypatch.setattr(Experiment, "train_group", term_second)
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
    kept = (work / "runs" / "ce-official-seed0.json").read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prov, "atomic_write_json", full)
    capsys.readouterr()
    assert main(_argv(work, tmp_path / "ref.json", cache_dir, tiny_data, "--force")) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "intact" in err and "Traceback" not in err
    monkeypatch.undo()
    assert (work / "runs" / "ce-official-seed0.json").read_bytes() == kept and not (work / ".lock").exists()


# --------------------------------------------------------------------------- fastai profile smoke test


def test_fastai_profile_smoke(tmp_path, cache_dir, tiny_data, monkeypatch):
    """The faithful recipe on the Lite backbone at tiny scale (1 seed, 37 images of 32 px, 2 steps; about
    25 s on 2 quiet cores, compiling the training step is most of it): the real code path, with the
    body's BatchNorm and the head trained (fastai_trainable), the convolutions frozen, the images
    augmented every step and the one-cycle schedule run to its end."""
    import jax
    from flax import nnx

    import lsbench.train
    from lsbench.models.efficientnet_lite import load_efficientnet_lite

    trained, augmented = [], []
    real_fit_seeds, real_augment = lsbench.train.fit_seeds, pets_run.augment_batch

    def spy_fit_seeds(*a, **k):
        out = real_fit_seeds(*a, **k)
        trained.extend(model for model, _ in out)
        return out

    def spy_augment(images, *a, **k):
        augmented.append(images.shape)
        return real_augment(images, *a, **k)

    monkeypatch.setattr(lsbench.train, "fit_seeds", spy_fit_seeds)
    monkeypatch.setattr(pets_run, "augment_batch", spy_augment)
    out = tmp_path / "pets-fastai.json"
    argv = ["reproduce", "pets", "--profile", "fastai", "--backbone", "lite0", "--data-dir", str(tiny_data),
            "--per-class-limit", "1", "--image-size", "32", "--seeds", "0", "--epochs", "1", "--recipes", "uniform",
            "--splits", "official", "--batch-size", "16", "--out", str(out), "--workdir", str(tmp_path / "work"),
            "--cache-dir", str(cache_dir), "--no-progress"]
    assert main(argv) == 0
    res = json.loads((tmp_path / "work" / out.name).read_text())
    assert res["profile"] == "fastai" and res["config"]["backbone"]["name"] == "efficientnet-lite0"
    assert res["config"]["backbone"]["frozen"] is True and res["config"]["backbone"]["augmentation"]["flip"] == 0.5
    assert "BN affine trained" in res["config"]["backbone"]["bn_mode"]
    run = res["runs"][0]
    assert run["test"]["n"] == 37 and math.isfinite(run["test"]["nll"]) and run["train_log"][0]["steps"] == 2
    # one cycle: the last step's learning rate is the schedule's, below the peak
    from lsbench.experiments.pets.config import get_config
    from lsbench.experiments.settings import replace
    from lsbench.train import one_cycle_schedules

    train_cfg = replace(replace(get_config("fastai").train, "epochs", 1), "batch_size", 16)
    lr_schedule, _ = one_cycle_schedules(train_cfg, 2)
    assert run["train_log"][0]["lr"] == pytest.approx(float(lr_schedule(1))) and run["train_log"][0]["lr"] < train_cfg.lr
    assert res["provenance"]["files"]["weights"]["sha256"] == res["config"]["backbone"]["weights_sha256"]
    # every training batch went through the augmentation (2 steps of 16 at 32 px)
    assert augmented == [(16, 32, 32, 3)] * 2
    # the body's BatchNorm affine moved from the ImageNet weights, its convolutions did not
    (model,) = trained
    pretrained = nnx.state(load_efficientnet_lite("lite0"), nnx.Param)
    after = nnx.state(model.body, nnx.Param)
    flat_before, flat_after = dict(nnx.to_flat_state(pretrained)), dict(nnx.to_flat_state(after))
    changed = {p for p in flat_before if not np.array_equal(np.asarray(flat_before[p][...]),
                                                          np.asarray(flat_after[p][...]))}
    assert changed and all("bn" in p for p in changed), sorted(changed)[:5]
    assert not any("kernel" in p for p in changed)
    assert jax.tree_util.tree_leaves(nnx.state(model.head, nnx.Param))


def test_fastai_profile_trains_the_head_and_the_body_batchnorm_only():
    from flax import nnx

    from lsbench.experiments.pets.model import pets_net
    from lsbench.models import FastaiHead
    from lsbench.models.efficientnet_lite import EfficientNetLite, preprocess
    from lsbench.models.finetune import fastai_trainable

    net = pets_net(EfficientNetLite("lite0", rngs=nnx.Rngs(0)), FastaiHead(2560, 37, rngs=nnx.Rngs(1)), "maxavg",
                   preprocess)
    _, trainable, frozen = nnx.split(net, fastai_trainable(net), ...)
    paths = [tuple(str(k) for k in p) for p, _ in nnx.to_flat_state(trainable)]
    frozen_paths = [tuple(str(k) for k in p) for p, _ in nnx.to_flat_state(frozen)]
    assert paths and all(p[0] == "head" or "bn" in p for p in paths)
    assert any(p[0] == "body" and "bn" in p for p in paths) and any(p[0] == "head" for p in paths)
    # the body's convolutions (its own classifier conv "head" included) stay frozen
    assert ("body", "head", "kernel") in frozen_paths and ("body", "stem", "kernel") in frozen_paths
