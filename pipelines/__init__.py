"""Pipelines: build dlt pipelines for sources and destinations, run syncs, serve the CLI."""

import os

# Arrow's default pool (mimalloc) keeps freed pages mapped; the system allocator hands them
# back, so a long backfill's memory stays flat (1M events: 562 -> 488 MB peak RSS). The
# variable is read when pyarrow loads; if it is loaded already, switch its default pool.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

# delta-rs (the `deltalake` wheel) allocates through its own jemalloc, which keeps freed pages
# for reuse (10 s, and only purged when it allocates again): a Delta warehouse's process held
# what its largest write had used between runs and through every later phase (~600 MB at 1M
# events). Returning them at once: 1M events into Delta, peak RSS 655 -> see
# docs/performance.md ("Round 2, memory"). Read when the library loads, so set here, before
# anything imports it.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

import pyarrow as pa  # noqa: E402

pa.set_memory_pool(pa.system_memory_pool())

from pipelines.settings import use_home_settings  # noqa: E402

use_home_settings()
