"""The ``descent`` command line.

User commands — they talk to the API over HTTP through :mod:`service.client` and import
nothing of the server but the spec language and the API's response schemas:

- ``jobs``     ``descent job submit|follow|list|show|cancel|metrics|plot|result``
- ``sweeps``   ``descent sweep start|compare|list|follow|show|cancel|plot``
- ``lab``      ``descent lab lr-find|landscape|plot``
- ``catalog``  ``descent catalog``
- ``fleet``    ``descent workers`` (admins: the workers and queues)
- ``follow``   following a job; ``board`` following a sweep (its live table)
- ``specfile`` spec files and ``--set``; ``output`` every way they write;
  ``options`` their shared options, exit codes and client; ``groups`` the command tree's
  flat aliases (``descent submit``, ``descent sweep-show`` …)

Server commands — they run the service, importing its modules inside each command:

- ``server``   ``descent up|api|worker|migrate|db-check``
- ``admin``    ``descent admin …``, ``descent token``

``main`` assembles the app. ``app`` is loaded on first use, so that importing one of
these modules (``descent.load_spec`` is :func:`service.cli.specfile.load_spec`) does not
build the whole command tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def __getattr__(name: str) -> Any:
    if name == "app":
        from service.cli.main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
