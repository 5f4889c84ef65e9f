"""The figures the documents quote, and where: ``docs/figures/claims.toml``.

Each entry of the claims file is a text as it stands in a document, with every quoted
figure replaced by a placeholder naming it: ``[[figure]]`` or ``[[figure:format]]``,
``[[source.figure]]`` for another source's, ``[[figure@AVX2]]`` for the figure recorded
on the (one) other platform whose key contains ``AVX2``, ``[[@cpu]]`` for the CPU the
quoted figures were made on and ``[[@load]]`` for its load average then (wall times
depend on it). A format is a Python format spec (``.3f``, ``,``, ``.0%``) or one of:
``.3f−`` (a typographic minus), ``%.0f`` (0.84 as 84), ``and`` (a list as "15, 27 and
38"), ``len`` (a list's length), ``never`` (None as "never"), ``holds`` (prints nothing,
and fails unless the figure is true: for a sentence that states it)::

    ["README.md"]
    "digits-adam" = ['ends at val_accuracy [[final_val_accuracy:.3f]]']

The check renders each text from the record and looks for it in the document,
whitespace-insensitively (so line breaks do not matter). Editing a quoted figure in a
document, or regenerating a record that changes one, makes the two differ, and the
check says where and what the record says.

Tables are *blocks*: ``<!-- figures:SOURCE/BLOCK -->`` … ``<!-- /figures -->`` in the
document (invisible when rendered), whose content is the source's renderer's output.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from scripts.docfigures.core import ROOT, Quoted, Value

CLAIMS = ROOT / "docs" / "figures" / "claims.toml"
PLACEHOLDER = re.compile(r"\[\[([^\[\]]+?)\]\]")
BLOCK = re.compile(
    r"<!-- figures:(?P<source>[\w-]+)/(?P<block>[\w-]+) -->\n(?P<body>.*?)<!-- /figures -->",
    re.S,
)


@dataclass(frozen=True)
class Claim:
    file: str  # relative to the repository root
    source: str
    text: str  # with placeholders


class ClaimError(ValueError):
    """A claim that cannot be rendered (an unknown figure, a format that does not fit)."""


def load_claims(path: Path = CLAIMS) -> list[Claim]:
    data = tomllib.loads(path.read_text())
    return [
        Claim(file, source, text)
        for file, by_source in data.items()
        for source, texts in by_source.items()
        for text in texts
    ]


def _value(key: str, source: str, quoted: Mapping[str, Quoted]) -> tuple[Value, str]:
    name, _, fmt = key.partition(":")
    if "." in name and name.split(".", 1)[0] in quoted:
        source, name = name.split(".", 1)
    if source not in quoted:
        raise ClaimError(f"no source {source!r}")
    q = quoted[source]
    if name == "@cpu":
        return q.cpu, fmt
    if name == "@load":  # the machine's 1-minute load average when the record was made
        return (q.machine.get("load_average") or [None])[0], fmt or ".1f"
    name, _, where = name.partition("@")
    figures = q.figures
    if where:  # another platform's figure: the one whose key contains ``where``
        matches = [f for key, f in q.others.items() if where in key]
        if len(matches) != 1:
            raise ClaimError(f"source {source!r} has {len(matches)} platforms like {where!r}")
        figures = matches[0]
    if name not in figures:
        raise ClaimError(f"source {source!r} has no figure {name!r}")
    return figures[name], fmt


def show(value: Value, fmt: str) -> str:
    """A figure as the documents print it (a format ending in ``−`` prints a minus sign
    as the typographic one, as the prose does)."""
    if fmt.endswith("−"):
        return show(value, fmt[:-1]).replace("-", "−")
    if fmt.startswith("%"):  # a share as a percentage without the sign: "84" (of 84–85%)
        return format(float(value) * 100, fmt[1:])
    if fmt == "never":  # an epoch a run reached something at, or "never"
        return "never" if value is None else str(value)
    if fmt == "len":  # how many: "9" runs
        return str(len(value))
    if fmt == "and":  # a list, as prose: "15, 27 and 38"
        items = [str(v) for v in value]
        return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)
    if fmt == "holds":  # a yes/no the sentence states: nothing to print, but it must hold
        if value is not True:
            raise ClaimError(f"the record says {value!r} where the text states it holds")
        return ""
    if fmt:
        try:
            return format(value, fmt)
        except (TypeError, ValueError) as exc:
            raise ClaimError(f"{value!r} does not take the format {fmt!r}: {exc}") from exc
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def render(claim: Claim, quoted: Mapping[str, Quoted]) -> str:
    def one(match: re.Match[str]) -> str:
        value, fmt = _value(match.group(1), claim.source, quoted)
        return show(value, fmt)

    return PLACEHOLDER.sub(one, claim.text)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


NUMBER = r"[-+−]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?%?"


def pattern(claim: Claim, quoted: Mapping[str, Quoted]) -> re.Pattern[str]:
    """The claim's text with any value in each placeholder: finds what a document says
    where the claim expects a figure. A placeholder matches what looks like its figure:
    any number where the record's value prints as a number, else as many words."""
    parts, last = [], 0
    for m in PLACEHOLDER.finditer(claim.text):
        parts.append(_loose(claim.text[last : m.start()]))
        try:
            shown = show(*_value(m.group(1), claim.source, quoted))
        except ClaimError:
            shown = "?"
        if not shown:
            parts.append("()")
        elif re.fullmatch(NUMBER, shown):
            parts.append(f"({NUMBER}|never|None)")
        else:
            words = len(shown.split()) or 1
            parts.append(r"(\S+" + r"\s+\S+" * (words - 1) + ")")
        last = m.end()
    parts.append(_loose(claim.text[last:]))
    return re.compile("".join(parts))


