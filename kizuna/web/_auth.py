"""Who may see what: passwords, signed session cookies, CSRF tokens and the contact-data mask.

A session is a cookie signed with the workspace secret (itsdangerous); it holds the user's
name, a CSRF token, the chosen language and, once logged in, the id of a session row in the
operational records (`web_sessions`), never a role. Every request looks that row up with the
user's role: logging out deletes the row (that browser's session only), a new password
(`kizuna user passwd`, `kizuna user add` again) ends every session of the user, a removed user
or a changed role takes effect at once; a copied cookie is worth nothing after any of these.
Anyone who opens the login page gets an anonymous session first, so that the login form
carries a CSRF token tied to it like every other form. Logging in makes a new token and a new
session id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from kizuna._errors import KizunaError

__all__ = [
    "CONTACT_FIELDS", "MASK", "ROLES", "Session", "SessionCodec", "check_password", "hash_password", "mask_row",
    "valid_csrf",
]

ROLES = ("viewer", "operator")
COOKIE = "kizuna_session"
SESSION_SECONDS = 12 * 3600  # a working day: log in once in the morning
MIN_PASSWORD = 8
# Columns that reach a person: masked for viewers on every page and in every export.
CONTACT_FIELDS = frozenset({
    "name", "name_kana", "email", "phone", "postal_code", "address", "line_user_id", "birthday",
})
MASK = "●●●"


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (argon2-cffi's defaults), for `Operations.add_user`.

    >>> check_password(hash_password("correct horse"), "correct horse")
    True
    """
    from argon2 import PasswordHasher

    if len(password) < MIN_PASSWORD:
        raise KizunaError.keyed("error.password_short", n=len(password), least=MIN_PASSWORD)
    return PasswordHasher().hash(password)


def check_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches the stored hash (False for any malformed hash too)."""
    from argon2 import PasswordHasher
    from argon2.exceptions import Argon2Error, InvalidHashError

    try:
        return PasswordHasher().verify(password_hash, password)
    except (Argon2Error, InvalidHashError):
        return False


def dummy_check() -> None:
    """Spend the time of one password check: an unknown user name answers as slowly as a known one."""
    global _dummy_hash
    if _dummy_hash is None:
        from argon2 import PasswordHasher

        _dummy_hash = PasswordHasher().hash(secrets.token_hex(16))
    check_password(_dummy_hash, "not the password")


_dummy_hash: str | None = None


@dataclass
class Session:
    """What the session cookie carries; `role` is filled from the users table per request."""

    user: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    lang: str = "ja"
    role: str | None = None
    changed: bool = False
    sid: str | None = None  # the web_sessions row of a logged-in user

    @property
    def operator(self) -> bool:
        return self.role == "operator"

    def to_cookie(self) -> dict[str, Any]:
        return {"u": self.user, "c": self.csrf, "l": self.lang, "s": self.sid}


class SessionCodec:
    """Signs and reads session cookies with the workspace secret.

    >>> codec = SessionCodec("secret")
    >>> codec.load(codec.dump(Session(user="aiko", csrf="t", sid="s1"))).sid
    's1'
    >>> codec.load("forged") is None
    True
    """

    def __init__(self, secret: str, max_age: int = SESSION_SECONDS) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="kizuna.web.session")
        self.max_age = max_age

    def dump(self, session: Session) -> str:
        return self._serializer.dumps(session.to_cookie())

    def load(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        lang = data.get("l") if data.get("l") in ("ja", "en") else "ja"
        user = data.get("u") if isinstance(data.get("u"), str) else None
        sid = data.get("s") if isinstance(data.get("s"), str) else None
        return Session(user=user, csrf=data["c"], lang=lang, sid=sid)


def valid_csrf(session: Session, token: object) -> bool:
    """Whether a form's token is this session's (compared in constant time)."""
    return isinstance(token, str) and bool(token) and secrets.compare_digest(token, session.csrf)


def mask_row(row: dict[str, Any], operator: bool) -> dict[str, Any]:
    """`row` with its contact data replaced by a mask unless the user is an operator."""
    if operator:
        return row
    return {k: (MASK if k in CONTACT_FIELDS and v not in (None, "") else v) for k, v in row.items()}
