"""`kizuna campaign list|show|send|preview`: one-off campaigns (campaigns/NAME.yaml,
docs/measures.md#campaigns) from the command line.

Thin: each command calls one `Workspace` method and prints what it returns. Before a send the
command shows how many messages go on which channel; more than `[delivery] confirm_over` need
--yes. A send is an audit line naming the machine's user and host (the web app passes its user).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kizuna.cli._app import DbOption, DirOption, FormatOption, LangOption, _check, app, mistake
from kizuna.cli._render import console, print_json, show_rows
from kizuna.i18n import label, say

if TYPE_CHECKING:
    from kizuna.scenarios import Campaign, CampaignPlan, RunReport

campaign_app = typer.Typer(help="One-off campaigns (campaigns/NAME.yaml): who they reach, a preview, one send "
                                "through the send ledger.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")

NameArgument = Annotated[str, typer.Argument(help="The campaign's name (its file name without .yaml).")]


def _channel(channel: str, lang: str) -> str:
    return label(f"channel_{channel}", lang)


def _when(at: dt.datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at is not None else ""


@campaign_app.command("list")
def campaign_list(
    directory: DirOption = Path("."),
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Every campaign: its state (draft, scheduled, sent), segment, channel, time, and what the ledger holds."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, create=False, read_only=True) as ws:
        rows = [{"name": c.name, "title": c.label(lang), "segment": c.segment, "channel": c.channel,
                 "send_at": _when(c.send_at), **ws.campaign_state(c.name)} for c in ws.campaigns()]
    if fmt == "json":
        print_json(rows)
        return
    if not rows and fmt == "table":
        console.print(label("campaign.none", lang), markup=False, highlight=False)
        return
    for row in rows:
        row["state"] = label(f"campaign.state_{row['state']}", lang)
        row["channel"] = _channel(row["channel"], lang)
    show_rows(rows, [(k, label(f"campaign.column_{k}", lang))
                     for k in ("name", "title", "state", "segment", "channel", "send_at", "sent", "waiting")],
              fmt, title=label("campaign.title_list", lang))


def _plan_rows(plan: CampaignPlan, lang: str) -> list[dict]:
    rows = [{"key": "channel", "measure": label("campaign.column_channel", lang),
             "value": _channel(plan.channel, lang)},
            {"key": "members", "measure": label("campaign.plan_members", lang), "value": plan.members},
            {"key": "holdout", "measure": label("campaign.plan_holdout", lang), "value": plan.holdout}]
    for name, n in plan.variants.items():
        shown = label("campaign.plan_variant", lang).format(variant=name) if name else label("campaign.plan_treated",
                                                                                             lang)
        rows.append({"key": f"variant:{name}", "measure": shown, "value": n})
    if plan.enrolled:
        rows.append({"key": "enrolled", "measure": label("campaign.plan_enrolled", lang), "value": plan.enrolled})
        rows.append({"key": "waiting", "measure": label("campaign.plan_waiting", lang), "value": plan.waiting})
    else:
        rows.append({"key": "to_send", "measure": label("campaign.plan_to_send", lang), "value": plan.to_send})
    return rows


def _show_plan(plan: CampaignPlan, lang: str, fmt: str) -> None:
    if fmt == "json":
        return
    show_rows(_plan_rows(plan, lang), [("measure", label("measure", lang)), ("value", label("value", lang))]
              if fmt == "table" else [("key", "measure"), ("value", "value")], fmt,
              title=label("campaign.title_plan", lang))


def _describe(campaign: Campaign, lang: str) -> list[dict]:
    holdout = "" if campaign.holdout is None else f"{campaign.holdout:g}"
    rows = [("title", campaign.label(lang)), ("segment", campaign.segment),
            ("channel", _channel(campaign.channel, lang)), ("send_at", _when(campaign.send_at)), ("holdout", holdout)]
    return [{"measure": label(f"campaign.column_{k}", lang), "value": v} for k, v in rows]


@campaign_app.command("show")
def campaign_show(
    name: NameArgument,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """A campaign and who sending it now would reach: its segment's members, the held out, each variant's
    share, and how many messages the channel can take (address and consent)."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        campaign = ws.campaign(name)
        plan = ws.campaign_plan(name)
        state = ws.campaign_state(name)
    if fmt == "json":
        print_json({"name": campaign.name, "title": campaign.title, "segment": campaign.segment,
                    "channel": campaign.channel, "send_at": campaign.send_at, "holdout": campaign.holdout,
                    "variants": [{"name": v.name, "share": v.share} for v in campaign.variants], **state,
                    "plan": {"members": plan.members, "holdout": plan.holdout, "variants": plan.variants,
                             "reachable": plan.reachable, "to_send": plan.to_send}})
        return
    show_rows(_describe(campaign, lang), [("measure", label("measure", lang)), ("value", label("value", lang))], fmt)
    _show_plan(plan, lang, fmt)


