"""How the command tree keeps the flat names scripts use.

The commands are grouped (``descent job show``, ``descent sweep follow``), and every name
they had before the groups — ``descent show``, ``descent sweep-follow`` — still works as
a hidden alias of the same function: the same options, output and exit codes.

``descent sweep SPEC`` was a command and ``sweep`` is now a group: :class:`DefaultGroup`
hands a first argument that names none of its commands (a spec file, ``-``, an option)
to its default command, ``start``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

#: Set while a command runs under one of its flat names, so that what it suggests next
#: is in the same words (`descent sweep-cancel ID` or `descent sweep cancel ID`).
_FLAT: ContextVar[bool] = ContextVar("descent_flat_alias", default=False)

#: The flat name of each grouped command, for the hints it prints.
FLAT_NAMES = {
    "job submit": "submit",
    "job follow": "follow",
    "job list": "jobs",
    "job show": "show",
    "job cancel": "cancel",
    "job metrics": "metrics",
    "job plot": "plot",
    "job result": "result",
    "job tag": "tag",
    "job note": "note",
    "project list": "projects",
    "sweep start": "sweep",
    "sweep compare": "compare",
    "sweep list": "sweeps",
    "sweep follow": "sweep-follow",
    "sweep show": "sweep-show",
    "sweep cancel": "sweep-cancel",
    "sweep plot": "sweep-plot",
    "lab lr-find": "lr-find",
    "lab landscape": "landscape",
    "lab plot": "lab-plot",
}


class DefaultGroup(TyperGroup):
    """A group whose first argument, when it names none of its commands (nor asks for
    help), goes to :attr:`default_command` with the rest: ``descent sweep spec.yaml``
    runs ``descent sweep start spec.yaml``. A spec file named like one of the group's
    commands needs the explicit ``start``; a word that is no file but close to a
    command's name (``descent sweep shwo ID``) is told as the misspelt command it is."""

    default_command = "start"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not self._names_a_command(args[0], ctx):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def _names_a_command(self, word: str, ctx: Any) -> bool:
        if word in self.commands or word in ctx.help_option_names:
            return True
        misspelt = get_close_matches(word, list(self.commands), n=1)
        return bool(misspelt) and not word.startswith("-") and not Path(word).exists()


def command(name: str) -> str:
    """``descent <name>`` as the user is typing the commands: the grouped name, or the
    flat one while a flat alias runs."""
    return f"descent {FLAT_NAMES.get(name, name) if _FLAT.get() else name}"


def add_flat_alias(
    app: typer.Typer, grouped: str, function: Callable[..., Any], name: str | None = None
) -> None:
    """Register ``function`` as ``descent <name>`` (default: the flat name of
    ``grouped``), hidden from --help."""

    @functools.wraps(function)
    def flat(*args: Any, **kwargs: Any) -> Any:
        token = _FLAT.set(True)
        try:
            return function(*args, **kwargs)
        finally:
            _FLAT.reset(token)

    app.command(name or FLAT_NAMES[grouped], hidden=True)(flat)
