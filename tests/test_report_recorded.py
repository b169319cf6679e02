"""Tests for ``lsbench.report.recorded`` (checks shared by the pets and Müller report parsers)."""

from pathlib import Path

import pytest

from lsbench.report.recorded import entries, recording_status
from lsbench.report.results import ResultFile, ResultsError


def _rf(data):
    return ResultFile(Path("paper/results/x.json"), "0" * 8, data)


def test_entries_give_name_entry_and_json_path():
    rf = _rf({"aggregates": {"ce": {"seeds": [0]}}, "runs": [{"name": "ce"}, {"name": "uniform"}]})
    assert list(entries(rf, rf.data, "aggregates")) == [("ce", {"seeds": [0]}, "aggregates.ce")]
    assert [w for _, _, w in entries(rf, rf.data, "runs", list)] == ["runs[0]", "runs[1]"]


def test_entries_name_the_bad_entry():
    rf = _rf({"runs": [{"name": "ce"}, 3], "datasets": []})
    with pytest.raises(ResultsError, match=r"runs\[1\]: expected an object, found int"):
        list(entries(rf, rf.data, "runs", list))
    with pytest.raises(ResultsError, match="datasets: expected"):
        list(entries(rf, rf.data, "datasets"))
    with pytest.raises(ResultsError, match="missing key 'aggregates'"):
        list(entries(rf, rf.data, "aggregates"))


def test_recording_status():
    assert recording_status(_rf({"invocation": {"status": "interrupted"}})) == "interrupted"
    assert recording_status(_rf({"invocation": None})) is None
    assert recording_status(_rf({"invocation": {"status": 3}})) is None
    assert recording_status(_rf({})) is None
