"""Table hints shared by every source."""

from dlt.common.schema.typing import TWriteDispositionConfig

# Merge on the primary key, as upsert: the strategy dlt's Delta tables support. On DuckDB and
# Postgres the runner swaps in DUCKDB_MERGE (below), so each id holds its latest row in every
# warehouse.
MERGE: TWriteDispositionConfig = {"disposition": "merge", "strategy": "upsert"}

# On DuckDB, merges run as delete-insert, which keeps one row per key even when a load
# carries a record twice (a load job re-run after a kill copies its rows into the staging
# table again; upsert would then insert both). Postgres too: dlt's upsert there is a MERGE INTO
# from staging, which fails on a key staged twice. dlt's Delta tables support upsert only.
DUCKDB_MERGE: TWriteDispositionConfig = {"disposition": "merge", "strategy": "delete-insert"}
