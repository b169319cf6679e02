"""``python -m lsbench paper`` marks what was recorded from a dirty tree (issue 13).

A table or figure caption citing a results file whose git provenance, or that of one of its
runs, says ``dirty: true`` carries "(recorded from a dirty tree at commit X)"; a clean one
carries nothing. The synthetic results are :mod:`test_report`'s.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lsbench.report import build
from lsbench.report.results import dirty_commits, discover, read_json
from lsbench.report.tables import cite, short_hash
from test_report import PAPER, results_dir  # noqa: F401  (the synthetic results, a pytest fixture)


def _set_dirty(path: Path, commit: str, run: int | None = None) -> None:
    """Mark ``path`` (or its run ``run``) as recorded from a dirty tree at ``commit``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if run is None:
        data["provenance"] = {"git": {"commit": commit, "dirty": True, "describe": commit[:7] + "-dirty"}}
    else:
        data["runs"][run]["provenance"] = {"git_commit": commit, "git_dirty": True}
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_dirty_recording_marks_its_captions_and_a_clean_one_does_not(results_dir, tmp_path):
    dirty = tmp_path / "results"
    shutil.copytree(results_dir, dirty)
    _set_dirty(dirty / "pets-frozen.json", "abcdef1" + "0" * 33)
    _set_dirty(dirty / "muller-calibration.json", "1234567" + "0" * 33)
    data = json.loads((dirty / "muller-distillation.json").read_text())
    data["runs"] = [{"file": "runs/muller/ce-seed0.json"}, {"file": "runs/muller/absent.json"}]
    (dirty / "muller-distillation.json").write_text(json.dumps(data))
    (dirty / "runs" / "muller").mkdir(parents=True)
    (dirty / "runs" / "muller" / "ce-seed0.json").write_text(json.dumps(
        {"provenance": {"git_commit": "7654321" + "0" * 33, "git_dirty": True}}))
    # a dirty run held in the results file counts too, once per commit
    _set_dirty(dirty / "pets-frozen.json", "abcdef1" + "0" * 33, run=0)
    _set_dirty(dirty / "pets-frozen.json", "fedcba9" + "0" * 33, run=1)
    assert dirty_commits(read_json(dirty / "pets-frozen.json")) == ("abcdef1", "fedcba9")
    build.generate(dirty, tmp_path / "out", figures=False)
    read = lambda p: (tmp_path / "out" / p).read_text()  # noqa: E731
    mark = "(recorded from a dirty tree at commit"
    assert f"{mark}s abcdef1, fedcba9)" in read("tables/pets-frozen.tex")
    assert f"{mark}s abcdef1, fedcba9)._" in read("tables/pets-frozen.md")
    for fig in ("reliability-frozen", "ece-error-frozen"):
        assert f"{mark}s abcdef1, fedcba9)" in read(f"figures/{fig}.tex")
    assert f"muller-calibration.json @ {short_hash(dirty / 'muller-calibration.json')} {mark} 1234567)" \
        in read("tables/muller-calibration.md")
    assert f"{mark} 7654321)" in read("tables/muller-distillation.md")  # from the run record it names
    verdicts = read("tables/muller-verdicts.md")
    assert f"{mark} 1234567)" in verdicts and f"{mark} 7654321)" in verdicts
    assert "muller-representations.json @" in verdicts
    assert verdicts.count(mark) == 2  # the clean representations file is cited unmarked
    # the clean files (proofs, bench, representations) give unmarked captions
    for clean in ("tables/catalogue.tex", "tables/verification.md", "tables/throughput.md",
                  "figures/throughput.tex", "tables/muller-representations.tex", "figures/muller_representations.tex"):
        assert "dirty" not in read(clean), clean
    # the same clean results give the same bytes as before: a clean recording is never marked
    build.generate(results_dir, tmp_path / "clean", figures=False)
    assert not [p for p in (tmp_path / "clean").rglob("*.*") if "dirty tree" in p.read_text()]


def test_cite_marks_only_explicitly_dirty_recordings(tmp_path):
    assert cite([("a.json", "0123")]) == "a.json @ 0123"
    path = tmp_path / "pets-x.json"
    for git, expected in (({"commit": None, "dirty": True}, ("unknown",)), ({"commit": "f" * 40, "dirty": None}, ()),
                          ({"commit": "f" * 40, "dirty": False}, ()), ("not an object", ())):
        path.write_text(json.dumps({"git": git}))
        assert dirty_commits(read_json(path)) == expected, git


def test_committed_captions_mark_exactly_the_dirty_committed_results():
    """A committed table or figure citing a results file recorded from a dirty tree says so; none
    citing a clean one does (so marks vanish once the results are re-recorded from a clean commit)."""
    found = discover(PAPER / "results")
    paths = [found.proofs, *found.bench.values(), *found.pets.values(), *found.muller.values()]
    files = [read_json(p) for p in paths if p is not None]
    captions = [p for d in ("tables", "figures") for p in sorted((PAPER / d).glob("*.*"))
                if p.suffix in (".tex", ".md") and p.name != "macros.tex"]  # macros.tex: a comment, no caption
    for rf in files:
        cited = f"{rf.name} @ {rf.digest}"
        for p in captions:
            text = p.read_text(encoding="utf-8")
            if cited not in text:
                continue
            where = f"paper/{p.parent.name}/{p.name} cites {cited}"
            if rf.dirty_at:
                assert cite([rf.source]) in text, f"{where} without its dirty mark: run `python -m lsbench paper`"
            else:
                assert f"{cited} (recorded from a dirty tree" not in text, f"{where} as dirty, but it is clean"
