"""The sources' specs: what they say agrees with the sources, their READMEs and the runner."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.backfill import backfill
from pipelines.registry import SOURCES, spec
from sources.errors import SyncError
from sources.spec import freshness_table, readme_freshness
from tests.conftest import ROOT


@pytest.mark.parametrize("name", list(SOURCES))
def test_readme_freshness_table_is_the_specs(name: str) -> None:
    source = SOURCES[name]
    assert source.freshness, f"{name}: the spec has no freshness rows"
    assert {r.table.split("`")[1] for r in source.freshness} <= set(source.resources)
    in_readme = readme_freshness(source.readme.read_text())
    assert in_readme == freshness_table(source), (
        f"{source.readme} and sources/{name}/spec.py disagree on freshness: edit the spec, "
        "then run .venv/bin/python -m sources.spec")


def test_reading_every_spec_imports_neither_dlt_nor_a_source() -> None:
    code = ("import sys\nfrom sources.spec import all_specs\n"
            "specs = all_specs(('mobilenext', 'session_services', 'tagbase', 'sessionvision'))\n"
            "assert all(s.freshness for s in specs.values())\n"
            "print(sorted(m for m in sys.modules if m == 'dlt' or m.startswith('dlt.')\n"
            "             or m in ('sources.mobilenext', 'sources.session_services',\n"
            "                      'sources.tagbase', 'sources.sessionvision')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_source_and_one_without_a_time_filter_are_named() -> None:
    with pytest.raises(SyncError, match="unknown source 'nope'; known sources: mobilenext, "
                                        "session_services, tagbase, sessionvision"):
        spec("nope")
    result = backfill("tagbase", "2026-01-01", "2026-01-02", "1d", None)
    assert not result.ok and result.error == (
        "backfill: tagbase has no time filter to window by; its first sync reads all history "
        "(backfill supports mobilenext, sessionvision)")
