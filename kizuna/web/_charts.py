"""The web app's charts: drawn by `kizuna.reporting` (inline SVG, nothing fetched from the internet),
which the manager's report (`kizuna report`) draws with too."""

from kizuna.reporting import flow_svg, lorenz_svg, money_axis, sparkline_svg

__all__ = ["flow_svg", "lorenz_svg", "money_axis", "sparkline_svg"]