def _loose(literal: str) -> str:
    return r"\s+".join(re.escape(w) for w in literal.split(" ")) if literal else ""


@dataclass(frozen=True)
class Problem:
    file: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


def check_claims(
    claims: list[Claim], quoted: Mapping[str, Quoted], root: Path = ROOT
) -> Iterator[Problem]:
    """Every claim found in its document as its record renders it."""
    texts: dict[str, str] = {}
    for claim in claims:
        path = root / claim.file
        if claim.file not in texts:
            if not path.exists():
                yield Problem(claim.file, "no such file, yet claims.toml quotes figures in it")
                texts[claim.file] = ""
                continue
            texts[claim.file] = squash(path.read_text())
        try:
            want = squash(render(claim, quoted))
        except ClaimError as exc:
            yield Problem(claim.file, f"{exc} in {claim.text!r}")
            continue
        if want in texts[claim.file]:
            continue
        found = pattern(Claim(claim.file, claim.source, squash(claim.text)), quoted).search(
            texts[claim.file]
        )
        if found:
            yield Problem(
                claim.file,
                f"says {squash(found.group(0))!r}; the record ({claim.source}) says {want!r}",
            )
        else:
            yield Problem(claim.file, f"no longer says {want!r} (figures from {claim.source})")


def rewrite_claims(
    claims: list[Claim], quoted: Mapping[str, Quoted], root: Path = ROOT
) -> list[str]:
    """Write each claim's rendered text over what its document says in its place (found
    by ``pattern``); returns the files changed. A claim not found is left for a person."""
    changed: set[str] = set()
    for claim in claims:
        path = root / claim.file
        text = path.read_text()
        try:
            want = render(claim, quoted)
        except ClaimError:
            continue  # the check reports it
        if squash(want) in squash(text):
            continue  # says it already
        loose = pattern(claim, quoted)
        new, n = loose.subn(lambda m, w=want: _keep_breaks(m.group(0), w), text, count=1)
        if n and new != text:
            path.write_text(new)
            changed.add(claim.file)
    return sorted(changed)


def _keep_breaks(old: str, new: str) -> str:
    """``new`` with the line breaks ``old`` had between the same words, where they fit."""
    old_words, new_words = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    if len(old_words) != len(new_words):
        return new
    pairs = enumerate(zip(old_words, new_words, strict=True))
    return "".join(o if i % 2 else n for i, (o, n) in pairs)


# -- blocks -----------------------------------------------------------------------------


def blocks_in(text: str) -> Iterator[re.Match[str]]:
    return BLOCK.finditer(text)


def documents(root: Path = ROOT) -> list[Path]:
    """The documents whose figures are checked: README, docs/, examples/, benchmarks/."""
    found = [root / "README.md", root / "benchmarks" / "README.md"]
    found += sorted((root / "docs").glob("*.md"))
    found += sorted((root / "examples").glob("**/README.md"))
    return [p for p in found if p.exists()]
