"""The links that messages carry to the web app: one-click unsubscribe, the NPS survey, tracked clicks.

Designed once for both sides: `kizuna run` writes them into e-mails and LINE messages, and
`kizuna serve` answers them.

    {public_url}/u/{token}   unsubscribe from the channel the message came by
                             (GET: a confirmation page; POST List-Unsubscribe=One-Click: done)
    {public_url}/s/{token}   the 0–10 survey of one link, answered once
    {public_url}/c/{token}   a link of a message: the click is counted, then sent on to the
                             template's URL kept for that message and link (`kizuna.operations.Clicks`)

A token is an itsdangerous signature over the delivery's or survey link's `ref`, a random
32-hex id: it reveals nothing about the customer (the ref is looked up in the operational
records) and cannot be forged or altered without the workspace secret. A click token signs the
ref and the link's number in the message, nothing else: where it leads is looked up.
"""

from __future__ import annotations

import re

from itsdangerous import BadSignature, SignatureExpired, Signer, URLSafeSerializer, URLSafeTimedSerializer

from kizuna._errors import KizunaError

__all__ = ["CLICK_PATH", "InvalidLink", "Links", "SURVEY_DAYS", "UNSUBSCRIBE_PATH", "SURVEY_PATH"]

UNSUBSCRIBE_PATH = "/u/"
SURVEY_PATH = "/s/"
CLICK_PATH = "/c/"
_CLICK = re.compile(r"([0-9a-f]{32})-([0-9]{1,4})")  # ref-link, as signed
SURVEY_DAYS = 30  # a survey link works this long after it was made


class InvalidLink(KizunaError):
    """A link's token was altered, made with another secret, or has expired (`expired`)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        self.expired = expired
        super().__init__(message)


class Links:
    """Makes and reads the signed links of one workspace.

    >>> links = Links("https://shop.example.jp/kizuna", "secret")
    >>> url = links.unsubscribe_url("0f" * 16)
    >>> url.startswith("https://shop.example.jp/kizuna/u/")
    True
    >>> links.read_unsubscribe(url.rsplit("/", 1)[1]) == "0f" * 16
    True
    """

    def __init__(self, public_url: str, secret: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._unsubscribe = URLSafeSerializer(secret, salt="kizuna.unsubscribe")
        self._survey = URLSafeTimedSerializer(secret, salt="kizuna.survey")
        self._click = Signer(secret, salt="kizuna.click")  # short: LINE counts a message's characters

    @property
    def own_prefixes(self) -> tuple[str, ...]:
        """The beginnings of the links this class makes: never tracked as a template's links."""
        return tuple(self.public_url + path for path in (UNSUBSCRIBE_PATH, SURVEY_PATH, CLICK_PATH))

    def unsubscribe_url(self, ref: str) -> str:
        # no expiry: the law wants an opt-out to work whenever the customer clicks it
        return self.public_url + UNSUBSCRIBE_PATH + self._unsubscribe.dumps(ref)

    def read_unsubscribe(self, token: str) -> str:
        try:
            return str(self._unsubscribe.loads(token))
        except BadSignature:
            raise InvalidLink("this unsubscribe link is not valid") from None

    def survey_url(self, ref: str) -> str:
        return self.public_url + SURVEY_PATH + self._survey.dumps(ref)

    def read_survey(self, token: str, *, max_age_days: int = SURVEY_DAYS) -> str:
        try:
            return str(self._survey.loads(token, max_age=max_age_days * 86_400))
        except SignatureExpired:
            raise InvalidLink("this survey link has expired", expired=True) from None
        except BadSignature:
            raise InvalidLink("this survey link is not valid") from None

    def click_url(self, ref: str, link: int) -> str:
        """The tracked address of link number `link` (0, 1, …) of the message `ref`; no expiry (a
        customer may keep the e-mail for years)."""
        return self.public_url + CLICK_PATH + self._click.sign(f"{ref}-{link}").decode("ascii")

    def read_click(self, token: str) -> tuple[str, int]:
        """(ref, link) of a click token; InvalidLink when it was altered or made with another secret."""
        try:
            value = self._click.unsign(token)
            # exactly the token we made: base64's last character has spare bits, so another
            # character can decode to the same signature; such a token is not one we sent
            found = _CLICK.fullmatch(value.decode("ascii")) if self._click.sign(value) == token.encode() else None
        except (BadSignature, UnicodeError):
            found = None
        if found is None:
            raise InvalidLink("this link is not valid")
        return found.group(1), int(found.group(2))
