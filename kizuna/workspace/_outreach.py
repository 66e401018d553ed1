"""The workspace's saved segments (segments/) and one-off campaigns (campaigns/): `Outreach`, the part
of `Workspace` that reads and writes those files and calls `kizuna.scenarios` with what each
function needs — counts, exports, plans, sends, previews, results. Every change an operator makes
through it (a segment saved or deleted, a campaign saved, scheduled or sent) is an audit line
naming who (`by`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kizuna._errors import KizunaError, Phrase

if TYPE_CHECKING:
    import ibis

    from kizuna.scenarios import Campaign, CampaignPlan, RunContext, RunReport, SavedSegment, SegmentCount
    from kizuna.workspace._settings import Settings

__all__ = ["Outreach"]


class Outreach:
    """Saved segments and campaigns of a workspace (mixed into `Workspace`)."""

    path: Path
    settings: Settings

    if TYPE_CHECKING:  # what `Workspace` provides
        from kizuna.operations import Operations
        from kizuna.store import Store

        store: Store
        operations: Operations

        def run_context(self) -> RunContext: ...
        def as_of(self, override: dt.date | None = None) -> dt.date: ...
        def scenarios(self) -> list: ...
        def scores_as_of(self) -> dt.date | None: ...
        def _own_files(self) -> list[Path]: ...

    # -- saved segments ---------------------------------------------------------------------------
    @property
    def segments_dir(self) -> Path:
        from kizuna.scenarios import SEGMENT_FOLDER

        return self.path / SEGMENT_FOLDER

    def saved_segments(self) -> list[SavedSegment]:
        """The saved segments in segments/, by name (ScenarioError names a file that is wrong)."""
        from kizuna.scenarios import load_segments

        return load_segments(self.segments_dir)

    def saved_segment(self, name: str) -> SavedSegment:
        from kizuna.scenarios import find_segment

        return find_segment(self.segments_dir, name)

    def _population(self) -> tuple[ibis.Table, dict[str, ibis.Table], dict[str, dict[str, bool]]]:
        """What conditions are read over: the customers' scores and predictions, the canonical tables,
        the consents the operational records hold."""
        from kizuna.scenarios import segment_population

        has = self.store.has_table
        population = segment_population(self.store.table("customer_scores") if has("customer_scores") else None,
                                        self.store.table("customer_predictions") if has("customer_predictions")
                                        else None)
        tables = self.run_context().tables()
        consents = {channel: self.operations.consents(channel) for channel in ("email", "line", "dm")}
        return population, tables, consents

    def count_segment(self, where: Sequence[str] | SavedSegment | str, *, source: str = "--where") -> SegmentCount:
        """How many customers meet the conditions `where` (texts such as "churn_risk >= 0.5", or a saved
        segment, or its name), their lifetime revenue and its share: one query in the engine."""
        from kizuna.scenarios import SavedSegment, count_segment, parse_conditions

        if isinstance(where, str):
            where = self.saved_segment(where)
        if isinstance(where, SavedSegment):
            conditions, origin = where.conditions, where
        else:
            conditions = parse_conditions(list(where), source)
            origin = _Source(Path(source))
        population, tables, consents = self._population()
        with self.store.engine_errors():
            return count_segment(population, conditions, source=origin, tables=tables, consents=consents)

    def save_segment(self, name: str, where: Sequence[str], *, title: Mapping[str, str] | None = None,
                     by: str | None = None) -> SavedSegment:
        """Write segments/NAME.yaml with these conditions and title ({ja, en}), checked first."""
        from kizuna.operations import record_audit
        from kizuna.scenarios import save_segment

        segment = save_segment(self.segments_dir, name, list(where), title=title)
        record_audit(self.operations, by or _login(), "segment.save", name)
        return segment

    def segment_users(self, name: str) -> list[str]:
        """The scenarios (audience.segment) and campaigns (segment) that use the saved segment `name`."""
        users = [f"scenarios/{s.path.name}" for s in self.scenarios()
                 if s.segment is not None and s.segment.name == name]
        return users + [f"campaigns/{c.path.name}" for c in self.campaigns() if c.segment == name]

    def delete_segment(self, name: str, *, by: str | None = None) -> Path:
        """Remove segments/NAME.yaml, unless a scenario or a campaign uses it (then a KizunaError naming them)."""
        from kizuna.operations import record_audit
        from kizuna.scenarios import delete_segment

        self.saved_segment(name)
        users = self.segment_users(name)
        if users:
            raise KizunaError(Phrase.of("saved_segment.in_use", name=name, users=", ".join(users)))
        path = delete_segment(self.segments_dir, name)
        record_audit(self.operations, by or _login(), "segment.delete", name)
        return path

    def segment_choices(self) -> dict[str, list[str]]:
        """The values the segment builder offers for its choice fields that come from this shop's data:
        products (`products_bought`: product_id, by name), sales channels, RFM rank labels."""
        products = self.store.table("products")
        orders = self.store.table("orders")
        with self.store.engine_errors():
            ids = products.order_by("product_id").select("product_id", "name").to_pyarrow().to_pylist()
            channels = orders.filter(orders.channel.notnull()).select("channel").distinct().order_by("channel")
            channel_list = channels.to_pyarrow().column("channel").to_pylist()
        return {"products_bought": [str(r["product_id"]) for r in ids],
                "product_names": [str(r["name"] or r["product_id"]) for r in ids],
                "order_channels": [str(c) for c in channel_list],
                "rfm_rank": [rule.label for rule in self.settings.analysis.rfm_ranks] + ["other"]}

    def export_saved_segment(self, name: str, path: Path | str | None, *, fmt: str = "csv",
                             lang: str = "ja") -> int:
        """Write the customer list of the saved segment `name` as `kizuna export` writes a segment's
        (`path` None: csv on standard output); returns its customers."""
        from kizuna.analytics import EXPORT_COLUMNS, PREDICTION_EXPORT_COLUMNS
        from kizuna.exporting import check_output, write_customer_list
        from kizuna.scenarios import segment_members

        out = check_output(path, fmt, self._own_files())
        segment = self.saved_segment(name)
        population, tables, consents = self._population()
        scored = [c for c in population.columns if c in (*EXPORT_COLUMNS, *PREDICTION_EXPORT_COLUMNS)]
        members = segment_members(population, segment.conditions, source=segment, tables=tables, consents=consents,
                                  columns=scored)
        customers = tables["customers"]
        contacts = [c for c in EXPORT_COLUMNS if c in customers.columns and c not in scored]
        joined = members.inner_join(customers.select("customer_id", *contacts), "customer_id")
        wanted = [c for c in (*EXPORT_COLUMNS, *PREDICTION_EXPORT_COLUMNS) if c in joined.columns]
        with self.store.engine_errors():
            chosen = joined.select(*wanted)
            rows = chosen.order_by([chosen.ltv_revenue.desc(), chosen.customer_id]).to_pyarrow()
        try:
            return write_customer_list(rows, segment.label(lang), out, fmt, lang, as_of=self.scores_as_of(),
                                       business=self.settings.business.name)
        except OSError as exc:
            raise KizunaError(Phrase.of("saved_segment.cannot_write", path=str(path),
                                        problem=exc.strerror or str(exc))) from None

    # -- campaigns --------------------------------------------------------------------------------
    @property
    def campaigns_dir(self) -> Path:
        from kizuna.scenarios import CAMPAIGN_FOLDER

        return self.path / CAMPAIGN_FOLDER

    def campaigns(self) -> list[Campaign]:
        """The campaigns in campaigns/, by name (ScenarioError names a file that is wrong)."""
        from kizuna.scenarios import load_campaigns

        return load_campaigns(self.campaigns_dir)

    def campaign(self, name: str) -> Campaign:
        from kizuna.scenarios import find_campaign

        return find_campaign(self.campaigns_dir, name)

    def write_campaign(self, name: str, text: str, *, by: str | None = None, action: str = "campaign.save",
                       count: int | None = None) -> Campaign:
        """Write campaigns/NAME.yaml from `text` once it reads as a campaign; an audit line names `by`
        (and `count`, the messages it concerns, when known)."""
        from kizuna.operations import record_audit
        from kizuna.scenarios import write_campaign

        campaign = write_campaign(self.campaigns_dir, name, text)
        record_audit(self.operations, by or _login(), action, name, count)
        return campaign

    def schedule_campaign(self, name: str, send_at: dt.datetime | None, *, by: str | None = None,
                          count: int | None = None) -> Campaign:
        """Set (or, with None, remove) the campaign's send_at: the first `kizuna run` from then sends it
        (`count`: the messages it would send, for the audit line)."""
        from kizuna.scenarios import campaign_text

        campaign = self.campaign(name)
        values = campaign_values(campaign)
        values["send_at"] = send_at.isoformat(sep=" ", timespec="minutes") if send_at else None
        return self.write_campaign(name, campaign_text(values), by=by, count=count,
                                   action="campaign.schedule" if send_at else "campaign.unschedule")

    def campaign_plan(self, name: str) -> CampaignPlan:
        """Who sending the campaign now would reach: members, held out, per variant, reachable."""
        from kizuna.scenarios import campaign_plan

        with self.store.engine_errors():
            return campaign_plan(self.run_context(), self.campaign(name))

    def send_campaign(self, name: str, *, dry_run: bool = False, now: dt.datetime | None = None,
                      transports: Mapping[str, Callable[[], Any]] | None = None, by: str | None = None,
                      lang: str | None = None) -> RunReport:
        """Send the campaign now, exactly once (`kizuna.scenarios.send_campaign`)."""
        from kizuna.scenarios import send_campaign

        with self.store.engine_errors():
            return send_campaign(self.run_context(), self.campaign(name), as_of=self.as_of(), now=now,
                                 dry_run=dry_run, transports=transports, lang=lang, by=by or _login())

    def campaign_state(self, name: str) -> dict[str, Any]:
        from kizuna.scenarios import campaign_state

        return campaign_state(self.run_context(), self.campaign(name))

    def preview_campaign(self, name: str, customer_id: str, *, variant: int = 1, lang: str | None = None,
                         replace: Mapping[str, object] | None = None) -> dict[str, str]:
        """One variant's message for one customer, rendered as it would be sent (nothing is recorded;
        `replace`: fields shown with these values instead, e.g. masked contact data)."""
        from kizuna.scenarios import preview_campaign

        with self.store.engine_errors():
            return preview_campaign(self.run_context(), self.campaign(name), customer_id, variant=variant,
                                    as_of=self.as_of(), lang=lang, replace=replace)

    def send_campaign_test(self, name: str, *, user: str, variant: int = 1, customer_id: str | None = None,
                           email: str | None = None, line_user_id: str | None = None,
                           transports: Mapping[str, Callable[[], Any]] | None = None):
        """Send one variant, rendered for a customer, to the operator's own address, marked as a test and
        outside the ledger (`kizuna.scenarios.send_test` on the campaign as the dispatcher takes it)."""
        from kizuna.scenarios import send_test

        campaign = self.campaign(name)
        with self.store.engine_errors():
            return send_test(self.run_context(), [campaign.as_scenario()], campaign.ledger_name, user=user,
                             step=variant, customer_id=customer_id, email=email, line_user_id=line_user_id,
                             as_of=self.as_of(), transports=transports)

    def campaign_results(self, rows: list[dict], *, as_of: dt.date | None = None, lang: str = "ja") -> list[dict]:
        """`kizuna results`' rows of the campaigns, from `scenario_results`' rows of their ledger names."""
        from kizuna.operations import Ledger
        from kizuna.scenarios import campaign_results

        try:
            campaigns = self.campaigns()
        except KizunaError:  # a campaign file being edited: its counts all the same, without its words
            campaigns = []
        with self.store.engine_errors():
            return campaign_results(campaigns, rows, ledger=Ledger(self.operations), tables=self.run_context().tables(),
                                    settings=self.settings, as_of=as_of, lang=lang)


def campaign_values(campaign: Campaign) -> dict[str, Any]:
    """A campaign's fields as `kizuna.scenarios.campaign_text` takes them (for rewriting its file)."""
    values: dict[str, Any] = {
        "title": campaign.title, "segment": campaign.segment, "channel": campaign.channel, "lang": campaign.lang,
        "subject": campaign.subject, "body": campaign.body,
        "send_at": campaign.send_at.isoformat(sep=" ", timespec="minutes") if campaign.send_at else None,
        "holdout": campaign.holdout, "goal": {"kind": campaign.goal.kind, "days": campaign.goal.days},
        "budget": campaign.budget,
    }
    if campaign.ab:
        values["ab"] = [{"name": v.name, "share": v.share,
                         "subject": v.subject if v.subject != campaign.subject else None,
                         "body": v.body if v.body != campaign.body else None} for v in campaign.variants]
    return values


class _Source:
    """Where typed conditions came from, for their errors (`--where`, the web form)."""

    where_field = "where"

    def __init__(self, path: Path) -> None:
        self.path = path


def _login() -> str:
    """Who acts from the command line, for the audit line: the machine's user and host (the web app
    passes its logged-in user instead)."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"
