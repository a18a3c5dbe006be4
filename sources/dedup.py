"""One row per primary key in each load: the copy read last wins.

An API may hand out the same record twice in one run: a list paged while a record moves in
its order (a sessionvision session whose `start_time` a late event moved), a record in both
the live and the deleted list. Delta's upsert then fails ("MERGE matched a target row with
multiple source rows") or inserts both copies, and DuckDB's delete-insert keeps an arbitrary
one. The runner wraps every merge resource of every source with `keep_latest`, so a load
carries one row per key, the one the resource yielded last (the latest read), in both
warehouses.

Rows cannot be taken back once handed to dlt, so a resource's items are held until it ends:
Arrow tables on disk (one Arrow IPC file each, so memory stays flat on a first sync of
millions of rows), Python rows in memory (the sources that yield them yield few). Then the
last occurrence of every key is found in Arrow, and the items are released in their order
without the earlier copies. Cost: one local write and read of the resource's Arrow data and
a group-by over its keys (measured in `docs/performance.md`).
"""

from __future__ import annotations

import functools
import inspect
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Union

import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema.utils import get_columns_names_with_prop
from dlt.sources import DltResource

_ORDER = "_sessionsync_order"


def apply(resource: DltResource) -> None:
    """Make `resource` yield at most one row per primary key per run (the last yielded)."""
    key = get_columns_names_with_prop(resource.compute_table_schema(), "primary_key")
    if not key:
        return
    pipe = resource._pipe  # dlt has no public hook that sees the end of a resource's items
    gen = pipe.gen
    if inspect.isgenerator(gen):
        pipe.replace_gen(keep_latest(gen, key))
    elif inspect.isgeneratorfunction(gen):
        @functools.wraps(gen)
        def latest(*args: Any, **kwargs: Any) -> Iterator[Any]:
            yield from keep_latest(gen(*args, **kwargs), key)
        pipe.replace_gen(latest)
    else:
        raise TypeError(f"resource {resource.name}: cannot de-duplicate a {type(gen)} gen")


def keep_latest(items: Iterable[Any], key: Sequence[str]) -> Iterator[Any]:
    """`items` (Arrow tables, rows or lists of rows) with every row dropped whose `key`
    occurs again later; items are released only once `items` is exhausted."""
    with tempfile.TemporaryDirectory(prefix="sessionsync-dedup-") as folder:
        held: List[Union[Path, List[Dict[str, Any]]]] = []
        keys: List[pa.Table] = []
        for item in items:
            if isinstance(item, pa.RecordBatch):
                item = pa.Table.from_batches([item])
            if isinstance(item, pa.Table):
                path = Path(folder, f"{len(held)}.arrow")
                with pa.OSFile(str(path), "wb") as sink, \
                        pa.ipc.new_file(sink, item.schema) as writer:
                    writer.write_table(item)
                held.append(path)
                keys.append(pa.table({k: item.column(k).cast(pa.string()) for k in key}))
            elif isinstance(item, (dict, list)):
                rows = item if isinstance(item, list) else [item]
                held.append(rows)
                keys.append(pa.table({k: pa.array([_text(r.get(k)) for r in rows], pa.string())
                                      for k in key}))
            else:  # not rows (dlt markers and the like): nothing to compare
                yield item
        yield from _release(held, keys, key)


def _release(held: List[Union[Path, List[Dict[str, Any]]]], keys: List[pa.Table],
             key: Sequence[str]) -> Iterator[Any]:
    """The held items in order, each without rows whose key occurs in a later row."""
    if not held:
        return
    every = pa.concat_tables(keys)
    total = every.num_rows
    order = pa.array(range(total), pa.int64())
    every = every.append_column(_ORDER, order)
    last = every.group_by(list(key)).aggregate([(_ORDER, "max")]).column(f"{_ORDER}_max")
    keep = pc.is_in(order, value_set=last.combine_chunks()) if len(last) < total else None
    offset = 0
    for item, item_keys in zip(held, keys, strict=True):
        n = item_keys.num_rows
        mask = None if keep is None else keep.slice(offset, n)
        offset += n
        if mask is not None and pc.all(mask).as_py() is not False:
            mask = None  # nothing of this item is dropped
        if isinstance(item, Path):
            with pa.OSFile(str(item), "rb") as source:
                table = pa.ipc.open_file(source).read_all()
            yield table if mask is None else table.filter(mask)
        else:
            yield item if mask is None else [
                r for r, k in zip(item, mask.to_pylist(), strict=True) if k]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
