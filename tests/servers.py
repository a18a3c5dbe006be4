"""Real servers the tests start and stop themselves: Postgres (from the `pgserver` wheel's
binaries) and an S3-compatible server (moto's standalone server), both on 127.0.0.1.

Postgres refuses to run as root; as root the server runs as an unprivileged system user
(created once, as `pgserver` itself does). It listens on TCP with password authentication
(scram-sha-256), as a shared warehouse would, so the tests prove the password is used and
never leaks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

PG_USER = "sessionsync_pg"  # the system user the server runs as when the tests run as root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """A running Postgres server: superuser `postgres` with `password` on 127.0.0.1:`port`."""

    folder: Path
    port: int
    password: str
    user: Optional[str]
    started_seconds: float

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> Any:
        import psycopg2

        con = psycopg2.connect(self.dsn(database))
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def stop(self) -> None:
        _pg("pg_ctl", ["-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop"],
            self.user)
        shutil.rmtree(self.folder, ignore_errors=True)


def _pg(binary: str, args: list, user: Optional[str]) -> None:
    from pgserver._commands import POSTGRES_BIN_PATH

    subprocess.run([str(POSTGRES_BIN_PATH / binary), *args], check=True, user=user,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


def start_postgres() -> Postgres:
    """initdb and start a throwaway cluster; about 3 s."""
    from pgserver._commands import POSTGRES_BIN_PATH

    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="sessionsync-pg-"))
    folder.chmod(0o755)
    user = None
    if os.geteuid() == 0:
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_USER)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        shutil.chown(folder, PG_USER, PG_USER)
        user = PG_USER
    password = "pg-" + secrets.token_hex(12)
    pwfile = folder / "pw"
    pwfile.write_text(password)
    if user:
        shutil.chown(pwfile, user, user)
    data = folder / "data"
    _pg("initdb", ["-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                   f"--pwfile={pwfile}", "--encoding=utf8", "--no-sync"], user)
    pwfile.unlink()
    port = free_port()
    _pg("pg_ctl", ["-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                   f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start"], user)
    return Postgres(folder, port, password, user, time.perf_counter() - started)


@dataclass
class S3:
    """moto's S3-compatible server on 127.0.0.1 (a process of its own), with one key pair."""

    process: subprocess.Popen
    endpoint: str
    key_id: str
    secret: str

    def settings(self, bucket: str) -> Dict[str, str]:
        """dlt's filesystem settings (env vars) for a new bucket of this server."""
        self.client().create_bucket(Bucket=bucket)
        return {
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID": self.key_id,
            "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY": self.secret,
            "DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL": self.endpoint,
            "DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_s3() -> S3:
    """Start `moto_server` in its own process (a server thread in the test process would
    share its GIL with delta-rs calls that wait on it)."""
    import sys

    import httpx

    port = free_port()
    # Requests must be signed with a key the server knows (after the three that create it),
    # so a wrong secret is refused as it would be by a real S3.
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                                "127.0.0.1", "-p", str(port)],
                               env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(endpoint + "/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("moto_server did not start")
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="sessionsync")
    iam.put_user_policy(UserName="sessionsync", PolicyName="s3", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
        '"Resource": "*"}]}'))
    key = iam.create_access_key(UserName="sessionsync")["AccessKey"]
    return S3(process, endpoint, key["AccessKeyId"], key["SecretAccessKey"])
