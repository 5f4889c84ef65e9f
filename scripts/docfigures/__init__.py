"""Figures the documents quote, the scripts that produce them, and the check that the two
agree (``scripts/docs_check.py``; ``docs/figures/README.md`` explains it all)."""

from __future__ import annotations

from scripts.docfigures.core import Source


def sources() -> dict[str, Source]:
    """Every source, by name (importing them is cheap: nothing runs until asked)."""
    from scripts.docfigures import benchmarks, lab, optimizers, playground, sweeps, training

    found: dict[str, Source] = {}
    for module in (lab, playground, optimizers, training, sweeps, benchmarks):
        for source in module.SOURCES:
            if source.name in found:
                raise ValueError(f"two sources named {source.name!r}")
            found[source.name] = source
    return found
