"""The web app of `kizuna serve`: a login-protected dashboard over the same `Workspace` API as the CLI.

Starlette with server-rendered Jinja2 pages and server-drawn SVG charts; nothing is loaded
from the internet. See `create_app`.
"""

from kizuna.web._app import create_app
from kizuna.web._auth import ROLES, check_password, hash_password

__all__ = ["ROLES", "check_password", "create_app", "hash_password"]
