"""One writer per source and warehouse, across `sync`, `backfill`, `schedule`, processes and
hosts.

`source_lock` is an advisory `flock` on `<pipelines dir>/<source>.lock`: it guards dlt's
local working folder and one host. The kernel releases it when its holder exits, however it
exits, so a lock left by a killed process is simply free: the next writer takes it and says
whose it was. The file holds the holder's pid, command and start time for the refusal message.

A warehouse that several hosts write (Postgres, object storage) needs a lock that lives in
the warehouse too; `warehouse_lock` takes both:
- Postgres: a session-level advisory lock per source (`pg_try_advisory_lock`). The server
  releases it when the holder's connection ends, killed or not (TCP keepalives end a vanished
  host's session within about a minute).
- Object storage: a lock object `<warehouse>/_sessionsync_locks/<source>.lock` created with a
  conditional put (`If-None-Match: *`), so of two writers exactly one creates it. It carries
  a lease that the holder renews every third of `LEASE`; a holder that stops renewing (killed,
  host gone) loses it when the lease runs out, and a writer on the same host takes over at once
  when the holder's process is gone. Takeover and release are conditional on the object's
  ETag, so no writer removes a lock it does not hold.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
import zlib
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from sources.errors import SyncError

log = logging.getLogger("sessionsync")
LOCKED_EXIT_CODE = 75  # EX_TEMPFAIL: another writer is running; try again later
LEASE = 60.0  # seconds an object-storage lock outlives its holder's last renewal
PG_LOCK_CLASS = 0x5E55  # first key of sessionsync's Postgres advisory locks


class LockedError(SyncError):
    """Another sessionsync process is writing this source into this warehouse."""


def _refused(source: str, holder: str) -> LockedError:
    return LockedError(f"{source}: another sessionsync run is writing this source "
                       f"({holder}); not starting a second writer")


def _holder() -> str:
    command = " ".join(os.path.basename(a) for a in sys.argv[:3])
    return (f"pid {os.getpid()} on {socket.gethostname()}, {command!r}, since "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z")


@contextmanager
def source_lock(source: str, folder: Path) -> Iterator[None]:
    """Hold the write lock of `source` on this host for the block, or raise `LockedError`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "unknown"
            raise _refused(source, holder) from None
        previous = os.pread(fd, 500, 0).decode(errors="replace").strip()
        if previous:
            log.warning("%s: taking over a lock its holder left behind (%s)", source, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder().encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def warehouse_lock(source: str, destination: str, location: Any) -> Iterator[None]:
    """Hold every lock a writer of `source` into this warehouse needs, or raise `LockedError`:
    the host's `source_lock`, and for a shared warehouse its lock in the warehouse."""
    from pipelines.warehouse import pipelines_dir

    with ExitStack() as stack:
        stack.enter_context(source_lock(source, pipelines_dir(destination, location)))
        if destination == "postgres":
            stack.enter_context(postgres_lock(source))
        elif isinstance(location, str):
            stack.enter_context(object_lock(source, location))
        yield


@contextmanager
def postgres_lock(source: str) -> Iterator[None]:
    """A session-level Postgres advisory lock on `source`, held by a connection of its own."""
    import psycopg2

    from pipelines.remote import postgres_credentials, postgres_dsn

    key = zlib.crc32(source.encode()) - 2**31  # a stable int4
    me = _holder()
    con = psycopg2.connect(**postgres_dsn(postgres_credentials()),
                           application_name=f"sessionsync {me}"[:63])
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (PG_LOCK_CLASS, key))
            row = cur.fetchone()
            if not (row and row[0]):
                cur.execute("SELECT a.application_name, a.client_addr FROM pg_locks l "
                            "JOIN pg_stat_activity a ON a.pid = l.pid "
                            "WHERE l.locktype = 'advisory' AND l.classid = %s "
                            "AND l.objid = %s::oid AND l.granted",
                            (PG_LOCK_CLASS, key % 2**32))
                found = cur.fetchone()
                holder = (f"{found[0]} from {found[1] or 'local socket'}" if found
                          else "a session of the database")
                raise _refused(source, holder)
        yield
    finally:
        con.close()  # ends the session, which releases its advisory lock


