"""Check that the figures README.md, docs/ and examples/ quote are the figures their
scripts produced, and re-run the cheap scripts to see that they still produce them.

    .venv/bin/python scripts/docs_check.py                 # make docs-check
    .venv/bin/python scripts/docs_check.py --text-only     # the documents against the records
    .venv/bin/python scripts/docs_check.py --rerun all     # also the slower training sources
    .venv/bin/python scripts/docs_check.py list            # every source: cost, machine, claims
    .venv/bin/python scripts/docs_check.py regenerate lab playground [--quote]
    .venv/bin/python scripts/docs_check.py render lab      # rewrite from the records only

``regenerate`` runs sources and records their figures for this platform (CPU model,
kernels, torch); with ``--quote`` the documents quote this platform from now on, and the
blocks and claims in them are rewritten from the new records (``render`` rewrites them
from the records as they are). docs/figures/README.md
explains the records, the claims file and each rule of comparison.

Exit status: 0 when every claim matches and every re-run agrees with its record, 1
otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.docfigures import sources
from scripts.docfigures.claims import (
    BLOCK,
    Problem,
    blocks_in,
    check_claims,
    documents,
    load_claims,
    rewrite_claims,
)
from scripts.docfigures.core import (
    ROOT,
    Comparison,
    Quoted,
    Source,
    compare,
    load_record,
    platform_key,
    quoted,
    write_record,
)


def quoted_figures(found: dict[str, Source], root: Path = ROOT) -> dict[str, Quoted]:
    return {name: quoted(source, root) for name, source in found.items()}


def check_blocks(
    found: dict[str, Source], figures: dict[str, Quoted], root: Path = ROOT
) -> Iterable[Problem]:
    """Every block in the documents is its source's renderer's output."""
    for path in documents(root):
        text = path.read_text()
        name = str(path.relative_to(root))
        for match in blocks_in(text):
            source, block = match.group("source"), match.group("block")
            if source not in found or block not in found[source].blocks:
                yield Problem(name, f"a block of {source}/{block}, which no source renders")
                continue
            want = found[source].blocks[block](figures[source].figures)
            if match.group("body").strip() != want.strip():
                yield Problem(
                    name,
                    f"the {source}/{block} block differs from its record "
                    f"(regenerate {source} --quote rewrites it)",
                )


def check_text(root: Path = ROOT) -> list[Problem]:
    """(a) every quoted figure and block equals its record as printed."""
    found = sources()
    figures: dict[str, Quoted] = {}
    problems: list[Problem] = []
    for name, source in found.items():
        try:
            figures[name] = quoted(source, root)
        except (OSError, KeyError, ValueError) as exc:
            problems.append(Problem("docs/figures", f"the record of {name} cannot be read: {exc}"))
    claims = load_claims(root / "docs" / "figures" / "claims.toml")
    problems += check_claims([c for c in claims if c.source in figures], figures, root)
    problems += check_blocks({n: s for n, s in found.items() if n in figures}, figures, root)
    return problems


def rerun(names: Iterable[str]) -> list[Comparison]:
    """(b) each source run again here and compared with its record, rule by rule."""
    found = sources()
    results = []
    for name in names:
        source = found[name]
        assert source.computes is not None
        results.append(compare(source, source.computes(), load_record(source)))
    return results


def rewrite_blocks(found: dict[str, Source], figures: dict[str, Quoted], names: set[str]) -> None:
    for path in documents():
        text = path.read_text()

        def one(match: re.Match[str]) -> str:
            source, block = match.group("source"), match.group("block")
            if source not in names or source not in found:
                return match.group(0)
            body = found[source].blocks[block](figures[source].figures)
            return f"<!-- figures:{source}/{block} -->\n{body.strip()}\n<!-- /figures -->"

        new = BLOCK.sub(one, text)
        if new != text:
            path.write_text(new)
            print(f"rewrote blocks in {path.relative_to(ROOT)}")


def regenerate(names: list[str], *, quote: bool) -> int:
    found = sources()
    for name in names:
        source = found[name]
        if source.computes is None:
            print(
                f"{name}: its figures come from {', '.join(source.results)}; run: {source.command}"
            )
            continue
        started = time.perf_counter()
        path = write_record(source, source.computes(), quote=quote)
        print(
            f"{name}: recorded in {path.relative_to(ROOT)} ({time.perf_counter() - started:.1f} s)"
        )
    return render(names) if quote else 0


def render(names: list[str]) -> int:
    """Rewrite the blocks and the claimed figures of ``names`` from their records."""
    found = sources()
    figures = quoted_figures(found)
    rewrite_blocks(found, figures, set(names))
    claims = [c for c in load_claims() if c.source in names]
    for file in rewrite_claims(claims, figures):
        print(f"rewrote figures in {file}")
    return 0


def listing() -> int:
    found = sources()
    claims = load_claims()
    for name, source in found.items():
        q = quoted(source)
        n = sum(1 for c in claims if c.source == name)
        cost = "cheap" if source.cheap else ("benchmark" if source.extracts else "slow")
        print(f"{name:24} {cost:9} {len(q.figures):4} figures  {n:3} claims  quoted: {q.cpu}")
        print(f"{'':24} {source.command}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command", nargs="?", default="check", choices=["check", "list", "regenerate", "render"]
    )
    parser.add_argument("names", nargs="*", help="sources (regenerate; default: the cheap ones)")
    parser.add_argument("--text-only", action="store_true", help="no re-runs")
    parser.add_argument("--rerun", choices=["cheap", "all"], default="cheap")
    parser.add_argument("--quote", action="store_true", help="regenerate: quote this platform")
    args = parser.parse_args(argv)
    found = sources()
    unknown = [n for n in args.names if n not in found]
    if unknown:
        parser.error(f"no source {', '.join(unknown)}; one of {', '.join(found)}")
    if args.command == "list":
        return listing()
    cheap = [n for n, s in found.items() if s.cheap]
    if args.command == "regenerate":
        return regenerate(args.names or cheap, quote=args.quote)
    if args.command == "render":
        return render(args.names or list(found))

    failed = False
    problems = check_text()
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"text: {len(load_claims())} claims and the blocks checked, {len(problems)} problem(s)")
    failed |= bool(problems)
    if not args.text_only:
        names = cheap if args.rerun == "cheap" else [n for n, s in found.items() if s.computes]
        print(f"re-running {', '.join(names)} on {platform_key()}")
        for result in rerun(names):
            where = "recorded here" if result.recorded_here else "not recorded on this platform"
            line = f"{result.source}: {result.compared} figures compared ({where})"
            if result.not_compared:
                line += (
                    f"; {len(result.not_compared)} depend on the platform and were not "
                    f"compared (regenerate {result.source} records this one)"
                )
            print(line)
            for failure in result.failures:
                print(f"FAIL {result.source}: {failure}")
            failed |= bool(result.failures)
    print("docs-check: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
