"""Run the reliability tests and turn what they record into docs/reliability.md's tables.

    .venv/bin/python benchmarks/reliability.py                # the suite's own settings
    .venv/bin/python benchmarks/reliability.py --kills 12     # more kills per chaos run
    .venv/bin/python benchmarks/reliability.py --render-only  # tables from the last results

The tests (chaos, outages, duplicate delivery, cancel, IDOR, bad inputs, fuzzing) append
one JSON record each to the file named by DESCENT_RELIABILITY_FIGURES (tests/faults.py).
This script runs them with that variable set, writes the records and the machine they
ran on to benchmarks/results/reliability.json, and rewrites the tables between the
markers in docs/reliability.md. The tests themselves assert the promises; the figures
say how much was thrown at them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS_DIR, ROOT, machine_info, write_results

TESTS = [
    "tests/integration/test_crash_safety.py",
    "tests/integration/test_outages.py",
    "tests/service/test_idor.py",
    "tests/service/test_bad_inputs.py",
    "tests/service/test_fuzz.py",
]
DOC = ROOT / "docs" / "reliability.md"
# The same markers as every block of figures in the docs (scripts/docs_check.py checks them).
START, END = "<!-- figures:reliability/tables -->", "<!-- /figures -->"
RESULTS = RESULTS_DIR / "reliability.json"


def run_tests(kills: int | None, fuzz_examples: int | None, marker: str | None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl", delete=False) as f:
        figures = Path(f.name)
    env = {**os.environ, "DESCENT_RELIABILITY_FIGURES": str(figures)}
    if kills is not None:
        env["DESCENT_CHAOS_KILLS"] = str(kills)
    if fuzz_examples is not None:
        env["DESCENT_FUZZ_EXAMPLES"] = str(fuzz_examples)
    tests = [t for t in TESTS if (ROOT / t).exists()]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    if marker:
        cmd += ["-m", marker]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    records = [json.loads(line) for line in figures.read_text().splitlines() if line.strip()]
    figures.unlink()
    return {
        "command": " ".join(cmd[2:]),
        "pytest_exit_code": proc.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "records": records,
    }


def _fault_rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in records:
        if "faults" not in r:
            continue
        rerun = r.get("epochs_rerun")
        rows.append(
            [
                r["test"],
                r.get("backend", ""),
                r["faults"],
                r.get("jobs", ""),
                r.get("completed", ""),
                r.get("duplicates", 0),
                r.get("lost", 0),
                ", ".join(map(str, rerun)) if rerun is not None else "",
            ]
        )
    return rows


def _input_rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in records:
        if "payloads" not in r:
            continue
        rows.append(
            [
                r["test"],
                r.get("backend", ""),
                r["payloads"],
                r.get("rejected_4xx", ""),
                r.get("server_errors", 0),
                r.get("schema_violations", ""),
                r.get("leaks", ""),
            ]
        )
    return rows


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    records = results["records"]
    faults = md_table(
        [
            "scenario",
            "backend",
            "faults injected",
            "jobs",
            "jobs completed",
            "duplicate epochs",
            "lost epochs",
            "epochs re-run per kill",
        ],
        _fault_rows(records),
    )
    inputs = md_table(
        [
            "scenario",
            "backend",
            "requests tried",
            "answered 4xx",
            "server errors",
            "schema violations",
            "leaks",
        ],
        _input_rows(records),
    )
    machine = results.get("machine", {})
    return (
        f"{START}\n"
        f"Produced by `{results['command']}` (pytest exit code {results['pytest_exit_code']}, "
        f"{results['seconds']} s) on {machine.get('cpu_count', '?')} CPUs, "
        f"{machine.get('timestamp', '?')}, commit {str(machine.get('git_commit'))[:10]}.\n\n"
        f"### Faults\n\n{faults}\n\n### Hostile requests\n\n{inputs}\n{END}"
    )


def write_doc(block: str) -> None:
    text = DOC.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{DOC} lacks the {START} … {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kills", type=int, default=5, help="SIGKILLs per chaos run (the suite's: 3)"
    )
    parser.add_argument(
        "--fuzz-examples",
        type=int,
        default=25,
        help="schemathesis fuzzing examples per operation (the suite's: 15)",
    )
    parser.add_argument("-m", dest="marker", help='pytest marker expression, e.g. "not postgres"')
    parser.add_argument("--render-only", action="store_true", help="re-render the last results")
    args = parser.parse_args(argv)

    if args.render_only:
        results = json.loads(RESULTS.read_text())
    else:
        results = run_tests(args.kills, args.fuzz_examples, args.marker)
        results["machine"] = machine_info()
        write_results(RESULTS, results)
    write_doc(render(results))
    print(render(results))
    return 0 if results["pytest_exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
