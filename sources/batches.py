"""Arrow pages handed to dlt in batches, not one by one.

dlt does work per yielded item (schema inference and table updates, a buffered write) that
costs about as much for 500 rows as for 50,000. Sources that build an Arrow table per page
collect them here and yield one table per `rows` rows. Tables of another schema (a page with a
field the earlier ones lack) start a new batch: what was waiting is released first.
"""

from __future__ import annotations

from typing import List, Optional

import pyarrow as pa

BATCH_ROWS = 20_000  # ~8 MB of Arrow for sessionvision events, the widest table here


class Batches:
    """Arrow tables of one schema, released as one concatenated table per `rows` rows."""

    def __init__(self, rows: int = BATCH_ROWS) -> None:
        self.rows = rows
        self._tables: List[pa.Table] = []
        self._count = 0

    def add(self, table: Optional[pa.Table]) -> Optional[pa.Table]:
        """Collect `table`; returns a batch when `rows` rows are waiting, or the tables
        waiting before a table of another schema, else None."""
        if table is None or not table.num_rows:
            return self.flush() if self._count >= self.rows else None
        if self._tables and table.schema != self._tables[0].schema:
            waiting = self.flush()
            self._tables, self._count = [table], table.num_rows
            return waiting
        self._tables.append(table)
        self._count += table.num_rows
        return self.flush() if self._count >= self.rows else None

    def flush(self) -> Optional[pa.Table]:
        """Whatever is waiting, as one table (None when nothing is)."""
        if not self._tables:
            return None
        batch = pa.concat_tables(self._tables)
        self._tables, self._count = [], 0
        return batch
