"""One dlt run as its steps, so that a run with nothing to load skips the load step.

A quiet run (nothing new upstream) extracts an empty package: the sources write only what
changed (`sources.changes`) and move checkpoints only with data (`sources.checkpoint`). dlt's
normalize drops such a package, and its load then finds nothing to do, but still sets up its
clients and summary (which imports SQLAlchemy to print the warehouse's address): a measured
0.15 CPU seconds, a tenth of a whole quiet `sessionsync sync` process.

`run` is `pipeline.run(data, ...)` spelled out: restore state from the warehouse when it is
newer (as `run` does first), extract, normalize, and load only when normalize left a package
to load. Whether a package is empty is dlt's own test (no rows, no state change, no table to
drop or truncate), so a run whose only change is its state (a checkpoint, a watermark) still
loads that state, and rows and the state that describes them stay in one package.
"""

from __future__ import annotations

from typing import Any, Optional

import dlt


def run(pipeline: dlt.Pipeline, data: Any, restore: bool = True,
        **extract_options: Any) -> Optional[Any]:
    """Extract `data` (`extract_options` as for `pipeline.extract`), normalize, and load when
    there is anything to load; the `LoadInfo`, or None when nothing was loaded.

    `restore` False skips reading the warehouse's copy of the state: for a caller that read it
    once and is the pipeline's only writer since (a backfill, under the source's lock, runs all
    its loads in one pipeline; each of its runs would otherwise open the warehouse for it).

    Each step is traced as one trace (dlt merges single steps), so
    `pipeline.last_trace.last_normalize_info` counts this run's rows as after `pipeline.run`.
    """
    if restore and pipeline.config.restore_from_destination and not pipeline.dev_mode:
        pipeline.sync_destination()
    pipeline.extract(data, **extract_options)
    pipeline.normalize()
    if not pipeline.list_normalized_load_packages():
        return None
    return pipeline.load()
