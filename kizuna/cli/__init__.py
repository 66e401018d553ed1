"""Command line: `kizuna …`, a thin shell over `kizuna.Workspace`."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

import typer
from rich.markup import escape

from kizuna._errors import KizunaError
from kizuna.cli import (
    _calls,  # noqa: F401  (registers calls import, calls results)
    _campaign,  # noqa: F401  (registers campaign list, show, send, preview)
    _demo,  # noqa: F401  (registers demo)
    _migration,  # noqa: F401  (registers migration)
    _predict,  # noqa: F401  (registers predict, priority, backtest)
    _privacy,  # noqa: F401  (registers forget)
    _ranks,  # noqa: F401  (registers ranks suggest)
    _report,  # noqa: F401  (registers report)
    _scenarios,  # noqa: F401  (registers run, scenario preview, results)
    _segment,  # noqa: F401  (registers segment list, show, count, save, delete)
    _switches,  # noqa: F401  (registers scenario list, on, pause, off, test)
    _web,  # noqa: F401  (registers serve, user add)
)
from kizuna.cli._app import app, current_lang
from kizuna.cli._render import error_console
from kizuna.i18n import label, say, text

__all__ = ["app", "main", "run"]


def main() -> None:
    """Entry point: a user's mistake is one line on stderr, never a traceback.

    Exit status 1 for what kizuna refuses (`KizunaError`), 2 for a usage mistake (an unknown
    option, a value that is not a date), as click does, 130 for Ctrl-C.

    Every file and folder a command creates is its user's alone (umask 077: 0600 files, 0700
    folders): the store, the operational records, rejects, outbox lists and exports hold
    customers' personal data, and the records the workspace secret.
    """
    os.umask(0o077)
    try:
        status = app(standalone_mode=False, prog_name="kizuna")
    except KizunaError as exc:
        _error(say(exc, current_lang()))  # in the command's language (--lang, else [business] lang)
        sys.exit(1)
    except typer.Abort:  # Ctrl-C at a prompt
        sys.exit(130)
    except typer.TyperException as exc:
        _usage_error(exc)
    # without standalone mode, click returns the status of an early exit (Ctrl-C: 130) instead
    if isinstance(status, int) and status:
        sys.exit(status)


def run() -> NoReturn:
    """The `kizuna` command (`python -m kizuna`, the installed script): `main`, then the process ends
    without Python's teardown of every module and object, which after a large `predict` is a visible
    part of the command's time spent freeing what the end of the process frees anyway (bench/README.md)
    — once the exit handlers have run and the output is written, and only when no other thread is
    still at work (else the usual exit, which waits for it). In-process callers (tests) call `main`,
    which returns."""
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):  # sys.exit("text") prints the text, exit status 1
        print(code, file=sys.stderr)
        code = 1
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others:
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter would run before its teardown (the standard library's own)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader that went away (`kizuna … | head`): what is left of the output has nowhere to go
        pass
    os._exit(code or 0)


def _usage_error(exc: typer.TyperException) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # `kizuna` alone: the help is the answer
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)
    # our own checks raise BadParameter without a parameter: their message names the option
    own = isinstance(exc, typer.BadParameter) and exc.param is None and exc.param_hint is None
    message = exc.message if own else exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message = text("usage.with_help", current_lang(), message=message.rstrip("."), command=ctx.command_path)
    _error(message)
    sys.exit(getattr(exc, "exit_code", 2))


def _error(message: str) -> None:
    # escape: messages quote TOML like [columns] and the user's own values, which Rich would
    # take for markup; one line however long (soft_wrap), as scripts and logs expect
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    prefix = escape(label("error.prefix", current_lang()))
    error_console.print(f"[red]{prefix}:[/red] {escape(message)}", highlight=False, soft_wrap=True)
