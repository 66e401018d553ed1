"""Command line: `kizuna …`, a thin shell over `kizuna.Workspace`."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from kizuna._errors import KizunaError
from kizuna.cli._app import app
from kizuna.cli._render import error_console

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: a user's mistake is one line on stderr and exit status 1, never a traceback."""
    try:
        app(standalone_mode=False)
    except KizunaError as exc:
        # escape: messages quote TOML like [columns], which Rich would take for markup and drop
        error_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:  # Ctrl-C at a prompt
        sys.exit(130)
    except typer.TyperException as exc:  # a usage mistake: Typer prints it with the usage line
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            error_console.print(f"[red]error:[/red] {escape(exc.format_message())}", highlight=False)
        sys.exit(exc.exit_code)
