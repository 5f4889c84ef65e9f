"""``python -m service.cli``: the ``descent`` command."""

from service.cli.main import app

app()
