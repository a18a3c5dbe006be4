"""What every benchmark shares: a throwaway warehouse, a timed sync, one printed line."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from typing import Any, Dict

from pipelines.run import SyncResult, sync_source


@dataclass
class Timing:
    result: SyncResult
    wall: float
    cpu: float

    @property
    def peak_rss_mb(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warehouse_env(tmp: str) -> Dict[str, str]:
    """Settings that put the warehouses and pipeline state under `tmp`."""
    return {"SESSIONSYNC__PIPELINES_DIR": f"{tmp}/pipelines",
            "SESSIONSYNC__WAREHOUSE": f"{tmp}/w.duckdb",
            "SESSIONSYNC__FILE_WAREHOUSE": f"{tmp}/files"}


def timed_sync(source: str, destination: str, env: Dict[str, str]) -> Timing:
    """Sync `source` once with `env` set (see `warehouse_env`); time it."""
    os.environ.update(env)
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = sync_source(source, destination)
    timing = Timing(result, time.perf_counter() - t0, time.process_time() - cpu0)
    assert result.ok, result.error
    return timing


def run_later(api: Any, source: str, destination: str, env: Dict[str, str],
              minutes: int = 15) -> str:
    """Move the sandbox clock to the next scheduled run, sync again; one line describing it."""
    api.advance(minutes * 60)
    api.reset_stats()
    later = timed_sync(source, destination, env)
    requests = dict(sorted(api.count_by_path().items()))
    return (f"run {minutes} min later: {later.result.rows or 'nothing new'} in "
            f"{later.wall:.1f}s, {sum(requests.values())} requests: {requests}")
