"""sessionsync's own settings: every default in code, read through dlt's providers.

A value comes from, first to last: an environment variable named after its section and key
(`SESSIONSYNC__WAREHOUSE`), `.dlt/secrets.toml` and `.dlt/config.toml` of the project folder,
then `DEFAULTS` here. The project folder is `SESSIONSYNC_HOME` when set, else the current
folder; relative paths of working files (state, locks, job store, warehouse) are under it, so
`sessionsync` runs from any folder with environment variables alone. Source settings (base
URLs, page sizes, concurrency) are defaults in the source functions' signatures, transport
settings in `sources.http.HttpConfig`.

Nothing correctness depends on is a setting: `enforce_extract_order` pins dlt's extract to
declaration order over whatever the providers say.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import dlt
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)

from sources.errors import SyncError
from sources.http import HttpConfig

HOME_ENV = "SESSIONSYNC_HOME"

DEFAULTS: Dict[str, Any] = {
    # Where the embedded DuckDB warehouse lives (sync --destination duckdb).
    "sessionsync.warehouse": "warehouse/sessionsync.duckdb",
    # Where the Parquet/Delta file warehouse lives (sync --destination parquet).
    "sessionsync.file_warehouse": "warehouse/files",
    # dlt's working folders (local state, load packages, locks); one subfolder per warehouse.
    "sessionsync.pipelines_dir": "var/pipelines",
    # Sources synced by `sessionsync sync` with no source named.
    "sessionsync.enabled_sources": ["mobilenext", "session_services", "tagbase", "sessionvision"],
    # How long a writer waits for a DuckDB warehouse another process is using.
    "sessionsync.warehouse_wait_seconds": 1800.0,
    # Publish a read-only copy for BI tools (`<warehouse>.bi.duckdb`) after each sync.
    "sessionsync.bi_copy": True,
    # `sessionsync schedule`'s job store and how late a missed run may still start.
    "schedules.jobstore": "var/schedules.sqlite",
    "schedules.misfire_grace_seconds": 3600,
    # Rebuild the BI marts (`sessionsync transform`) after each scheduled sync.
    "schedules.transform": False,
    "schedules.mobilenext.cron": "*/15 * * * *",
    "schedules.session_services.cron": "*/15 * * * *",
    "schedules.tagbase.cron": "*/5 * * * *",
    "schedules.sessionvision.cron": "*/15 * * * *",
    # DuckDB's own settings for loads and read-backs (see .dlt/config.toml for why 256MB).
    "destination.duckdb.credentials.global_config": {"memory_limit": "256MB",
                                                     "preserve_insertion_order": False},
    # Alerts: a JSON POST on failed or partial runs and stale resources; empty = off.
    "alerts.webhook_url": "",
    "alerts.max_attempts": 4,
    "alerts.timeout_seconds": 5.0,
}
PATHS = ("sessionsync.warehouse", "sessionsync.file_warehouse", "sessionsync.pipelines_dir",
         "schedules.jobstore")


def home() -> Path:
    """The folder working files are relative to: `SESSIONSYNC_HOME`, else the current one."""
    return Path(os.environ.get(HOME_ENV) or ".").absolute()


def env_name(key: str) -> str:
    """The environment variable of a setting: `sources.http.max_retries` ->
    `SOURCES__HTTP__MAX_RETRIES`."""
    return key.replace(".", "__").upper()


def where(key: str) -> str:
    """How a user sets `key`, for messages: the variable and the TOML section and key."""
    section, _, name = key.rpartition(".")
    return f"{env_name(key)} (or {name} under [{section}] in .dlt/config.toml)"


def get(key: str, default: Optional[Any] = None) -> Any:
    """The value of `key` from env or `.dlt/`, else its default in `DEFAULTS` (or `default`)."""
    value: Any = dlt.config.get(key)
    if value is None or value == "":
        value = DEFAULTS.get(key, default)
    return value


def is_set(key: str) -> bool:
    """Whether the user set `key` (env or `.dlt/`), rather than leaving its default."""
    return dlt.config.get(key) not in (None, "")


def path(key: str) -> Path:
    """A path setting; a relative one is under `home()`."""
    return home() / Path(str(get(key))).expanduser()


def number(key: str) -> float:
    """A numeric setting, refused with its name when it is not a number."""
    value = get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SyncError(f"setting {where(key)} must be a number, got {value!r}") from None


def mapping(key: str) -> Dict[str, Any]:
    """A table setting: a TOML table, or a JSON object in its environment variable."""
    value = get(key)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise SyncError(f"setting {where(key)} must be a JSON object, e.g. "
                        f"{json.dumps(DEFAULTS.get(key, {}))}")
    return dict(value)


def names(key: str) -> List[str]:
    """A list-of-names setting: a TOML array, or a JSON list in its environment variable."""
    value = get(key)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SyncError(f"setting {where(key)} must be a JSON list of names, e.g. "
                        f"{json.dumps(DEFAULTS.get(key, []))}")
    return list(value)


def flag(key: str) -> bool:
    """A true/false setting."""
    value = get(key)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


SECRETS = frozenset({"api_key", "api_token", "tenant_tokens"})
HTTP_FIELDS = frozenset(f for f in HttpConfig.__dataclass_fields__ if not f.startswith("_"))


def source_setting(source: str, name: str) -> str:
    """How a user sets the source setting `name`: its variable, TOML file, section and key."""
    if name in HTTP_FIELDS:
        return (f"SOURCES__HTTP__{name.upper()} or SOURCES__{source.upper()}__HTTP__"
                f"{name.upper()} (or {name} under [sources.http] in .dlt/config.toml)")
    toml = "secrets.toml" if name in SECRETS else "config.toml"
    return (f"SOURCES__{source.upper()}__{name.upper()} (or {name} under [sources.{source}] "
            f"in .dlt/{toml})")


def _expected(hint: Any) -> str:
    text = str(getattr(hint, "__name__", hint)).lower()
    if any(w in text for w in ("sequence", "list", "tuple")):
        return "a JSON list, e.g. [\"a\", \"b\"]"
    if any(w in text for w in ("dict", "mapping")):
        return "a JSON object, e.g. {\"key\": \"value\"}"
    if text in ("int", "float"):
        return f"a number ({text})"
    return f"a {text}"


def config_error(source: str, chain: Sequence[BaseException]) -> Optional[str]:
    """The one-line message for a missing or invalid setting in an exception chain, naming
    the exact environment variable and TOML key; None when the chain holds no such error."""
    for exc in chain:
        if isinstance(exc, ConfigFieldMissingException):
            fields = ", ".join(exc.fields)
            how = "; ".join(source_setting(source, f) for f in exc.fields)
            return f"{source}: missing setting(s) {fields}: set {how}"
    for exc in chain:
        if isinstance(exc, ConfigValueCannotBeCoercedException):
            value = str(exc.field_value)
            shown = "***" if exc.field_name in SECRETS else repr(value[:60])
            return (f"{source}: setting {exc.field_name} = {shown} is not "
                    f"{_expected(exc.hint)}; set {source_setting(source, exc.field_name)}")
    return None


def enforce_extract_order(pipeline_name: str) -> None:
    """Extract a source's resources one after another, in declaration order.

    A later resource may need what an earlier one read in the same run (Session Services'
    tickets follow its orders scan); the earlier one hands it over (`sources.depends`), and
    the later one refuses to run before it has. dlt reads this from its `[extract]`
    settings, so it is set here, over any value a provider holds, for every section dlt
    looks it up in.
    """
    os.environ["EXTRACT__NEXT_ITEM_MODE"] = "fifo"
    os.environ[f"{pipeline_name.upper()}__EXTRACT__NEXT_ITEM_MODE"] = "fifo"


def use_home_settings() -> None:
    """Read `.dlt/` from `SESSIONSYNC_HOME` when it is set (dlt's `DLT_PROJECT_DIR`)."""
    if os.environ.get(HOME_ENV):
        os.environ.setdefault("DLT_PROJECT_DIR", str(home()))
