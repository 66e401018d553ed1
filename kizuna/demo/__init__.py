"""A deterministic demo business: a water-server subscription (ウォーターサーバー) with add-ons.

`generate_demo_files` writes its exports (customers, products, orders, order items, NPS
answers, support contacts, profile events) the way Japanese shops export them;
`build_demo` imports them into a workspace through the ordinary import path.
"""

from kizuna.demo._generate import (
    DEFAULT_AS_OF,
    IMPORT_ORDER,
    DemoResult,
    build_demo,
    demo_tables,
    generate_demo_files,
)

__all__ = ["DEFAULT_AS_OF", "IMPORT_ORDER", "DemoResult", "build_demo", "demo_tables", "generate_demo_files"]
