"""Pipelines: build dlt pipelines for sources and destinations, run syncs, serve the CLI."""

import os

# Arrow's default pool (mimalloc) keeps freed pages mapped; the system allocator hands them
# back, so a long backfill's memory stays flat (1M events: 562 -> 488 MB peak RSS). The
# variable is read when pyarrow loads; if it is loaded already, switch its default pool.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import pyarrow as pa  # noqa: E402

pa.set_memory_pool(pa.system_memory_pool())

from pipelines.settings import use_home_settings  # noqa: E402

use_home_settings()
