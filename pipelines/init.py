"""`sessionsync init [DIR]`: a starting `.dlt/config.toml` and `.dlt/secrets.toml` for the
chosen sources, so a new install has one place to fill in. It never overwrites a file.

Each source's lines are its settings as its source function declares them
(`sources.signature`): the code's default commented out, required ones marked, each with
its docstring's description.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, List, Sequence

from pipelines.registry import SOURCES
from sources.errors import SyncError
from sources.signature import Setting, settings

HEADER = """\
# sessionsync settings for this folder. Every default lives in code; uncomment a line only to
# change it. The full reference of every setting is .dlt/config.toml in the sessionsync
# repository (and its README). Any value can also be an environment variable named after its
# section and key, e.g. [sources.mobilenext] base_url is SOURCES__MOBILENEXT__BASE_URL.

[sessionsync]
enabled_sources = {enabled}
# warehouse = "warehouse/sessionsync.duckdb"
# warehouse_wait_seconds = 1800

[alerts]
# webhook_url = ""
"""


def init(folder: Path, sources: Sequence[str]) -> List[Path]:
    """Write `folder/.dlt/config.toml` and `secrets.toml` for `sources`; returns their paths.

    Raises:
        SyncError: an unknown source, or either file exists already (nothing is written).
    """
    chosen = list(sources) or list(SOURCES)
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise SyncError(f"unknown source {', '.join(unknown)}; known sources: "
                        f"{', '.join(SOURCES)}")
    settings_dir = folder / ".dlt"
    config, secrets = settings_dir / "config.toml", settings_dir / "secrets.toml"
    existing = [str(p) for p in (config, secrets) if p.exists()]
    if existing:
        raise SyncError(f"{' and '.join(existing)} exist already; not overwriting")
    enabled = "[" + ", ".join(f'"{s}"' for s in chosen) + "]"
    declared = {s: settings(SOURCES[s]) for s in chosen}
    config_text = HEADER.format(enabled=enabled) + "".join(
        f"\n[sources.{s}]\n# max_lag = \"1h\"\n"
        + "".join(_lines(s, x) for x in declared[s] if not x.secret) for s in chosen)
    secrets_text = ("# Secrets: keep this file out of version control. Uncomment and fill in, or\n"
                    "# set the environment variables named here.\n" + "".join(
        f"\n[sources.{s}]\n" + "".join(_lines(s, x) for x in declared[s] if x.secret)
        for s in chosen))
    settings_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text)
    secrets.write_text(secrets_text)
    secrets.chmod(0o600)
    return [config, secrets]


def _lines(source: str, setting: Setting) -> str:
    """A setting as commented TOML: its description, then `# name = <default>` (a
    placeholder for a required one), and the environment variable that also sets it."""
    variable = f"SOURCES__{source.upper()}__{setting.name.upper()}"
    about = ("required: " if setting.required and not setting.secret else "") + setting.doc
    value = _placeholder(setting.kind) if setting.required else toml_value(setting.default)
    return "".join(f"# {line}\n" for line in textwrap.wrap(about, 94)) + (
        f"# {setting.name} = {value}  # or {variable}\n")


def toml_value(value: Any) -> str:
    """A default as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _placeholder(kind: str) -> str:
    """What to fill in for a required setting of annotation `kind`."""
    if kind.startswith("Dict"):
        return '{ "..." = "..." }'
    if kind.startswith(("List", "Sequence")):
        return '["..."]'
    return '"..."'
