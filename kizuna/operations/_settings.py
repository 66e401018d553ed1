"""[operations] and [web] of kizuna.toml: where the operational records are kept, and the address
the signed links of messages point at."""

from typing import Annotated

from pydantic import Field

from kizuna.settings import Allowed, HttpUrl, Section

__all__ = ["OperationsSettings", "WebSettings"]

PostgresUrl = Annotated[str, Field(pattern=r"^(postgres(ql)?://\S+)?$"),
                        Allowed("settings.allowed_ops_url")]


class OperationsSettings(Section):
    """The send ledger, consents, survey answers, users."""

    url: PostgresUrl = Field("", description=(
        "Empty: kizuna-ops.sqlite3 in this folder (one machine). Several web servers and a cron host sharing this "
        "workspace: a PostgreSQL database for all of them (one of their own, not the store's), e.g. "
        '"postgres://user:pass@db.internal:5432/kizuna_ops"'))


class WebSettings(Section):
    """The web app of `kizuna serve`, as customers reach it."""

    public_url: HttpUrl = Field("http://127.0.0.1:8000",
                                description="where customers reach `kizuna serve`: unsubscribe, survey, tracked links")
