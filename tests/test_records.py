"""Tests for ``lsbench.experiments.records`` (the run records pets and Müller share)."""

import json

import pytest

from lsbench.experiments import records


def _rec(key="k1", error=0.1):
    return {"run_key": key, "test": {"error": error, "reliability": {"count": [1]}}, "config": {"a": 1, "b": 2}}


def test_read_record_is_none_for_missing_broken_or_non_object(tmp_path):
    assert records.read_record(tmp_path / "nope.json") is None
    (tmp_path / "broken.json").write_text("{not json")
    assert records.read_record(tmp_path / "broken.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert records.read_record(tmp_path / "list.json") is None
    (tmp_path / "ok.json").write_text(json.dumps(_rec()))
    assert records.read_record(tmp_path / "ok.json") == _rec()


def test_save_record_keeps_a_differing_old_record(tmp_path):
    path, logs = tmp_path / "runs" / "ce-seed0.json", []
    records.save_record(path, _rec(), logs.append)
    assert records.read_record(path) == _rec() and not logs
    # same key, same metrics (bins aside): overwritten in place, nothing kept
    same = _rec()
    same["test"]["reliability"] = {"count": [2]}
    records.save_record(path, same, logs.append)
    assert not (path.parent / "replaced").exists() and not logs
    # another key: the old record is copied to replaced/ first
    records.save_record(path, _rec("k2"), logs.append)
    kept = list((path.parent / "replaced").glob("ce-seed0-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["run_key"] == "k1"
    assert records.read_record(path)["run_key"] == "k2" and "kept as" in logs[0]


def test_describe_mismatch_names_what_differs():
    rec = _rec()
    assert records.describe_mismatch(rec, {"a": 1, "b": 2}) == "different run_key"
    assert records.describe_mismatch(rec, {"a": 1, "b": 3}) == "config['b'] differs"
    msg = records.describe_mismatch({**rec, "loss": {"recipe": "uniform"}}, {"a": 1, "b": 2}, {"recipe": "fastai"})
    assert "loss" in msg and "fastai" in msg
    assert records.strip_bins(rec["test"]) == {"error": 0.1} and records.strip_bins(None) is None


def test_aggregation_helpers_pair_on_shared_seeds():
    runs = [{"seed": 0, "x": 1.0}, {"seed": 1, "x": 3.0}]
    vals = records.seed_values(runs, lambda r: r["x"])
    assert vals == {0: 1.0, 1: 3.0}
    assert records.summary(vals)["mean"] == pytest.approx(2.0) and records.summary({}) is None
    diff = records.paired(vals, {0: 0.5, 1: 1.0, 2: 9.0})
    assert diff["mean"] == pytest.approx(1.25) and diff["seeds"] == [0, 1]
    assert records.paired({}, vals) is None


def test_terminal_formatting():
    assert records.fmt_pm(None) == "-"
    assert records.fmt_pm({"mean": 0.1, "ci": 0.02}, 100, 1, sign=True) == "+10.0 ± 2.0"
    table = records.text_table(("a", "long header"), [("xyz", "1")]).splitlines()
    assert table[0] == "a    long header" and table[1] == "---  -----------" and table[2] == "xyz  1          "
