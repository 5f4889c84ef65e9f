"""Figures, the rules for comparing them across machines, sources and their records.

A *source* is a script's measurement that produces named figures (``computes``), or an
extraction from a benchmark's results file (``extracts``). What it produced is kept in a
*record*, one JSON file per source under ``docs/figures/`` (the benchmarks keep theirs in
``benchmarks/results/``), per *platform*: the CPU model, the kernels torch dispatches to
on it and the torch version, the things that decide the last bits of float arithmetic.
The documents quote one platform's figures, the record's ``quoted`` one.

Re-running a source compares each figure with the record by its *rule*:

- ``EXACT``: the same on every machine (counts of things, integer arithmetic);
- ``Near(abs, rel, why)``: equal on a platform the record has, within the tolerance on
  any other (float kernels differ between CPU models; ``why`` says why this much);
- ``Platform(why)``: equal on a platform the record has; elsewhere there is nothing to
  compare with (chaotic training figures), and ``regenerate`` records this platform;
- ``TIMING``: never compared (a wall time is a measurement, not a result).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import platform as _platform
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchmarks.common

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "docs" / "figures"

Value = Any  # a JSON value: int, float, str, bool, None (or a list of them)


# -- rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    kind: str  # "exact", "near", "platform", "timing"
    abs: float = 0.0
    rel: float = 0.0
    why: str = ""

    def describe(self) -> str:
        if self.kind == "near":
            parts = [f"±{self.abs:g}" if self.abs else "", f"±{self.rel:.0%}" if self.rel else ""]
            return "within " + " or ".join(p for p in parts if p)
        return {"exact": "exact", "platform": "per platform", "timing": "not compared"}[self.kind]


EXACT = Rule("exact")
TIMING = Rule("timing")


def Near(abs: float = 0.0, rel: float = 0.0, *, why: str) -> Rule:  # noqa: N802 - reads as a rule
    if abs <= 0 and rel <= 0:
        raise ValueError("a tolerance needs abs or rel")
    return Rule("near", abs=abs, rel=rel, why=why)


def Platform(*, why: str) -> Rule:  # noqa: N802 - reads as a rule
    return Rule("platform", why=why)


def within(rule: Rule, got: Value, want: Value) -> bool:
    """Whether ``got`` is ``want`` under ``rule``'s tolerance (plain equality otherwise)."""
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(
            within(rule, g, w) for g, w in zip(got, want, strict=True)
        )
    numbers = (int, float)
    if (
        rule.kind == "near"
        and isinstance(got, numbers)
        and isinstance(want, numbers)
        and not isinstance(got, bool)
        and not isinstance(want, bool)
    ):
        return math.isclose(got, want, rel_tol=rule.rel, abs_tol=rule.abs)
    return bool(got == want)


# -- the platform -----------------------------------------------------------------------


def cpu_model() -> str:
    return benchmarks.common.cpu_model() or _platform.machine() or "unknown CPU"


def short_cpu(model: str) -> str:
    """``Intel(R) Xeon(R) Processor`` → ``Intel Xeon``: the words a reader knows."""
    text = re.sub(r"\((R|TM)\)", "", model)
    text = re.sub(r"\b(Processor|CPU)\b.*$", "", text)
    return re.sub(r"\s+", " ", text).strip() or model


