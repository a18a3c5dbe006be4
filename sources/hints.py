"""Table hints shared by every source."""

from dlt.common.schema.typing import TWriteDispositionConfig

# Upsert on the primary key: the one merge strategy both DuckDB and dlt's Delta tables support,
# so each id holds its latest row in either warehouse.
MERGE: TWriteDispositionConfig = {"disposition": "merge", "strategy": "upsert"}
