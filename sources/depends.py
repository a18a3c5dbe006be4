"""What one resource hands another in the same run, said out loud.

Some resources need what another one read in the same run: sessionvision's sessions and
persons refresh what the run's new events touched, Tagbase's sessions and tags fetch what the
new log lines reference, Session Services' tickets follow the orders that changed. The
producer `publish()`es its result (per partition) once it has read it whole; the consumer
`get()`s it, and gets one of three answers, never a guess:

- the result, when the producer read that partition whole this run;
- None, when the producer is not part of this run (not selected): the consumer then does
  without it, the way its docstring says;
- a `SyncError`, when the producer is part of this run but has not handed the result over
  (it has not run yet): the consumer never works from half of, or an empty stand-in for,
  what it depends on. (A partition the producer failed is failed for the consumer too.)

sessionsync extracts a source's resources one after another in declaration order
(`pipelines.settings.enforce_extract_order`), producers first, so the error means a bug.
"""

from __future__ import annotations

from typing import Dict, Generic, Hashable, Optional, TypeVar

import dlt

from sources.errors import SyncError

T = TypeVar("T")


class Handoff(Generic[T]):
    """The result of resource `producer`, per partition, for the resources that need it.

    Args:
        source: source name, for the error message.
        producer: the name of the resource that publishes.
    """

    def __init__(self, source: str, producer: str) -> None:
        self.source, self.producer = source, producer
        self._results: Dict[Hashable, T] = {}

    def publish(self, value: T, partition: Hashable = None) -> None:
        """Hand over the producer's result for `partition` (None: the whole source)."""
        self._results[partition] = value

    def get(self, partition: Hashable = None) -> Optional[T]:
        """The producer's result for `partition`; None when the producer is not selected."""
        if partition in self._results:
            return self._results[partition]
        if self.producer not in dlt.current.source().selected_resources:
            return None
        raise SyncError(
            f"{self.source}: {dlt.current.resource_name()} needs what {self.producer} read"
            f"{'' if partition is None else f' for {partition}'} in this run, and "
            f"{self.producer} has not finished it; resources must be extracted in order")
