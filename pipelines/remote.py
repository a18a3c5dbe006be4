"""Warehouses on other hosts: a Postgres database and Delta tables on S3-compatible storage.

Both take their settings from dlt's own configuration, so the loads, the run log, the lock
and the read-backs use one set of credentials: `[destination.postgres.credentials]`
(`DESTINATION__POSTGRES__CREDENTIALS`) and `[destination.filesystem.credentials]`
(`DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID`, `..._SECRET_ACCESS_KEY`,
`..._ENDPOINT_URL`, `..._REGION_NAME`). Messages name settings, never their values.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple
from urllib.parse import urlparse

import dlt
import duckdb
from dlt.common.configuration.exceptions import ConfigurationException

from sources.errors import SyncError
from sources.extensions import install_extension

POSTGRES_SETTING = ("[destination.postgres.credentials] in .dlt/secrets.toml or "
                    "DESTINATION__POSTGRES__CREDENTIALS")
S3_SETTING = ("[destination.filesystem.credentials] (aws_access_key_id, aws_secret_access_key, "
              "endpoint_url, region_name) or DESTINATION__FILESYSTEM__CREDENTIALS__<KEY>")


def postgres_credentials() -> Any:
    """dlt's resolved `PostgresCredentials`, or a one-line error naming the setting."""
    try:
        from dlt.destinations.impl.postgres.configuration import PostgresClientConfiguration

        spec = PostgresClientConfiguration()._bind_dataset_name(dataset_name="sessionsync_ops")
        return dlt.destinations.postgres().configuration(spec).credentials
    except ConfigurationException as exc:
        raise SyncError(f"postgres: missing or unreadable database credentials "
                        f"({type(exc).__name__}); set {POSTGRES_SETTING}") from None


def postgres_name(creds: Any) -> str:
    """The database's address without its password: `postgresql://user@host:port/db`."""
    return f"postgresql://{creds.username}@{creds.host}:{creds.port}/{creds.database}"


def postgres_dsn(creds: Any) -> Dict[str, Any]:
    """psycopg2 / libpq keyword arguments; TCP keepalives so a vanished client's session
    (and the advisory lock it holds) ends within about a minute."""
    native = {k: v for k, v in {
        "host": creds.host, "port": creds.port, "dbname": creds.database,
        "user": creds.username, "password": creds.password,
        "connect_timeout": creds.connect_timeout,
    }.items() if v is not None}
    return {**native, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
            "keepalives_count": 3}


def attach_postgres(con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
    """Attach the Postgres warehouse to a DuckDB connection as its default catalog.

    The password travels in a temporary DuckDB secret, not in the ATTACH string, so it is in
    no statement DuckDB could echo in an error.
    """
    load_extension(con, "postgres_scanner")
    creds = postgres_credentials()
    fields = {"HOST": creds.host, "PORT": creds.port, "DATABASE": creds.database,
              "USER": creds.username, "PASSWORD": creds.password}
    body = ", ".join(f"{k} {sql_string(str(v))}" for k, v in fields.items() if v is not None)
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET sessionsync_pg (TYPE postgres, {body})")
    mode = ", READ_ONLY" if read_only else ""
    con.execute(f"ATTACH '' AS warehouse (TYPE postgres, SECRET sessionsync_pg{mode})")
    con.execute("USE warehouse")


def filesystem_config(url: str) -> Any:
    """dlt's resolved filesystem configuration for a bucket URL (credentials and bucket;
    outside a pipeline its dataset and local folder stay unset)."""
    try:
        return dlt.destinations.filesystem(bucket_url=url).configuration(
            None, accept_partial=True)  # type: ignore[arg-type]
    except ConfigurationException as exc:
        raise SyncError(f"{url}: missing or unreadable storage credentials "
                        f"({type(exc).__name__}); set {S3_SETTING}") from None


def object_store(url: str) -> Tuple[Any, Dict[str, str]]:
    """An fsspec filesystem for `url` and delta-rs storage options, from dlt's settings."""
    from dlt.common.storages.fsspec_filesystem import fsspec_from_config

    config = filesystem_config(url)
    fs, _ = fsspec_from_config(config)
    options = config.credentials.to_object_store_rs_credentials() if url.startswith("s3") else {}
    return fs, options


def attach_s3(con: duckdb.DuckDBPyConnection, url: str) -> None:
    """Give a DuckDB connection read access to the bucket of `url` (httpfs + a secret)."""
    load_extension(con, "httpfs")
    creds = filesystem_config(url).credentials
    fields: Dict[str, Any] = {"KEY_ID": creds.aws_access_key_id,
                              "SECRET": creds.aws_secret_access_key,
                              "SESSION_TOKEN": creds.aws_session_token,
                              "REGION": creds.region_name}
    if creds.endpoint_url:
        endpoint = urlparse(creds.endpoint_url)
        fields.update(ENDPOINT=endpoint.netloc, URL_STYLE="path",
                      USE_SSL=str(endpoint.scheme == "https").lower())
    body = ", ".join(f"{k} {v if k == 'USE_SSL' else sql_string(str(v))}"
                     for k, v in fields.items() if v is not None)
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET sessionsync_s3 (TYPE s3, {body})")


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load a DuckDB extension shipped as a `duckdb-ext-*` wheel (no download)."""
    install_extension(name)
    con.execute(f"LOAD {name}")