def _show_report(report: RunReport, campaign: Campaign, lang: str, fmt: str) -> None:
    done = "would_send" if report.dry_run else "sent"
    columns = ["enrolled", "holdout", done, "deferred", "suppressed", "failed"]
    if not report.dry_run:
        columns += ["waiting"]
    rows = [{"variant": campaign.variants[t.step - 1].name if t.step <= len(campaign.variants) else str(t.step),
             "channel": t.channel if fmt == "json" else _channel(t.channel, lang),
             **{c: t.counts.get(c, 0) for c in columns}} for _, t in sorted(report.tallies.items())]
    if fmt == "json":
        print_json({"campaign": campaign.name, "dry_run": report.dry_run, "now": report.now, "variants": rows,
                    "files": [str(p) for p in report.files], "problems": [say(p, lang) for p in report.problems],
                    "samples": report.samples})
        return
    show_rows(rows, [("variant", label("campaign.column_variant", lang)), ("channel", label("run_channel", lang)),
                     *[(c, label(f"run_{c}", lang)) for c in columns]], fmt,
              title=label("campaign.title_dry" if report.dry_run else "campaign.title_sent", lang))
    if fmt != "table":
        return
    for path in report.files:
        console.print(f"{label('run_files', lang)}: {path}", highlight=False, markup=False)
    for problem in report.problems:
        console.print(f"! {say(problem, lang)}", highlight=False, markup=False, style="yellow")
    for sample in report.samples[:4] if report.dry_run else []:
        console.rule(f"{campaign.label(lang)} {campaign.variants[sample['step'] - 1].name} → {sample['customer_id']}",
                     style="dim")
        if sample["subject"]:
            console.print(sample["subject"], markup=False, highlight=False, style="bold")
        console.print(sample["text"].rstrip(), markup=False, highlight=False)


@campaign_app.command("send")
def campaign_send(
    name: NameArgument,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who would get what; send and record nothing.")]
    = False,
    yes: Annotated[bool, typer.Option("--yes", help="Send even when it is more messages than the delivery "
                                                    "setting confirm_over.")] = False,
    by: Annotated[str | None, typer.Option("--by", hidden=True, help="Who sends, for the audit (the web app).")]
    = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Send the campaign now, exactly once: a second send sends nothing twice (what waits for quiet hours,
    a holiday or the frequency cap goes with the next `kizuna run`)."""
    from kizuna._errors import KizunaError, Phrase
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        campaign = ws.campaign(name)
        plan = ws.campaign_plan(name)
        _show_plan(plan, lang, fmt)
        limit = ws.settings.delivery.confirm_over
        if not dry_run and not yes and plan.to_send > limit:
            raise KizunaError(Phrase.of("campaign.confirm", n=f"{plan.to_send:,}", limit=f"{limit:,}",
                                        channel=_channel(plan.channel, lang)))
        report = ws.send_campaign(name, dry_run=dry_run, by=by)
    _show_report(report, campaign, lang, fmt)


@campaign_app.command("preview")
def campaign_preview(
    name: NameArgument,
    customer: Annotated[str, typer.Option("--customer", help="The customer id to render it for.")],
    variant: Annotated[str | None, typer.Option("--variant", help="Which A/B variant (its name; default: the "
                                                                  "first).")] = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: Annotated[str | None, typer.Option("--lang", help="Message language: ja or en (default: the campaign's).")]
    = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: text, html or json.")] = "text",
) -> None:
    """Render the campaign's message for one customer, as it would be sent."""
    from kizuna.workspace import Workspace

    if lang is not None:
        _check(lang)
    if fmt not in ("text", "html", "json"):
        raise mistake("one_of", option="--format", choices=["text", "html", "json"])
    with Workspace.open(directory, store_url=db, create=False, read_only=True) as ws:
        campaign = ws.campaign(name)
        names = [v.name for v in campaign.variants]
        if variant is not None and variant not in names:
            named = [n for n in names if n]
            raise mistake("one_of", option="--variant", choices=named) if named else mistake("no_variants")
        number = names.index(variant) + 1 if variant is not None else 1
        message = ws.preview_campaign(name, customer, variant=number, lang=lang)
    if fmt == "json":
        print_json(message)
    elif fmt == "html":
        console.print(message["html"], markup=False, highlight=False, soft_wrap=True)
    else:
        if message["subject"]:
            console.print(message["subject"], markup=False, highlight=False, style="bold")
        console.print(message["text"].rstrip(), markup=False, highlight=False, soft_wrap=True)
