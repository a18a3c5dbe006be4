"""What every benchmark shares: a throwaway warehouse, a timed sync, one printed line."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from typing import Dict

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