@contextmanager
def object_lock(source: str, url: str) -> Iterator[None]:
    """A leased lock object on object storage, renewed while the block runs."""
    from pipelines.remote import object_store

    fs, _ = object_store(url)
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    key = "/".join(p for p in (prefix, "_sessionsync_locks", f"{source}.lock") if p)
    lease = _ObjectLease(fs, bucket, key, source)
    lease.acquire()
    try:
        yield
    finally:
        lease.release()


class _ObjectLease:
    """The lock object of one source: create, renew, take over and delete, all conditional."""

    def __init__(self, fs: Any, bucket: str, key: str, source: str) -> None:
        self.fs, self.bucket, self.key, self.source = fs, bucket, key, source
        self.etag: Optional[str] = None
        self.stop = threading.Event()
        self.renewer: Optional[threading.Thread] = None

    def _body(self) -> bytes:
        return json.dumps({"holder": _holder(), "host": socket.gethostname(),
                           "pid": os.getpid(), "expires": time.time() + LEASE}).encode()

    def _put(self, **condition: str) -> bool:
        """Write the lock object if `condition` holds; False when it does not (HTTP 412)."""
        try:
            out = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.key,
                                  Body=self._body(), **condition)
        except (FileExistsError, OSError) as exc:
            if _precondition_failed(exc):
                return False
            raise
        self.etag = out["ETag"]
        return True

    def acquire(self) -> None:
        for attempt in range(3):  # again if the holder released it while we looked
            if self._put(IfNoneMatch="*"):
                break
            path = f"{self.bucket}/{self.key}"
            try:
                etag = self.fs.info(path, refresh=True)["ETag"]  # before the body: see below
                body: Dict[str, Any] = json.loads(self.fs.cat_file(path) or b"{}")
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            # If the object changed after `etag` was read, the put below fails (412), so a
            # lock renewed or taken meanwhile is never overwritten.
            if not self._stale(body) or not self._put(IfMatch=etag):
                raise _refused(self.source, str(body.get("holder", "unknown")))
            log.warning("%s: taking over a lock its holder left behind (%s)", self.source,
                        body.get("holder", "unknown"))
            break
        self.renewer = threading.Thread(target=self._renew, name="sessionsync-lease",
                                        daemon=True)
        self.renewer.start()

    @staticmethod
    def _stale(body: Dict[str, Any]) -> bool:
        """The lease ran out, or its holder was a process on this host that is gone."""
        if float(body.get("expires", 0)) < time.time():
            return True
        if body.get("host") == socket.gethostname():
            try:
                os.kill(int(body.get("pid", 0)), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError):
                return False
        return False

    def _renew(self) -> None:
        while not self.stop.wait(LEASE / 3):
            try:
                if self.etag is None or not self._put(IfMatch=self.etag):
                    log.error("%s: lost the warehouse lock (another writer took it over)",
                              self.source)
                    return
            except Exception as exc:  # noqa: BLE001  # retried at the next renewal
                log.warning("%s: could not renew the warehouse lock: %s", self.source,
                            type(exc).__name__)

    def release(self) -> None:
        self.stop.set()
        if self.renewer is not None:
            self.renewer.join()
        if self.etag is None:
            return
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key,
                            IfMatch=self.etag)
        except Exception as exc:  # noqa: BLE001  # it expires with its lease
            log.warning("%s: could not release the warehouse lock: %s", self.source,
                        type(exc).__name__)


def _precondition_failed(exc: BaseException) -> bool:
    """An S3 `412 Precondition Failed`, however fsspec wrapped it."""
    current: Optional[BaseException] = exc
    while current is not None:
        text = f"{type(current).__name__} {current}"
        if "PreconditionFailed" in text or "412" in text or isinstance(current, FileExistsError):
            return True
        current = current.__cause__ or current.__context__
    return False
