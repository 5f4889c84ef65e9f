"""The figures README.md, docs/ and examples/ quote are the ones their scripts recorded,
and the cheap scripts still produce them (what `make docs-check` runs;
docs/figures/README.md). Editing a quoted figure, a table or a record makes this fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support import ROOT

from scripts.docfigures import sources
from scripts.docfigures.claims import Claim, check_claims, load_claims, render, rewrite_claims
from scripts.docfigures.core import (
    EXACT,
    TIMING,
    Near,
    Platform,
    Quoted,
    Source,
    compare,
    platform_key,
    quoted,
)
from scripts.docs_check import check_text, rerun

pytestmark = pytest.mark.docs


def copy_of_the_documents(tmp: Path) -> Path:
    """The files the check reads, copied under ``tmp``: every file a claim names, docs/,
    the examples' READMEs and the benchmarks' README and results."""
    files = {c.file for c in load_claims()} | {"benchmarks/README.md"}
    files |= {str(p.relative_to(ROOT)) for p in ROOT.glob("examples/**/README.md")}
    for name in files:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "docs", tmp / "docs", dirs_exist_ok=True)
    shutil.copytree(ROOT / "benchmarks" / "results", tmp / "benchmarks" / "results")
    return tmp


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer says {old!r}"
    path.write_text(text.replace(old, new, 1))


def test_every_quoted_figure_and_table_matches_its_record() -> None:
    problems = check_text()
    assert not problems, "\n".join(map(str, problems))


def test_changing_a_quoted_figure_in_the_readme_fails_the_check(tmp_path: Path) -> None:
    root = copy_of_the_documents(tmp_path)
    assert check_text(root) == []
    edit(root / "README.md", '"val_accuracy": 0.947', '"val_accuracy": 0.955')
    problems = [str(p) for p in check_text(root)]
    assert len(problems) == 1, problems
    assert problems[0].startswith("README.md: says")
    assert '"val_accuracy": 0.955' in problems[0] and '"val_accuracy": 0.947' in problems[0]


def test_changing_a_tables_cell_or_a_record_fails_the_check(tmp_path: Path) -> None:
    root = copy_of_the_documents(tmp_path)
    edit(root / "docs" / "lab.md", "| 0.1 | 2 | **0.975** |", "| 0.1 | 1 | **0.975** |")
    record = root / "docs" / "figures" / "playground.json"
    data = json.loads(record.read_text())
    figures = data["platforms"][data["quoted"]]["figures"]
    figures["saddle-rotated.2.near"] = 300
    record.write_text(json.dumps(data))
    problems = [str(p) for p in check_text(root)]
    assert any("docs/lab.md: the lab/grid block differs" in p for p in problems), problems
    assert any("Adam lingers 321 steps" in p and "300" in p for p in problems), problems


def test_rewriting_claims_puts_back_the_recorded_figures_and_nothing_else(
    tmp_path: Path,
) -> None:
    root = copy_of_the_documents(tmp_path)
    before = (root / "README.md").read_text()
    edit(root / "README.md", "Adam lingers 321 steps", "Adam lingers 300 steps")
    edit(root / "README.md", "stops early at epoch 9:", "stops early at epoch 10:")
    figures = {name: quoted(source, root) for name, source in sources().items()}
    changed = rewrite_claims(load_claims(), figures, root)
    assert changed == ["README.md"]
    assert (root / "README.md").read_text() == before
    assert check_text(root) == []


def test_every_source_has_a_record_and_is_quoted_somewhere() -> None:
    found = sources()
    records = {p.stem for p in (ROOT / "docs" / "figures").glob("*.json")}
    assert records == {n for n, s in found.items() if s.computes is not None}
    claimed = {c.source for c in load_claims()}
    for name, source in found.items():
        in_blocks = any(
            f"<!-- figures:{name}/" in p.read_text()
            for p in [*ROOT.glob("docs/*.md"), *ROOT.glob("**/README.md")]
            if ".venv" not in p.parts
        )
        assert name in claimed or in_blocks, f"{name}: no document quotes it"
        assert source.cheap <= (source.computes is not None)


# -- the rules ------------------------------------------------------------------------


def toy(**rules: Any) -> Source:
    return Source(
        name="toy",
        about="",
        command="",
        computes=lambda: {},
        rules=tuple(rules.items()),
    )


def record(here: dict[str, Any] | None, elsewhere: dict[str, Any]) -> dict[str, Any]:
    platforms = {"some other CPU | AVX2 | torch 0": {"machine": {}, "figures": elsewhere}}
    if here is not None:
        platforms[platform_key()] = {"machine": {}, "figures": here}
    return {"quoted": "some other CPU | AVX2 | torch 0", "platforms": platforms}


def test_on_an_unrecorded_platform_each_figure_is_compared_by_its_rule() -> None:
    source = toy(
        count=EXACT,
        accuracy=Near(abs=0.005, why="a sample"),
        late=Platform(why="chaos"),
        seconds=TIMING,
    )
    want = {"count": 9, "accuracy": 0.947, "late": 0.978, "seconds": 1.0}
    close = {"count": 9, "accuracy": 0.951, "late": 0.5, "seconds": 99.0}
    result = compare(source, close, record(None, want))
    assert not result.recorded_here and result.failures == []
    assert result.not_compared == ["late"] and result.compared == 2
    far = close | {"accuracy": 0.96, "count": 10}
    failures = compare(source, far, record(None, want)).failures
    assert [f.split(":")[0] for f in failures] == ["accuracy", "count"]
    assert "within ±0.005" in failures[0] and "a sample" in failures[0]


def test_on_a_recorded_platform_every_figure_but_timings_must_repeat_exactly() -> None:
    source = toy(accuracy=Near(abs=0.005, why="a sample"), seconds=TIMING)
    want = {"accuracy": 0.947, "late": 0.978, "seconds": 1.0}
    result = compare(source, want | {"seconds": 2.0}, record(want, {}))
    assert result.recorded_here and result.failures == [] and result.compared == 2
    failures = compare(source, want | {"accuracy": 0.948}, record(want, {})).failures
    assert failures and failures[0].startswith("accuracy:") and "on this platform" in failures[0]
    missing = compare(source, {"accuracy": 0.947}, record(want, {})).failures
    assert any(f.startswith("late: recorded, but the re-run") for f in missing)


def test_claims_render_formats_minus_signs_cpus_and_other_platforms() -> None:
    q = {
        "toy": Quoted(
            {"x": -2.80512, "n": 3237},
            {"cpu_model": "Intel(R) Xeon(R) Processor"},
            {"Intel | AVX2 | torch": {"x": 1.5}},
        )
    }
    claim = Claim("f.md", "toy", "at ([[x:.2f−]]) after [[n:,]] steps on an [[@cpu]], [[x@AVX2:g]]")
    assert render(claim, q) == "at (−2.81) after 3,237 steps on an Intel Xeon, 1.5"
    bad = Claim("README.md", "toy", "[[nope]]")
    (problem,) = check_claims([bad], q, ROOT)
    assert "no figure 'nope'" in str(problem)


# -- the re-runs ----------------------------------------------------------------------


def test_the_cheap_sources_still_give_their_recorded_figures() -> None:
    cheap = [name for name, source in sources().items() if source.cheap]
    assert {"lab", "digits-adam", "playground"} <= set(cheap)
    results = rerun(cheap)
    failures = [f"{r.source}: {f}" for r in results for f in r.failures]
    assert not failures, "\n".join(failures)
    assert all(r.compared > 0 for r in results)
