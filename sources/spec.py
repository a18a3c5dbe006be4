"""What sessionsync knows about each source, in one place: its `SourceSpec`.

Each source folder exports one spec (`sources/<name>/spec.py`, a module-level `SPEC`): the
dlt source function (as a `"module:attr"` reference, imported only when a run needs it), the
resources one run loads, the column holding each record's own time (the high-water mark the
run log records and `status` measures lag from), what `sessionsync backfill` can window, the
partition that fails alone, and the freshness table of the source's README. The runner,
backfill, status, Dagster and the docs read these; the contract tests run over every spec.

Reading a spec imports neither dlt nor the source: `load_spec` executes the spec file alone,
without importing its package (`sources/<name>/__init__.py`, which imports dlt).

    .venv/bin/python -m sources.spec   # rewrite each README's freshness table from its spec
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

HERE = Path(__file__).resolve().parent
FRESHNESS_HEADER = ("table", "change upstream", "reaches the warehouse", "cost per run")


@dataclass(frozen=True)
class Freshness:
    """One row of a source's freshness table: how soon a kind of change upstream reaches the
    warehouse, and what keeping that bound costs per run (markdown text, as in the README)."""

    table: str
    change: str
    bound: str
    cost: str


@dataclass(frozen=True)
class SourceSpec:
    """The facts about one source that the rest of sessionsync needs.

    Attributes:
        name: the source's name (its dlt source name, dataset and CLI argument).
        factory: `"module:attr"` of the dlt source function; imported by `load()` only.
        resources: every resource one run loads, in the source's order.
        high_water: resource -> column with each record's own time; its maximum is the
            resource's high-water mark (run log, `status`, the Dagster `fresh` check).
        backfill: the resources `sessionsync backfill` loads by default, windowed by record
            time; empty when the API has no time filter (its first sync reads all history).
        new_only: backfill resources whose windowed read yields only records the warehouse
            does not hold (immutable records, less the ids already loaded in the window,
            read under the source's lock): a backfill appends them instead of merging, since
            a merge compares every row with the whole table, a cost that grows with history.
        needs: resource -> the resource whose output it reads in the same run (a backfill
            selecting the first without the second would load nothing and mark the window
            done, so it is refused).
        partition: what fails alone when the API refuses it ("organization", "tenant",
            "project"), or None when the source has no partitions.
        freshness: the README's freshness table (`python -m sources.spec` writes it there).
        history: `"module:attr"` of a function (configured like the source) returning the
            window `[start, end)` a first sync loads, `end` the API's clock read from a
            response before any of the first sync's reads; a first sync of a source with
            `history` and `backfill` loads that window as a default backfill (loads sized by
            rows) and hands over to its incremental runs (`pipelines.first_sync`).
        reread: backfill resources whose list has no time filter: the run that takes over
            from a first sync's backfill reads them whole (as any first run does), so that
            backfill leaves them out rather than page their list once per load; and a
            backfill of several loads passes the source `defer=True` for every load but its
            last, which reads the records those loads left due (kept in source state).
        first_append: a first sync (the scheduled pipeline has never loaded) into a
            warehouse holding none of the source's tables appends its merge resources
            instead of merging: there is nothing to merge with, and a load carries one row
            per key (`sources.dedup`). Such a sync killed before its load finished is read
            again from the API, never finished (its jobs run twice would append twice).
    """

    name: str
    factory: str
    resources: Tuple[str, ...]
    high_water: Mapping[str, str] = field(default_factory=dict)
    backfill: Tuple[str, ...] = ()
    new_only: Tuple[str, ...] = ()
    needs: Mapping[str, str] = field(default_factory=dict)
    partition: Optional[str] = None
    freshness: Tuple[Freshness, ...] = ()
    history: Optional[str] = None
    reread: Tuple[str, ...] = ()
    first_append: bool = False

    def __post_init__(self) -> None:
        for resource in (*self.high_water, *self.backfill, *self.new_only, *self.needs,
                         *self.needs.values(), *self.reread):
            if resource not in self.resources:
                raise ValueError(f"{self.name}: spec names resource {resource!r}, which is "
                                 f"not one of its resources {self.resources}")
        if ":" not in self.factory:
            raise ValueError(f"{self.name}: factory {self.factory!r} is not 'module:attr'")

    def load(self) -> Callable[..., Any]:
        """The dlt source function (imports the source, and dlt, now)."""
        module, attr = self.factory.split(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]

    @property
    def readme(self) -> Path:
        return HERE / self.name / "README.md"


def load_spec(name: str) -> SourceSpec:
    """The `SPEC` of `sources/<name>/spec.py`, executed without importing `sources.<name>`."""
    module_name = f"sources.{name}.spec"
    module = sys.modules.get(module_name)
    if module is None:
        path = HERE / name / "spec.py"
        if not path.is_file():
            raise FileNotFoundError(f"no spec for source {name!r}: {path} is missing")
        found = importlib.util.spec_from_file_location(module_name, path)
        assert found is not None and found.loader is not None
        module = importlib.util.module_from_spec(found)
        sys.modules[module_name] = module
        try:
            found.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, SourceSpec) or spec.name != name:
        raise TypeError(f"{module_name}.SPEC must be the SourceSpec of {name!r}")
    return spec


def all_specs(names: Tuple[str, ...]) -> Dict[str, SourceSpec]:
    """The specs of `names`, by name, in that order."""
    return {name: load_spec(name) for name in names}


def freshness_table(spec: SourceSpec) -> str:
    """The spec's freshness rows as the markdown table its README holds."""
    lines = ["| " + " | ".join(FRESHNESS_HEADER) + " |", "|---|---|---|---|"]
    lines += [f"| {r.table} | {r.change} | {r.bound} | {r.cost} |" for r in spec.freshness]
    return "\n".join(lines) + "\n"


_TABLE = re.compile(r"(## Freshness\n(?:(?!\n## |\n\|).)*\n)((?:\|[^\n]*\n)+)", re.S)


def readme_freshness(text: str) -> Optional[str]:
    """The first table of a README's `## Freshness` section, or None when it has none."""
    match = _TABLE.search(text)
    return match.group(2) if match else None


def write_freshness(spec: SourceSpec) -> bool:
    """Rewrite the freshness table of the spec's README; True when it changed."""
    text = spec.readme.read_text()
    if readme_freshness(text) is None:
        raise ValueError(f"{spec.readme}: no table under '## Freshness' to replace")
    new = _TABLE.sub(lambda m: m.group(1) + freshness_table(spec), text, count=1)
    if new != text:
        spec.readme.write_text(new)
    return new != text


def main(names: Optional[Tuple[str, ...]] = None) -> None:
    """Rewrite every source README's freshness table from its spec."""
    for name in names or tuple(sorted(p.parent.name for p in HERE.glob("*/spec.py"))):
        spec = load_spec(name)
        print(f"{spec.readme.relative_to(HERE.parent)}: "
              f"{'rewritten' if write_freshness(spec) else 'up to date'}")


if __name__ == "__main__":  # the spec files import `sources.spec`, not this `__main__`
    from sources.spec import main as run

    run()
