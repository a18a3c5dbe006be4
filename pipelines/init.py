"""`sessionsync init [DIR]`: a starting `.dlt/config.toml` and `.dlt/secrets.toml` for the
chosen sources, so a new install has one place to fill in. It never overwrites a file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from pipelines.registry import SOURCES
from sources.errors import SyncError

SECRETS = {
    "mobilenext": '# api_key = "mob_..."  # or SOURCES__MOBILENEXT__API_KEY',
    "session_services": ("# tenant id -> the JWT issued for that tenant; or "
                         "SOURCES__SESSION_SERVICES__TENANT_TOKENS='{\"tnt_...\": \"eyJ...\"}'\n"
                         "# tenant_tokens = { \"tnt_...\" = \"eyJ...\" }"),
    "tagbase": '# api_key = "key_<id>:<secret>"  # the whole string; or SOURCES__TAGBASE__API_KEY',
    "sessionvision": '# api_token = "sv_pat_..."  # or SOURCES__SESSIONVISION__API_TOKEN',
}
CONFIG = {
    "mobilenext": ('# base_url = "https://api.mobilenexthq.com"\n'
                   "# organization_ids = []  # [] = every organization the key can see\n"
                   '# start_date = "2024-01-01"'),
    "session_services": ('# base_url = "https://api.session.services"\n'
                         '# start_date = "2024-01-01"'),
    "tagbase": ('# base_url = "https://platform.tagbase.io"\n'
                "# required: the folder (or fsspec URL) your integration appends the\n"
                "# verification documents to\n"
                '# verification_log_url = "/srv/tagbase-log"'),
    "sessionvision": ('# base_url = "https://app.sessionvision.com"\n'
                      "# required: the projects to sync\n"
                      "# project_ids = [\"4021\", \"4022\"]\n"
                      '# start_date = "2024-01-01"'),
}
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
    config_text = HEADER.format(enabled=enabled) + "".join(
        f"\n[sources.{s}]\n# max_lag = \"1h\"\n{CONFIG[s]}\n" for s in chosen)
    secrets_text = ("# Secrets: keep this file out of version control. Uncomment and fill in, or\n"
                    "# set the environment variables named here.\n" + "".join(
        f"\n[sources.{s}]\n{SECRETS[s]}\n" for s in chosen))
    settings_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text)
    secrets.write_text(secrets_text)
    secrets.chmod(0o600)
    return [config, secrets]
