"""What de-duplicating a load by primary key costs (`sources.dedup`), on the widest table.

    .venv/bin/python -m bench.dedup --rows 1000000

Builds sessionvision events as Arrow in the batches the source yields (20,000 rows), then
times `keep_latest` over them: once with every key unique (the usual run), once with 100
rows read twice. Compare with the initial sync of the same rows in `bench.sessionvision_sync`.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from typing import List

import orjson
import pyarrow as pa

from sources.batches import BATCH_ROWS
from sources.dedup import keep_latest
from sources.sessionvision.settings import EVENT_SCHEMA


def batches(rows: int) -> List[pa.Table]:
    """Event-shaped Arrow tables: uuid ids, a JSON properties column, promoted columns."""
    rng = random.Random(1)
    props = orjson.dumps({"$current_url": "https://app.example/pricing", "$browser": "Chrome",
                          "plan": "plan-3", "exp_12": "a"}).decode()
    out = []
    for _ in range(max(1, rows // BATCH_ROWS)):
        n = BATCH_ROWS
        cols = {f.name: pa.nulls(n, f.type) for f in EVENT_SCHEMA}
        cols["id"] = pa.array([str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)])
        cols["project_id"] = pa.array(["4021"] * n)
        cols["current_url"] = pa.array(["https://app.example/pricing"] * n)
        cols["properties"] = pa.array([props] * n)
        out.append(pa.table(cols, schema=EVENT_SCHEMA))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    tables = batches(parser.parse_args().rows)
    size = sum(t.nbytes for t in tables) / 1e6
    for label, items in (("all keys unique", tables),
                         ("100 rows twice", tables + [tables[0].slice(0, 100)])):
        t0 = time.perf_counter()
        rows = sum(t.num_rows for t in keep_latest(iter(items), ["id"]))
        print(f"{label:<16} {rows:>9} rows ({size:.0f} MB Arrow) kept in "
              f"{time.perf_counter() - t0:.2f} s", flush=True)


if __name__ == "__main__":
    main()
