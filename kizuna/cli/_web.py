"""`kizuna serve`, `kizuna user add` and `kizuna user passwd`: the web app from the command line.

Starlette, uvicorn and argon2 load inside the commands, so `kizuna --help` does not pay for them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kizuna.cli._app import DirOption, LangOption, _check, app, mistake, speak
from kizuna.cli._render import console
from kizuna.settings import require_workspace

if TYPE_CHECKING:
    from kizuna.operations import Operations

user_app = typer.Typer(help="Users of the web app (kizuna serve).", no_args_is_help=True)
app.add_typer(user_app, name="user")

ROLE_HELP = "viewer: sees figures and lists with contact data hidden; operator: sees contact data too."


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    forwarded_allow_ips: Annotated[
        str, typer.Option("--forwarded-allow-ips",
                          help="Proxies trusted for X-Forwarded-Proto/For (comma-separated IPs, or *): behind "
                               "such a proxy with https, the session cookie is marked Secure.")
    ] = "127.0.0.1",
    directory: DirOption = Path("."),
    lang: Annotated[str | None, typer.Option(
        "--lang", help="The pages' language until a user switches: ja or en (default: lang in the business "
                       "section of kizuna.toml).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1,
        help="Server processes sharing the port, each with its own app (default 1). One process renders pages "
             "on one core; sessions and the login limit are shared through the operational records. A command "
             "that writes the store (import, analyze, run, the call form) waits until every process has let go "
             "of the file at once, so it waits longer the more processes are busy.")] = None,
) -> None:
    """Start the web dashboard on this workspace (log in with a user from `kizuna user add`)."""
    import logging
    import os

    import uvicorn

    from kizuna.web import create_app

    if lang is not None:
        _check(lang)
    speak(lang, directory)
    workers = workers or 1
    os.umask(0o077)  # what the app writes (the operational records) is its user's alone
    # built here once in any case: a workspace that is missing or readable by others is refused in one line
    application = create_app(directory, lang=lang, private_files=True, warm=workers == 1)
    if application.state.kizuna.operations.user_count() == 0:
        console.print("no users yet: add one with `kizuna user add NAME --role operator`", markup=False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # uvicorn's access log prints paths and query strings (customer ids, search text): ours names the page
    options: dict = {"host": host, "port": port, "access_log": False, "proxy_headers": True,
                     "forwarded_allow_ips": forwarded_allow_ips, "log_level": "info", "server_header": False}
    if workers == 1:
        uvicorn.run(application, **options)
        return
    application.state.kizuna.operations.close()
    # each worker is a new Python process (spawned) that builds its own app from these variables
    os.environ[_SERVE_DIR] = str(directory.resolve())
    os.environ[_SERVE_LANG] = lang or ""
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **options)


_SERVE_DIR, _SERVE_LANG = "KIZUNA_SERVE_DIR", "KIZUNA_SERVE_LANG"


def worker_app() -> object:
    """The app of one `kizuna serve --workers N` process (uvicorn's factory), on the workspace the
    command was given."""
    import logging
    import os

    from kizuna.web import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return create_app(Path(os.environ[_SERVE_DIR]), lang=os.environ.get(_SERVE_LANG) or None, private_files=True)


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name to log in with.")],
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)] = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    directory: DirOption = Path("."),
    lang: LangOption = "ja",
) -> None:
    """Add a user of the web app, or change an existing user's role and password."""
    from kizuna.web import ROLES, hash_password

    _check(lang)
    if role not in ROLES:
        raise mistake("one_of", option="--role", choices=list(ROLES))
    if not name.strip() or len(name) > 64:
        raise mistake("user_name_length")
    require_workspace(directory)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    hashed = hash_password(password)
    operations = _operations(directory)
    try:
        operations.add_user(name.strip(), role, hashed)  # an existing user's sessions end
    finally:
        operations.close()
    console.print(f"{name.strip()} ({role}) ✓", markup=False)


@user_app.command("passwd")
def user_passwd(
    name: Annotated[str, typer.Argument(help="The user whose password changes.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from the first line of standard input.")
    ] = False,
    directory: DirOption = Path("."),
    lang: LangOption = "ja",
) -> None:
    """Change a user's password; every session of theirs ends (logged out in every browser)."""
    from kizuna._errors import KizunaError
    from kizuna.web import hash_password

    _check(lang)
    require_workspace(directory)
    operations = _operations(directory)
    try:
        if operations.user(name.strip()) is None:
            raise KizunaError.keyed("error.no_user", name=repr(name.strip()), folder=str(directory.resolve()),
                                    plain=name.strip())
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        if not operations.set_password(name.strip(), hash_password(password)):
            raise KizunaError.keyed("error.user_removed", name=repr(name.strip()))
    finally:
        operations.close()
    console.print(f"{name.strip()}: password changed, sessions ended ✓", markup=False)


def _operations(directory: Path) -> Operations:
    """The workspace's operational records, where its [operations] url says."""
    from kizuna.operations import Operations
    from kizuna.settings import SETTINGS_FILE
    from kizuna.workspace import Settings

    return Operations.open(Settings.load(directory / SETTINGS_FILE).operations.url, directory)
