"""[delivery], [email] and [line] of kizuna.toml: the rules every scenario's messages follow
(docs/measures.md §4) and the channels they go through."""

from typing import Annotated

from pydantic import Field

from kizuna.settings import Allowed, Clock, HttpUrl, PositiveShare, Section, Text

__all__ = ["DeliverySettings", "EmailSettings", "LineSettings"]

SmtpUrl = Annotated[str, Field(pattern=r"^(smtps?://[^/\s]+(:[0-9]{1,5})?/?)?$"),
                    Allowed("settings.allowed_smtp_url")]


class DeliverySettings(Section):
    """The rules every scenario's messages follow (docs/measures.md §4)."""

    quiet_start: Clock = Field("21:00", description="no e-mail or LINE from this local time ...")
    quiet_end: Clock = Field("09:00", description="... to this one; such messages wait for the morning")
    skip_holidays: bool = Field(True, description="Japanese public holidays are quiet all day")
    cap_messages: Annotated[int, Field(ge=1, le=1000)] = Field(
        2, description="at most this many marketing messages per customer ...")
    cap_days: Annotated[int, Field(ge=1, le=365)] = Field(
        7, description="... within this many days, across channels (more wait)")
    holdout_share: Annotated[float, Field(ge=0, le=0.9)] = Field(
        0.1, description="each scenario's control group: evaluated, never contacted")
    global_control_share: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.05, description="customers no scenario contacts: the effect of kizuna itself")
    min_effect: PositiveShare = Field(0.02, description='smallest uplift worth detecting (sizes "not enough data yet")')
    alternative_name: Text = Field("ボトル入りの水", description="what customers would buy instead (money_saved)")
    alternative_yen_per_l: Annotated[int, Field(ge=0, le=1_000_000)] = Field(100, description="its price per litre")
    confirm_over: Annotated[int, Field(ge=0, le=100_000_000)] = Field(
        1000, description="a campaign to more customers asks to be confirmed (kizuna campaign send --yes)")


class EmailSettings(Section):
    """E-mail over SMTP. The password is read from the environment variable KIZUNA_SMTP_PASSWORD."""

    smtp_url: SmtpUrl = Field("", description='e.g. "smtp://127.0.0.1:2525" or "smtps://user@mail.example.jp:465"; '
                                              "empty: no e-mail is sent")
    starttls: bool = Field(False, description="upgrade a plain smtp:// connection with STARTTLS")
    sender: Text = Field("", description='"Shop <info@example.jp>"')
    sender_address: Text = Field("", description="postal address shown in every e-mail (特定電子メール法)")
    sender_contact: Text = Field("", description="telephone or e-mail for questions")
    dkim_domain: Text = Field("", description="DKIM signing when domain, selector and key file are set")
    dkim_selector: Text = Field("", description="the DKIM selector (the DNS name selector._domainkey.domain)")
    dkim_key_file: Text = Field("", description="PEM private key; relative paths are inside the workspace")


class LineSettings(Section):
    """LINE's Messaging API. The channel access token is read from KIZUNA_LINE_TOKEN, the channel secret from
    KIZUNA_LINE_SECRET."""

    api_base: HttpUrl = Field("https://api.line.me", description="the Messaging API's origin")
