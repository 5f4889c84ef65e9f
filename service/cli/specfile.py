"""Spec files and ``--set``: what ``descent job submit``, ``sweep start`` and ``lab lr-find``
send, before the API validates it.

``--set PATH=VALUE`` writes through the spec language's own :func:`service.spec.paths.apply`,
the writer a sweep's trials are made with: missing objects are created, an index writes
into a list, and switching a union's tag (``optimizer.name=adam``) drops the fields the
new member lacks (an SGD spec's ``momentum``), so the API gets a spec it can accept.
All of a command's ``--set``\\ s are written together, tags first, so
``--set optimizer.momentum=0.9 --set optimizer.name=adam`` asks for an Adam with
momentum (which the API refuses, naming the field) rather than silently dropping it.

A problem with a file or a ``--set`` is a usage error (exit 2): :class:`SpecFileError`
is typer's ``BadParameter`` and a ``ValueError`` for scripts that call
:func:`load_spec` themselves.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import typer

__all__ = [
    "SpecFileError",
    "apply_set",
    "apply_sweep_set",
    "load_spec",
    "name_with_overrides",
    "yaml_value",
]

#: The keys of ``space`` and of a configuration's ``set`` are dotted paths themselves.
_WHOLE_KEY = re.compile(r"space\.(.+)|configurations\.(\d+)\.set\.(.+)")


class SpecFileError(typer.BadParameter, ValueError):
    """A spec file that cannot be read or is not a mapping, or a ``--set`` that cannot
    be written."""


def yaml_value(text: str) -> Any:
    """A --set value parsed as YAML, reading ``1e-3`` as a number (YAML 1.2 does; PyYAML's
    1.1 rules would make it a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def load_spec(source: str | Path) -> dict[str, Any]:
    """A job, sweep or comparison spec from a .json/.yaml/.yml file, or from stdin for
    ``-``, as a mapping (the API validates it)."""
    import yaml

    source = str(source)
    if source == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecFileError(
                f"cannot read {source}: {exc.strerror or exc}", param_hint="SPEC"
            ) from None
        except UnicodeDecodeError:
            raise SpecFileError(f"{source} is not UTF-8 text", param_hint="SPEC") from None
        name = source
    try:
        if name.endswith(".json"):
            spec = json.loads(text)
        else:
            spec = yaml.load(text, Loader=yaml.SafeLoader)  # JSON is YAML too
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecFileError(f"{name} is not valid JSON or YAML: {exc}", param_hint="SPEC") from None
    if not isinstance(spec, dict):
        raise SpecFileError(
            f"{name} must hold a mapping (a JSON object), not {type(spec).__name__}",
            param_hint="SPEC",
        )
    return spec


def _bad(assignment: str, why: str) -> SpecFileError:
    return SpecFileError(f"{assignment!r}: {why}", param_hint="--set")


def _parse(assignment: str) -> tuple[str, Any]:
    """``optimizer.lr=0.01`` → ``("optimizer.lr", 0.01)``."""
    import yaml

    path, sep, raw = assignment.partition("=")
    keys = [k.strip() for k in path.strip().split(".")]
    if not sep or not all(keys):
        raise _bad(assignment, "expected a dotted path, '=' and a value, e.g. optimizer.lr=0.01")
    try:
        return ".".join(keys), yaml_value(raw)
    except yaml.YAMLError as exc:
        raise _bad(assignment, f"the value is not YAML: {exc}") from None


def _write(spec: dict[str, Any], values: dict[str, tuple[Any, str]], prefix: str = "") -> Any:
    """``spec`` with ``values`` (path → (value, the --set it came from)) written in."""
    from service.spec.paths import PathError, apply

    try:
        return apply(spec, {path: value for path, (value, _) in values.items()})
    except PathError as exc:
        failed = str(exc).split(":", 1)[0]
        # apply names the path up to where it failed; the --set is the one it starts.
        assignment = next(
            text for path, (_, text) in values.items() if f"{path}.".startswith(f"{failed}.")
        )
        where = prefix + exc.parent if exc.parent else prefix.rstrip(".") or "the spec"
        if isinstance(exc.found, list):
            why = f"{where} is a list of {len(exc.found)}; {exc.key!r} is not an index in it"
        else:
            why = f"{where} is {json.dumps(exc.found)}, not a mapping; cannot set {exc.key!r} in it"
        raise _bad(assignment, why) from None


def _replace(spec: dict[str, Any], new: dict[str, Any]) -> None:
    spec.clear()
    spec.update(new)


def apply_set(spec: dict[str, Any], *assignments: str) -> None:
    """Write ``optimizer.lr=0.01``-style assignments into a job spec, in place: the value
    is YAML; see the module's docstring for how paths are written."""
    values = {}
    for assignment in assignments:
        path, value = _parse(assignment)
        values[path] = (value, assignment)
    if values:
        _replace(spec, _write(spec, values))


def name_with_overrides(spec: dict[str, Any], assignments: list[str]) -> str | None:
    """The name a job submitted with ``--set`` overrides gets when it has none: the spec's
    default name and what the overrides set, ``digits-mlp-adam lr=0.01 hidden=[64]``. A
    tag switch (``optimizer.name=sgd``) is in the default name already. None when there
    are no overrides, or the spec does not parse (the API will say why)."""
    from pydantic import ValidationError

    from service.spec import JobSpec

    try:
        base = JobSpec.model_validate(spec).default_name()
    except ValidationError:
        return None
    parts: dict[str, str] = {}
    for assignment in assignments:
        path, _, raw = assignment.partition("=")
        keys = [k.strip() for k in path.split(".")]
        if keys[-1] in ("name", "kind") and len(keys) == 2:
            continue
        parts[".".join(keys)] = raw.strip()
    if not parts:
        return None
    # The last part of each path says it (lr), unless two overrides share it.
    last = [p.rsplit(".", 1)[-1] for p in parts]
    shown = [
        f"{short if last.count(short) == 1 else path}={value}"
        for (path, value), short in zip(parts.items(), last, strict=True)
    ]
    return " ".join([base, *shown])[:200]


def apply_sweep_set(spec: dict[str, Any], *assignments: str) -> None:
    """``--set`` for a sweep or comparison spec, in place. ``base.…`` writes into the base
    job spec as :func:`apply_set` does; everything after ``space.`` (or
    ``configurations.N.set.``) is one key, that entry's dotted path:
    ``space.optimizer.lr={uniform: [0, 1]}``, where a null value removes the entry; any
    other path is written as it reads (``max_trials=40``)."""
    plain: dict[str, tuple[Any, str]] = {}
    base: dict[str, tuple[Any, str]] = {}
    whole: list[tuple[re.Match[str], Any, str]] = []
    for assignment in assignments:
        path, value = _parse(assignment)
        if match := _WHOLE_KEY.fullmatch(assignment.partition("=")[0].strip()):
            whole.append((match, value, assignment))
        elif path.startswith("base."):
            base[path.removeprefix("base.")] = (value, assignment)
        else:
            plain[path] = (value, assignment)
    # Coarse before fine: a whole `base` or `space` first, then what is written into it.
    new = _write(spec, plain) if plain else dict(spec)
    if base:
        if new.get("base") is None:
            new["base"] = {}
        if not isinstance(new["base"], dict):
            found = json.dumps(new["base"])
            raise _bad(next(iter(base.values()))[1], f"base is {found}, not a mapping")
        new["base"] = _write(new["base"], base, prefix="base.")
    for match, value, assignment in whole:
        _write_entry(new, match, value, assignment)
    _replace(spec, new)


def _write_entry(spec: dict[str, Any], match: re.Match[str], value: Any, assignment: str) -> None:
    if match.group(1) is not None:
        key, where = match.group(1).strip(), spec.get("space")
        if where is None:
            where = spec["space"] = {}
        name = "space"
    else:
        index, key = int(match.group(2)), match.group(3).strip()
        configurations = spec.get("configurations")
        if not isinstance(configurations, list) or index >= len(configurations):
            count = len(configurations) if isinstance(configurations, list) else 0
            raise _bad(
                assignment,
                f"configurations is a list of {count}; {index} is not an index in it",
            )
        config = configurations[index]
        if not isinstance(config, dict):
            raise _bad(assignment, f"configurations.{index} is not a mapping")
        where = config.setdefault("set", {})
        name = f"configurations.{index}.set"
    if not isinstance(where, dict):
        raise _bad(assignment, f"{name} is not a mapping")
    if value is None:
        where.pop(key, None)
    else:
        where[key] = value
