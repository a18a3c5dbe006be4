"""The sources' specs: what they say agrees with the sources, their READMEs and the runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.backfill import backfill
from pipelines.init import init, toml_value
from pipelines.registry import SOURCES, spec
from sources.errors import SyncError
from sources.signature import settings
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


@pytest.mark.parametrize("name", list(SOURCES))
def test_the_settings_reference_and_init_list_every_setting_of_the_source_function(
        name: str, tmp_path: Path) -> None:
    """`.dlt/config.toml` (the reference), `.dlt/example.secrets.toml` and what `sessionsync
    init` writes name every setting the source function declares, with the code's default."""
    declared = settings(SOURCES[name])
    assert declared, f"{name}: the source function declares no settings"

    def section(text: str) -> str:
        return text.split(f"[sources.{name}]\n", 1)[1].split("\n[", 1)[0]

    reference = section((ROOT / ".dlt" / "config.toml").read_text())
    example = section((ROOT / ".dlt" / "example.secrets.toml").read_text())
    init(tmp_path, [name])
    made = section((tmp_path / ".dlt" / "config.toml").read_text())
    made_secrets = section((tmp_path / ".dlt" / "secrets.toml").read_text())
    for setting in declared:
        if setting.secret:
            assert f"{setting.name} = " in example, f"{setting.name} missing from the example"
            assert f"# {setting.name} = " in made_secrets
            continue
        assert f"# {setting.name} = " in reference, (
            f".dlt/config.toml [sources.{name}] does not name {setting.name}")
        assert f"# {setting.name} = " in made
        if not setting.required:
            line = next(x for x in reference.splitlines() if x.startswith(f"# {setting.name} = "))
            value = line.split(" = ", 1)[1].split("  #")[0]
            assert value == toml_value(setting.default), (name, setting.name, value)
