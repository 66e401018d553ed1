"""[store] of kizuna.toml: where the canonical tables are kept."""

from typing import Annotated

from pydantic import Field

from kizuna.settings import Section, Text

__all__ = ["StoreSettings"]


class StoreSettings(Section):
    """The canonical tables: kizuna.duckdb in this folder, or a database named by its URL."""

    url: Text = Field("", description='Empty: kizuna.duckdb in this folder. Or a connection URL, e.g. '
                                      '"postgres://user:pass@127.0.0.1:5432/kizuna" or "pyspark://local".')
    # DuckDB checks the format when it connects
    memory_limit: Text = Field("", description='DuckDB only: the most memory it may use, e.g. "2GB" (beyond it, '
                                               "large imports and analyses spill to disk). Empty: half of this "
                                               "machine's memory (DuckDB's own default is 80 %; kizuna's process "
                                               "holds the data it works on besides).")
    lock_wait: Annotated[int, Field(ge=0, le=3600)] = Field(
        30, description="DuckDB only: seconds a command waits for another kizuna process using the file to finish.")
