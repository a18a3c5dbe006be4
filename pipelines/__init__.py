"""Pipelines: build dlt pipelines for sources and destinations, run syncs, serve the CLI."""

import os

# Arrow's default pool (mimalloc) keeps freed pages mapped; the system allocator hands them
# back, so a long backfill's memory stays flat (1M events: 562 -> 488 MB peak RSS). The
# variable is read when pyarrow loads; if it is loaded already, switch its default pool.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

# delta-rs (the `deltalake` wheel) allocates through its own jemalloc, which keeps freed pages
# for reuse (10 s, and only purged when it allocates again): a Delta warehouse's process held
# what its largest write had used between runs and through every later phase (~600 MB at 1M
# events). Returning them at once: 1M events into Delta, peak RSS 655 -> 564 MB, see
# docs/performance.md ("Round 2, memory"). Read when the library loads, so set here, before
# anything imports it.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

# glibc gives threads that allocate at once arenas of their own (up to 8 per core) and keeps
# each arena's freed memory: the fetch threads' arenas held ~80 MB more at 1M events.
# Two arenas: `bench.whole --events 1000000`, default backfill into DuckDB, peak RSS 577 ->
# 490 MB at the same wall time. A limit set in the environment (MALLOC_ARENA_MAX) is kept.
if "MALLOC_ARENA_MAX" not in os.environ:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX; glibc only
    except (OSError, AttributeError):
        pass

import pyarrow as pa  # noqa: E402

pa.set_memory_pool(pa.system_memory_pool())

from pipelines.settings import use_home_settings  # noqa: E402

use_home_settings()
