"""docs/optimizers.md stays true to the spec: a section for every optimizer and schedule,
the catalog's ``update_rule`` quoted as it is, and each defaults table equal to the spec
model's defaults (every field, no more, no less)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from service.spec import OPTIMIZER_NAMES, SCHEDULE_NAMES, OptimizerSpec, ScheduleSpec

DOC = Path(__file__).resolve().parents[1] / "docs" / "optimizers.md"
HEADING = re.compile(r"^(#{2,3}) (.*)$")
NAMED = re.compile(r"^### `(\w+)`")


def sections(text: str) -> dict[str, str]:
    """The text under each ``### `name` …`` heading, up to the next heading of level ≤ 3."""
    out: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in [*text.splitlines(), "## end"]:
        if HEADING.match(line):
            if name is not None:
                assert name not in out, f"two sections for {name}"
                out[name] = "\n".join(lines)
            match = NAMED.match(line)
            name, lines = (match.group(1) if match else None), []
        else:
            lines.append(line)
    return out


def defaults_table(section: str) -> dict[str, Any]:
    """The ``| field | default | meaning |`` table: field → the default, read as JSON."""
    rows = section.splitlines()
    starts = [i for i, row in enumerate(rows) if re.match(r"^\|\s*field\s*\|\s*default\s*\|", row)]
    assert len(starts) == 1, "expected exactly one defaults table"
    table: dict[str, Any] = {}
    for row in rows[starts[0] + 2 :]:  # past the header and the |---| line
        if not row.startswith("|"):
            break
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a defaults row needs 3 cells: {row}"
        field, default = (re.fullmatch(r"`(.*)`", cell) for cell in cells[:2])
        assert field and default, f"field and default go in backticks: {row}"
        assert field.group(1) not in table, f"{field.group(1)} listed twice"
        table[field.group(1)] = json.loads(default.group(1))
    return table


TEXT = DOC.read_text(encoding="utf-8")
SECTIONS = sections(TEXT)
KINDS = [
    *((name, TypeAdapter(OptimizerSpec)) for name in OPTIMIZER_NAMES),
    *((name, TypeAdapter(ScheduleSpec)) for name in SCHEDULE_NAMES),
]


def test_every_section_names_a_catalog_entry() -> None:
    assert set(SECTIONS) == {*OPTIMIZER_NAMES, *SCHEDULE_NAMES}


@pytest.mark.parametrize(("name", "adapter"), KINDS, ids=[name for name, _ in KINDS])
def test_section_matches_the_spec(name: str, adapter: TypeAdapter) -> None:
    assert name in SECTIONS, f"docs/optimizers.md has no section ### `{name}`"
    section = SECTIONS[name]
    model = adapter.validate_python({"name": name})
    assert f"Catalog: `{type(model).update_rule}`" in section, (
        f"the {name} section must quote its update_rule exactly as the catalog serves it"
    )
    defaults = model.model_dump(mode="json", exclude={"name"})
    assert defaults_table(section) == defaults


def test_the_table_parser_sees_a_wrong_default() -> None:
    section = SECTIONS["adam"].replace("| `lr` | `0.001` |", "| `lr` | `0.01` |")
    assert defaults_table(section)["lr"] == 0.01
    assert defaults_table(section) != defaults_table(SECTIONS["adam"])