def platform_key() -> str:
    """What decides the last bits of this machine's float arithmetic in torch: the CPU
    model, the instruction set torch dispatches its kernels to, torch's version."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    # MKL picks its own code path per CPU; this variable overrides it (as ATEN_CPU_CAPABILITY
    # overrides torch's, which the capability above already shows).
    mkl = os.environ.get("MKL_ENABLE_INSTRUCTIONS")
    return (
        f"{cpu_model()} | {capability}{f' (MKL {mkl})' if mkl else ''} | torch {torch.__version__}"
    )


def machine() -> dict[str, Any]:
    """Where a record was made (the benchmarks' own description, plus the platform)."""
    from benchmarks.common import machine_info

    return machine_info(platform_key=platform_key(), torch_threads=_torch_threads())


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# -- sources ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a set of figures comes from.

    ``computes``: runs the measurement, returns {figure: value}; its record is
    ``docs/figures/<name>.json`` and ``regenerate`` rewrites it. ``extracts``: reads
    figures out of result files other scripts write (the benchmarks); ``results`` names
    them. ``rules``: (glob over figure names, rule), first match wins; a figure no
    pattern matches is ``EXACT``. ``blocks``: named renderers of text the documents
    embed whole (a table), from the figures. ``cheap``: re-run by ``docs-check``.
    """

    name: str
    about: str
    command: str
    cheap: bool = False
    computes: Callable[[], dict[str, Value]] | None = None
    extracts: Callable[[list[dict[str, Any]]], dict[str, Value]] | None = None
    results: tuple[str, ...] = ()
    rules: tuple[tuple[str, Rule], ...] = ()
    blocks: Mapping[str, Callable[[dict[str, Value]], str]] = field(default_factory=dict)

    def rule(self, figure: str) -> Rule:
        for pattern, rule in self.rules:
            if fnmatch.fnmatchcase(figure, pattern):
                return rule
        return EXACT

    @property
    def record_path(self) -> Path:
        return RECORDS / f"{self.name}.json"


@dataclass
class Quoted:
    """The figures the documents quote, with the machine they were made on; ``others``:
    the figures recorded on other platforms, by platform key."""

    figures: dict[str, Value]
    machine: dict[str, Any]
    others: dict[str, dict[str, Value]] = field(default_factory=dict)

    @property
    def cpu(self) -> str:
        return short_cpu(str(self.machine.get("cpu_model") or "unknown CPU"))


def load_record(source: Source, root: Path = ROOT) -> dict[str, Any]:
    path = root / source.record_path.relative_to(ROOT)
    return json.loads(path.read_text())


def quoted(source: Source, root: Path = ROOT) -> Quoted:
    """The figures of ``source`` that the documents quote."""
    if source.extracts is not None:
        docs = [json.loads((root / r).read_text()) for r in source.results]
        # A benchmark's figures come from its first results file's machine.
        return Quoted(source.extracts(docs), docs[0].get("machine", {}))
    record = load_record(source, root)
    run = record["platforms"][record["quoted"]]
    others = {k: v["figures"] for k, v in record["platforms"].items() if k != record["quoted"]}
    return Quoted(run["figures"], run["machine"], others)


def write_record(source: Source, figures: dict[str, Value], *, quote: bool) -> Path:
    """Record ``figures`` for this platform; ``quote``: the documents quote them now."""
    path = source.record_path
    record: dict[str, Any] = (
        json.loads(path.read_text()) if path.exists() else {"source": source.name}
    )
    key = platform_key()
    record.update(about=source.about, command=source.command)
    platforms = record.setdefault("platforms", {})
    platforms[key] = {"machine": machine(), "figures": figures}
    if quote or "quoted" not in record:
        record["quoted"] = key
    record["platforms"] = dict(sorted(platforms.items()))
    ordered = {k: record[k] for k in ("source", "about", "command", "quoted", "platforms")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


# -- comparing a re-run with the record -------------------------------------------------


@dataclass
class Comparison:
    source: str
    platform: str
    recorded_here: bool
    failures: list[str] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)
    compared: int = 0


def compare(source: Source, got: dict[str, Value], record: dict[str, Any]) -> Comparison:
    """``got`` (a re-run here) against ``record``, figure by figure, by each one's rule."""
    key = platform_key()
    here = record["platforms"].get(key)
    reference = here or record["platforms"][record["quoted"]]
    result = Comparison(source.name, key, recorded_here=here is not None)
    want = reference["figures"]
    for name in sorted(set(want) - set(got)):
        result.failures.append(f"{name}: recorded, but the re-run gives no such figure")
    for name in sorted(set(got) - set(want)):
        result.failures.append(f"{name}: the re-run gives it, the record does not have it")
    for name in sorted(set(got) & set(want)):
        rule = source.rule(name)
        if rule.kind == "timing":
            continue
        if here is None and rule.kind == "platform":
            result.not_compared.append(name)
            continue
        strict = Rule("exact") if here is not None else rule
        result.compared += 1
        if not within(strict, got[name], want[name]):
            where = "on this platform" if here is not None else f"on {record['quoted']}"
            result.failures.append(
                f"{name}: re-run gives {got[name]!r}, recorded {want[name]!r} {where} "
                f"({strict.describe()}{'; ' + rule.why if rule.why and here is None else ''})"
            )
    return result
