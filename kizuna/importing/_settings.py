"""[import] of kizuna.toml."""

from typing import Annotated

from pydantic import Field

from kizuna.settings import Section

__all__ = ["ImportSettings"]


class ImportSettings(Section):
    """Reading shops' export files."""

    batch_rows: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        200_000, description="rows read per batch; bounds memory on large files")
