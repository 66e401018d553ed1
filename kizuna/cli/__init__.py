"""Command line: `kizuna …`, a thin shell over `kizuna.Workspace`."""

from __future__ import annotations

import sys

from kizuna._errors import KizunaError
from kizuna.cli._app import app
from kizuna.cli._render import error_console

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: a user's mistake is one line on stderr and exit status 1, never a traceback."""
    try:
        app(standalone_mode=False)
    except KizunaError as exc:
        error_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
