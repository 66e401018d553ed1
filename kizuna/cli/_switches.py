"""`kizuna scenario list`, `kizuna scenario on|pause|off NAME` and `kizuna scenario test NAME`: the
scenario switches and test sends of docs/measures.md#switches from the command line.

Thin: each command calls one `Workspace` method and prints what it returns. An act is recorded in
the audit as the machine's user (``user@host``): the command line has no login of its own.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kizuna.cli._app import AsOfOption, DbOption, DirOption, FormatOption, LangOption, _as_of, _check, mistake
from kizuna.cli._render import console, print_json, show_rows
from kizuna.cli._scenarios import scenario_app
from kizuna.i18n import label, text

if TYPE_CHECKING:
    from kizuna.scenarios import ScenarioState

NameArgument = Annotated[str, typer.Argument(help="The scenario's name (its file name without .yaml).")]


def _who() -> str:
    """Who switches from the command line: the machine's user and host (the web app's users log in)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"


def _steps(state: ScenarioState, lang: str) -> str:
    parts = []
    for step in state.scenario.steps:
        wait = text("switch.wait", lang, n=step.wait_days) + " " if step.wait_days else ""
        parts.append(wait + label(f"channel_{step.channel}", lang))
    return " → ".join(parts)


def _when(ts: int | None, timezone: str) -> str | None:
    import zoneinfo

    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _state_word(state: ScenarioState, lang: str) -> str:
    word = label(f"switch.state_{state.state}", lang)
    return word if state.in_file else f"{word} ({label('switch.off_in_file_note', lang)})"


@scenario_app.command("list")
def scenario_list(
    directory: DirOption = Path("."),
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Every scenario with its state (on, paused, off), title and steps, and who switched it when."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, create=False, read_only=True) as ws:
        states = ws.scenario_states()
        timezone = ws.settings.business.timezone
    rows = [{"name": s.name, "title": s.scenario.label(lang),
             "state": s.state if fmt == "json" else _state_word(s, lang), "in_file": s.in_file,
             "steps": _steps(s, lang), "changed_by": s.changed_by, "changed_at": _when(s.changed_ts, timezone)}
            for s in states]
    if fmt == "json":
        print_json(rows)
        return
    columns = [(key, label(f"switch.column_{key}", lang))
               for key in ("name", "title", "state", "steps", "changed_by", "changed_at")]
    show_rows(rows, columns, fmt, title=label("switch.title", lang))


def _switch(name: str, state: str, directory: Path, lang: str) -> None:
    from kizuna.workspace import Workspace

    _check(lang)
    with Workspace.open(directory, create=False, read_only=True) as ws:
        before = next((s.state for s in ws.scenario_states() if s.name == name), None)
        done = ws.switch_scenario(name, state, user=_who())
    words = {"title": done.scenario.label(lang), "state": label(f"switch.state_{state}", lang)}
    console.print(text("switch.unchanged" if before == state else "switch.switched", lang, **words),
                  markup=False, highlight=False)
    if done.cancelled:
        console.print(text("switch.cancelled", lang, count=done.cancelled, n=done.cancelled), markup=False,
                      highlight=False)


@scenario_app.command("on")
def scenario_on(name: NameArgument, directory: DirOption = Path("."), lang: LangOption = "ja") -> None:
    """Switch a scenario on: `kizuna run` evaluates and sends it again, from today (nothing of the time
    it was paused or off is caught up)."""
    _switch(name, "on", directory, lang)


@scenario_app.command("pause")
def scenario_pause(name: NameArgument, directory: DirOption = Path("."), lang: LangOption = "ja") -> None:
    """Pause a scenario: nothing is evaluated or sent; its messages already scheduled go once it is on again."""
    _switch(name, "paused", directory, lang)


@scenario_app.command("off")
def scenario_off(name: NameArgument, directory: DirOption = Path("."), lang: LangOption = "ja") -> None:
    """Switch a scenario off: nothing is evaluated or sent, and its messages not yet sent are cancelled."""
    _switch(name, "off", directory, lang)


@scenario_app.command("test")
def scenario_test(
    name: NameArgument,
    to: Annotated[str | None, typer.Option("--to", help="Your own e-mail address (an e-mail step).")] = None,
    line: Annotated[str | None, typer.Option("--line", help="Your own LINE user id (a LINE step).")] = None,
    customer: Annotated[str | None, typer.Option(
        "--customer", help="Render it for this customer (default: the first of the audience).")] = None,
    step: Annotated[int, typer.Option("--step", help="Which step (1 = the first).")] = 1,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
) -> None:
    """Send yourself one step's message, rendered for a customer, through the real channel: marked as a
    test (【テスト】 / [TEST]), outside the send ledger, never to the customer."""
    from kizuna.workspace import Workspace

    _check(lang)
    if (to is None) == (line is None):
        raise mistake("test_address")
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        done = ws.send_test(name, user=_who(), step=step, customer_id=customer, email=to, line_user_id=line,
                            as_of=_as_of(as_of))
        title = next(s.label(lang) for s in ws.scenarios() if s.name == name)
    console.print(text("switch.test_sent", lang, address=done.address, title=title, step=done.step,
                       customer=done.customer_id), markup=False, highlight=False)
