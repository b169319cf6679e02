"""``pets-backbones``: the cross-entropy baseline per backbone against the fastai anchors' band."""

from __future__ import annotations

import json
import shutil
import statistics as pystats
from pathlib import Path

import pytest
from test_report import make_bench, make_muller, make_pets, make_proofs

from lsbench.published import PETS_ANCHORS
from lsbench.report import build, pets_backbones
from lsbench.report.fmt import num
from lsbench.report.tables import short_hash

SPLITS = ("official", "fastai")


def _results(d: Path, lite0: bool = True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    make_proofs(d / "proofs.json")
    make_bench(d / "bench-cpu-test.json")
    make_muller(d)
    make_pets(d / "pets-frozen.json", splits=SPLITS, backbone="efficientnet-lite2", margin=3.5)
    if lite0:  # only ce and uniform, as the Lite0 recording has
        make_pets(d / "pets-frozen-lite0.json", names=("ce", "uniform"), seeds=tuple(range(5)), splits=SPLITS,
                  margin=2.0)
    return d


def _ce_error(path: Path, split: str) -> tuple[float, int]:
    """Mean error of ``ce`` on ``split`` recomputed from the file's runs, and the number of seeds."""
    runs = [r for r in json.loads(path.read_text())["runs"] if r["name"] == "ce" and r["split_name"] == split]
    return pystats.fmean(r["test"]["error"] for r in runs), len(runs)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    res = _results(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("paper")
    return res, out, build.generate(res, out, figures=False)


def _rows(md: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == len(pets_backbones.COLUMNS) and cells[1] in SPLITS:
            rows[(cells[0], cells[1])] = cells
    return rows


def test_table_values_are_the_runs(generated):
    res, out, outcome = generated
    assert not outcome.errors
    assert "tables/pets-backbones" not in outcome.placeholders
    assert "tables/pets-lite0" not in outcome.placeholders  # the variant is no profile of its own
    assert not (out / "tables" / "pets-frozen-lite0.md").exists()
    md = (out / "tables" / "pets-backbones.md").read_text()
    rows = _rows(md)
    lo, hi = PETS_ANCHORS["cross_entropy"]["error_min"], PETS_ANCHORS["cross_entropy"]["error_max"]
    assert f"{num(lo, 1, 100)}–{num(hi, 1, 100)} %" in md  # the band, from lsbench.published
    labels = {"lite2 (pets-frozen.json)": res / "pets-frozen.json",
              "lite0 (pets-frozen-lite0.json)": res / "pets-frozen-lite0.json"}
    assert {k for k, _ in rows} == set(labels)
    for label, path in labels.items():
        stats = json.loads(path.read_text())["statistics"]["by_split"]
        for split in SPLITS:
            cells = rows[(label, split)]
            mean, n = _ce_error(path, split)
            assert cells[2] == str(n)
            assert cells[3].split(" ± ")[0] == num(mean, 2, 100)
            if lo <= mean <= hi:
                assert cells[4] == "inside"
            else:
                gap = mean - hi if mean > hi else lo - mean
                assert cells[4] == f"{num(gap, 2, 100)} pp {'above' if mean > hi else 'below'}"
            st = stats[split]["uniform"]["error"]
            assert cells[5].startswith(num(st["delta"], 2, 100, sign=True) + " [")
            assert cells[6] == st["verdict"]
    assert f"pets-frozen-lite0.json @ {short_hash(res / 'pets-frozen-lite0.json')}" in md


def test_macros_are_the_runs(generated):
    res, out, _ = generated
    macros = (out / "tables" / "macros.tex").read_text()
    for backbone, path in (("LiteZero", res / "pets-frozen-lite0.json"), ("LiteTwo", res / "pets-frozen.json")):
        for split in SPLITS:
            mean, _ = _ce_error(path, split)
            key = f"Pets{backbone}{split.capitalize()}"
            assert f"\\newcommand{{\\{key}CeErr}}{{{num(mean, 2, 100)} $\\pm$ " in macros
            inside = PETS_ANCHORS["cross_entropy"]["error_min"] <= mean <= PETS_ANCHORS["cross_entropy"]["error_max"]
            assert f"\\newcommand{{\\{key}CeInBand}}{{{'yes' if inside else 'no'}}}" in macros


def test_bands_place_a_mean_on_the_right_side():
    band = (0.057, 0.073)
    assert pets_backbones.band_text(0.065, band) == "inside"
    assert pets_backbones.band_text(0.0912, band) == "1.82 pp above"
    assert pets_backbones.band_text(0.05, band) == "0.70 pp below"
    assert pets_backbones.band() == (PETS_ANCHORS["cross_entropy"]["error_min"],
                                     PETS_ANCHORS["cross_entropy"]["error_max"])


def test_missing_lite0_file_gives_a_placeholder(tmp_path):
    res = _results(tmp_path / "results", lite0=False)
    out = build.generate(res, tmp_path / "paper", figures=False)
    assert not out.errors and "tables/pets-backbones" in out.placeholders
    md = (tmp_path / "paper" / "tables" / "pets-backbones.md").read_text()
    assert "not yet recorded" in md and "reproduce pets --backbone lite0" in md
    macros = (tmp_path / "paper" / "tables" / "macros.tex").read_text()
    assert "\\newcommand{\\PetsLiteZeroFastaiCeErr}{\\textit{not yet recorded}}" in macros


def test_malformed_lite0_file_is_named_and_the_table_kept(generated, tmp_path):
    res, out, _ = generated
    res2, out2 = tmp_path / "results", tmp_path / "paper"
    shutil.copytree(res, res2)
    shutil.copytree(out, out2)
    before = (out2 / "tables" / "pets-backbones.md").read_bytes()
    (res2 / "pets-frozen-lite0.json").write_text(json.dumps({"schema": "something/else"}))
    outcome = build.generate(res2, out2, figures=False)
    assert [e.path.name for e in outcome.errors] == ["pets-frozen-lite0.json"]
    assert "tables/pets-backbones" in outcome.kept
    assert (out2 / "tables" / "pets-backbones.md").read_bytes() == before


def test_other_profiles_backbone_file_is_no_profile_of_its_own(tmp_path):
    res = _results(tmp_path / "results")
    make_pets(res / "pets-fastai-lite0.json", profile="fastai", names=("ce", "uniform"), splits=SPLITS)
    notes = []
    out = build.generate(res, tmp_path / "paper", figures=False, log=notes.append)
    assert not out.errors
    assert not (tmp_path / "paper" / "tables" / "pets-fastai-lite0.md").exists()
    assert any("pets-fastai-lite0.json" in n and "ignored" in n for n in notes)
