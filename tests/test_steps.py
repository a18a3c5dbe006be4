"""`pipelines.steps.run`: a run with nothing to load skips the load step, and only then.

A real dlt pipeline into a real DuckDB file. The source's one resource yields the rows it is
given and sets its state's `watermark`, as a source's checkpoint does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import dlt
import duckdb

from pipelines import steps


def _source(rows: List[Dict[str, Any]], watermark: Optional[str],
            seen: Optional[List[Any]] = None) -> Any:
    @dlt.resource(name="items", primary_key="id", write_disposition="merge")
    def items() -> Any:
        state = dlt.current.resource_state()
        if seen is not None:
            seen.append(state.get("watermark"))  # where this run starts from
        if watermark is not None:
            state["watermark"] = watermark
        yield from rows

    @dlt.source(name="steps")
    def source() -> Any:
        return items

    return source()


def _pipeline(tmp_path: Path, folder: str = "pipelines") -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name="steps_test", pipelines_dir=str(tmp_path / folder),
                        destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
                        dataset_name="steps")


def _loads(tmp_path: Path) -> int:
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM steps._dlt_loads").fetchall()[0][0])


def test_a_run_with_only_a_state_change_loads_it_and_the_next_run_starts_from_it(
        tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    assert steps.run(pipeline, _source([{"id": 1}, {"id": 2}], "w1")) is not None
    assert _loads(tmp_path) == 1

    # nothing new, state unchanged: no load step, no package left pending, nothing written
    assert steps.run(_pipeline(tmp_path), _source([], "w1")) is None
    assert _loads(tmp_path) == 1
    assert not _pipeline(tmp_path).has_pending_data

    # no rows, but the watermark moved: that state alone is a package, and it is loaded
    assert steps.run(_pipeline(tmp_path), _source([], "w2")) is not None, \
        "a run whose only change is its state skipped the load: the state was never committed"
    assert _loads(tmp_path) == 2

    # on a machine without the local state, the next run restores it from the warehouse
    shutil.rmtree(tmp_path / "pipelines")
    seen: List[Any] = []
    steps.run(_pipeline(tmp_path, "elsewhere"), _source([], None, seen))
    assert seen == ["w2"]
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM steps.items").fetchall()[0][0] == 2


def test_rows_and_their_state_load_together(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    steps.run(pipeline, _source([{"id": 1}], "w1"))
    steps.run(_pipeline(tmp_path), _source([{"id": 3}], "w3"))
    assert _loads(tmp_path) == 2
    shutil.rmtree(tmp_path / "pipelines")
    seen: List[Any] = []
    steps.run(_pipeline(tmp_path, "elsewhere"), _source([], None, seen))
    assert seen == ["w3"]
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        ids = sorted(r[0] for r in con.execute("SELECT id FROM steps.items").fetchall())
    assert ids == [1, 3]
