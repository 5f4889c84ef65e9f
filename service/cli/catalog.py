"""``descent catalog``: what a job spec accepts, as tables.

``GET /v1/catalog`` is a document read off the spec's models (the API declares no
response model for it), so it is read here as the JSON it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from service.cli.options import JsonOpt, TokenOpt, UrlOpt, connect
from service.cli.output import add_row, console, num, print_json, table, text

#: Parameters every dataset takes, told once under the tables.
COMMON_DATASET_PARAMS = ("val_fraction", "scaling", "target_scaling", "split_seed")


def params_text(params: list[dict[str, Any]] | None, skip: tuple[str, ...] = ()) -> str:
    """``n_samples=1000, noise=0.1``: each parameter with its default."""
    out = []
    for p in params or []:
        if p.get("name") in skip:
            continue
        default = p.get("default")
        out.append(p["name"] if default is None else f"{p['name']}={json.dumps(default)}")
    return ", ".join(out)


#: Per section: its key column, an extra column (title and cell), the parameters shown.
_SECTIONS: list[tuple[str, str, tuple[str, Callable[[dict[str, Any]], str]] | None, tuple]] = [
    ("datasets", "name", ("TASK", lambda d: d.get("task") or "-"), COMMON_DATASET_PARAMS),
    ("models", "kind", None, ()),
    ("optimizers", "name", None, ()),
    ("schedules", "name", ("STEPPED", lambda d: d.get("stepped") or ""), ("warmup_epochs",)),
]


def catalog(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """What a job spec accepts: datasets, models, optimizers and schedules."""
    with connect(url, token) as client:
        doc = client.catalog()
    if as_json:
        print_json(doc)
        return
    out = console()
    for title, key, extra, skip in _SECTIONS:
        rows = table(
            (key.upper(), {"no_wrap": True}),
            *([extra[0]] if extra else []),
            ("DESCRIPTION", {"ratio": 3}),
            ("PARAMETERS (defaults)", {"ratio": 2}),
            title=title,
            title_justify="left",
            title_style="bold",
            box=_heavy_head(),
            pad_edge=True,
        )
        for item in doc.get(title) or []:
            description = (item.get("description") or "").split("\n")[0]
            cells = [str(item.get(key, "")), *([extra[1](item)] if extra else [])]
            add_row(rows, [*cells, description, params_text(item.get("params"), skip)])
        out.print(rows)
    if limits := doc.get("limits"):
        out.print(text("limits: " + ", ".join(f"{k} {num(v)}" for k, v in limits.items())))
    out.print(
        text(
            "every dataset also takes " + ", ".join(COMMON_DATASET_PARAMS) + "; every schedule "
            "warmup_epochs. `descent catalog --json` has each parameter's bounds and the "
            "update rules."
        )
    )


def _heavy_head() -> Any:
    """rich's default table box (the catalog is drawn with borders, the lists without)."""
    from rich import box

    return box.HEAVY_HEAD
