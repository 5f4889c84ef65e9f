"""Writing values into a job spec at dotted paths (``optimizer.lr``, ``model.hidden.0``).

A sweep's trial is its base with the trial's values written in; ``descent submit --set``
writes the user's overrides the same way. Both go through :func:`apply`, which knows the
spec's discriminated unions: switching ``optimizer.name`` from ``sgd`` to ``adam`` drops
``momentum``, which Adam does not have, instead of sending a spec the API refuses.
"""

from __future__ import annotations

import copy
import typing
from typing import Any

from service.spec.training import JobSpec

__all__ = ["PathError", "apply"]


def _union_fields() -> dict[str, tuple[str, dict[str, set[str]]]]:
    """For each top-level union of the job spec (optimizer, schedule, model, dataset):
    its discriminator and, per tag, the fields that member has."""
    out: dict[str, tuple[str, dict[str, set[str]]]] = {}
    for name, info in JobSpec.model_fields.items():
        disc = None
        for meta in info.metadata:
            disc = getattr(meta, "discriminator", None) or disc
        if disc is None:
            disc = getattr(info, "discriminator", None)
        members = typing.get_args(info.annotation)
        if not isinstance(disc, str) or not members:
            continue
        tags: dict[str, set[str]] = {}
        for member in members:
            field = getattr(member, "model_fields", {}).get(disc)
            if field is None:
                continue
            for tag in typing.get_args(field.annotation):
                tags[tag] = set(member.model_fields)
        out[name] = (disc, tags)
    return out


_UNIONS = _union_fields()
_DEFAULTS = JobSpec()


class PathError(ValueError):
    """A dotted path that does not lead anywhere in the spec.

    ``str()`` is ``"<path>: <why>"``. ``parent`` is the dotted path of the value the walk
    stopped at (``""`` for the spec itself), ``found`` that value, and ``key`` the part
    of the path that could not be entered or written there — enough for a caller to say
    it in its own words (the CLI names the ``--set`` it came from).
    """

    def __init__(self, message: str, *, parent: str, key: str, found: Any) -> None:
        super().__init__(message)
        self.parent = parent
        self.key = key
        self.found = found


def apply(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each value of ``params`` written at its dotted path.

    Switching a union's tag (``optimizer.name``) keeps only the fields the new member
    has, so ``momentum`` from an SGD base does not follow the switch to Adam. Missing
    objects on the way are created (``regularization.early_stopping.patience``), and a
    union the base left out is written with its default member named, since the API
    refuses a union without its tag. Raises PathError for a path that cannot be written
    (an index past a list's end, a field inside a number).
    """
    spec = copy.deepcopy(base)

    # Tags first, so the fields set after them land on the new member.
    def is_tag(path: str) -> bool:
        parts = path.split(".")
        return len(parts) == 2 and parts[0] in _UNIONS and parts[1] == _UNIONS[parts[0]][0]

    order = sorted(params, key=lambda p: (not is_tag(p), p.count("."), p))
    for path in order:
        parts = path.split(".")
        node: Any = spec
        for i, part in enumerate(parts[:-1]):
            if i == 0 and part in _UNIONS and spec.get(part) is None:
                # The base left this union to its default member: name that member.
                disc = _UNIONS[part][0]
                spec[part] = {disc: getattr(getattr(_DEFAULTS, part), disc)}
            if isinstance(node, dict) and node.get(part) is None and parts[i + 1].isdigit():
                # An index into a list the spec left to its default: start from that.
                node[part] = _default(spec, parts[: i + 1]) or []
            node = _step(node, part, parts[: i + 1], create=True)
        _set(node, parts[-1], params[path], path)
        if is_tag(path):
            keep = _UNIONS[parts[0]][1].get(params[path])
            if keep is not None and isinstance(spec.get(parts[0]), dict):
                spec[parts[0]] = {k: v for k, v in spec[parts[0]].items() if k in keep}
    return spec


def _step(node: Any, part: str, where: list[str], *, create: bool) -> Any:
    parent = ".".join(where[:-1])
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise PathError(
                f"{'.'.join(where)}: no item {part} in a list of {len(node)}",
                parent=parent,
                key=part,
                found=node,
            )
        return node[int(part)]
    if not isinstance(node, dict):
        raise PathError(
            f"{'.'.join(where)}: {parent} is not an object", parent=parent, key=part, found=node
        )
    if node.get(part) is None and create:
        node[part] = {}
    return node[part]


def _set(node: Any, part: str, value: Any, path: str) -> None:
    parent = path.rpartition(".")[0]
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise PathError(
                f"{path}: no item {part} in a list of {len(node)}",
                parent=parent,
                key=part,
                found=node,
            )
        node[int(part)] = value
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise PathError(f"{path}: its parent is not an object", parent=parent, key=part, found=node)


def _default(spec: dict[str, Any], parts: list[str]) -> Any:
    """The spec language's default for the field at ``parts`` (a list such as
    ``optimizer.betas``), as the member the spec names would fill it in; None if none."""
    model: Any = JobSpec
    node: Any = spec
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return None
        info = fields[part]
        node = node.get(part) if isinstance(node, dict) else None
        members = [m for m in typing.get_args(info.annotation) if hasattr(m, "model_fields")]
        if node is None and hasattr(
            default := info.get_default(call_default_factory=True), "model_fields"
        ):
            # Left out of the spec: the member its default is.
            model, node = type(default), default.model_dump(mode="json")
        elif part in _UNIONS and isinstance(node, dict):
            disc, _ = _UNIONS[part]
            tag = node.get(disc)
            model = next(
                (m for m in members if tag in typing.get_args(m.model_fields[disc].annotation)),
                None,
            )
        elif members:
            model = members[0]
        elif hasattr(info.annotation, "model_fields"):
            model = info.annotation
        else:
            value = info.get_default(call_default_factory=True)
            return list(value) if isinstance(value, tuple | list) else None
    return None
