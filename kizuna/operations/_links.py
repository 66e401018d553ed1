"""The links that messages carry to the web app: one-click unsubscribe and the NPS survey.

Designed once for both sides: `kizuna run` writes them into e-mails and LINE messages, and
`kizuna serve` answers them.

    {public_url}/u/{token}   unsubscribe from the channel the message came by
                             (GET: a confirmation page; POST List-Unsubscribe=One-Click: done)
    {public_url}/s/{token}   the 0–10 survey of one link, answered once

A token is an itsdangerous signature over the delivery's or survey link's `ref`, a random
32-hex id: it reveals nothing about the customer (the ref is looked up in the operational
records) and cannot be forged or altered without the workspace secret.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from kizuna._errors import KizunaError

__all__ = ["InvalidLink", "Links", "SURVEY_DAYS", "UNSUBSCRIBE_PATH", "SURVEY_PATH"]

UNSUBSCRIBE_PATH = "/u/"
SURVEY_PATH = "/s/"
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
