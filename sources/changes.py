"""Emit only what changed, and mark what vanished: one comparison with the warehouse.

A run re-reads more than changed (a window back to the oldest record that can still change,
a rolling re-read, a whole small list), so that a quiet run writes nothing, every source
compares what it read with what the warehouse holds (`Known.changed`): a row is written when
its key is not loaded, or when one of the compared columns differs (null equals null). A
record a complete read no longer finds is written back with `deleted_at` set
(`Known.missing`, `mark_deleted`), so the warehouse keeps it and says when it went.

Example: `Known.read("sessions", ["id", "released_at"], "organization = 'o1'")` holds the
loaded sessions of `o1`; `known.changed(page)` is the page's rows that are new or whose
`released_at` differs; `known.missing(seen_ids)` the loaded rows the read did not list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sources.loaded import read_loaded


class Known:
    """Loaded rows of one table (the part a read covers), by a key column.

    Args:
        table: the loaded rows; None when nothing was loaded yet.
        key: the key column (unique among the rows).
        compare: the columns a fresh row must match to count as unchanged; default every
            column but the key; `()`: only whether the key is loaded.
    """

    def __init__(self, table: Optional[pa.Table], key: str = "id",
                 compare: Optional[Sequence[str]] = None) -> None:
        self.table = table if table is not None and table.num_rows else None
        self.key = key
        names = table.column_names if table is not None else []
        self.compare = list(compare) if compare is not None else [
            c for c in names if c != key]
        self._at: Optional[Dict[Any, int]] = None  # key -> row, for `changed`
        self._cols: Dict[str, pa.Array] = {}  # compared columns, cast to the fresh type

    @classmethod
    def read(cls, name: str, columns: Sequence[str], where: str, key: str = "id",
             compare: Optional[Sequence[str]] = None) -> Known:
        """The rows of table `name` matching `where` (SQL), `columns` of them."""
        return cls(read_loaded(name, list(columns), where), key, compare)

    def __len__(self) -> int:
        return self.table.num_rows if self.table is not None else 0

    def keys(self) -> List[Any]:
        """The loaded keys."""
        return self.table.column(self.key).to_pylist() if self.table is not None else []

    def without(self, keys: Iterable[Any]) -> Known:
        """These rows but those of `keys` (which then count as new)."""
        if self.table is None:
            return self
        return Known(self.table.filter(self._not_in(self.table, keys)), self.key, self.compare)

    def changed(self, fresh: pa.Table, keep: Optional[pa.Array] = None) -> Optional[pa.Table]:
        """The rows of `fresh` that are new or differ in a compared column, plus those `keep`
        (booleans, one per row) marks; None when no row is left."""
        if not fresh.num_rows:
            return None
        if self.table is None:
            return fresh
        schema = fresh.schema
        if self._at is None:  # built once: a scan compares page after page with one `Known`
            self._at = {k: i for i, k in enumerate(self.keys())}
        at = self._at
        index = pa.array([at.get(k) for k in fresh.column(self.key).to_pylist()], pa.int64())
        differs = pc.is_null(index)
        for name in self.compare:
            old_at = self._column(name, schema.field(name).type).take(index)
            new = fresh.column(name).combine_chunks()
            same = pc.or_kleene(pc.equal(new, old_at),
                                pc.and_(pc.is_null(new), pc.is_null(old_at)))
            differs = pc.or_(differs, pc.invert(pc.fill_null(same, False)))
        if keep is not None:
            differs = pc.or_(differs, keep)
        if pc.all(differs).as_py():
            return fresh
        return fresh.filter(differs) if pc.any(differs).as_py() else None

    def _column(self, name: str, type_: pa.DataType) -> pa.Array:
        assert self.table is not None
        column = self._cols.get(name)
        if column is None or column.type != type_:
            column = self._cols[name] = self.table.column(name).cast(type_).combine_chunks()
        return column

    def changed_rows(self, rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """`changed` for Python rows (for a resource that yields rows, not Arrow)."""
        held = {r[self.key]: r for r in self.table.to_pylist()} if self.table is not None else {}
        missing = object()
        return [r for r in rows if (old := held.get(r[self.key], missing)) is missing
                or any(r.get(c) != old.get(c) for c in self.compare)]  # type: ignore[union-attr]

    def missing(self, seen: Iterable[Any]) -> Optional[pa.Table]:
        """The loaded rows whose key is not in `seen` (records a complete read did not find);
        None when there are none."""
        if self.table is None:
            return None
        gone = self.table.filter(self._not_in(self.table, seen))
        return gone if gone.num_rows else None

    def _not_in(self, table: pa.Table, keys: Iterable[Any]) -> pa.Array:
        column = table.column(self.key)
        values = pa.array(list(keys), column.type)
        return pc.invert(pc.is_in(column, value_set=values))


def mark_deleted(rows: pa.Table, at: datetime, column: str = "deleted_at") -> pa.Table:
    """`rows` (loaded rows of records gone upstream) with `column` set to `at`: written
    back, they keep the record and say when it was found gone."""
    index = rows.schema.get_field_index(column)
    stamp = pa.array([at] * rows.num_rows, pa.timestamp("us", tz="UTC")).cast(
        rows.schema.field(column).type)
    return rows.set_column(index, column, stamp)
