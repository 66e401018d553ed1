"""Workspaces: settings (kizuna.toml) and the store, behind one Python API."""

from kizuna.settings import SETTINGS_FILE, RankRule
from kizuna.workspace._settings import Settings
from kizuna.workspace._workspace import STORE_FILE, Workspace

__all__ = ["SETTINGS_FILE", "STORE_FILE", "RankRule", "Settings", "Workspace"]
