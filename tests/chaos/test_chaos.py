"""Chaos rounds: faults, kills and concurrent change, then a clean sync must equal the truth.

Each round, per source, with its own recorded seed: advance the sandbox clock a random span
(new, updated, late and deleted records, a growing log); switch on a random mix of faults
(429 bursts, 5xx with JSON, HTML or empty bodies, responses slower than the read timeout,
connection resets, truncated JSON, a repeated page); run `sessionsync sync` in a process and
SIGKILL it after a random number of requests or a random time, or let it finish; then switch
faults off, sync once more and compare the warehouse with the sandbox's truth. Besides faults,
each round switches on at random what the API's contract allows and our code must survive
(`BEHAVIOURS`): time passing during a run, changes nothing signals, torn log members...

    .venv/bin/python -m pytest -m chaos --chaos-runs 200 [--chaos-seed S]

A failing round names its seed and how to replay it: the rounds before it shaped the sandbox
world, so the replay starts from the same first seed (`--chaos-seed S --chaos-runs N`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
from collections import Counter
from typing import Any, Callable, Dict, Tuple

import pytest

from pipelines.run import sync_source
from pipelines.warehouse import connect, resolve_location
from sandbox.core import Faults
from tests.conftest import CLI, ROOT, TRUTH

DAY_S = 86_400
# source -> (truth check, longest clock advance per round in seconds)
SOURCES: Dict[str, Tuple[Callable[[Any], Any], float]] = {
    "mobilenext": (TRUTH["mobilenext"], 2 * DAY_S),
    "session_services": (TRUTH["session_services"], 3 * DAY_S),
    "tagbase": (TRUTH["tagbase"], DAY_S),
    "sessionvision": (TRUTH["sessionvision"], DAY_S),
}
FAULTS = (("rate_429", 0.2), ("rate_5xx", 0.15), ("rate_slow", 0.04), ("rate_reset", 0.05),
          ("rate_malformed", 0.05), ("rate_repeat", 0.03),
          # not a fault: the server clock moves up to this many seconds per request, so the
          # world changes while the run pages through it
          ("tick_seconds", 600.0))
# What each sandbox can do besides faults, all that its API's contract allows: changes no
# event or list order signals, records changed during their own scan, an event in both the
# live and the deleted list, torn and split gzip members in the verification log, ... Each
# is switched on with probability 1/2 at a random level up to the one given.
BEHAVIOURS: Dict[str, Tuple[Tuple[str, float], ...]] = {
    "mobilenext": (),
    "session_services": (("served_change_rate", 0.5), ("unsignalled_per_day", 30.0),
                         ("delete_between_lists", 0.5)),
    "tagbase": (("torn_rate", 0.4), ("split_rate", 0.5)),
    "sessionvision": (("awkward_ids", 0.3), ("silent_changes", 20.0),
                      ("finalise_sessions", 1.0), ("shift_sessions", 0.5)),
}
# The clean run re-verifies everything a source otherwise re-reads on a rolling schedule
# (each bound is documented in the source's README and tested on its own), so the
# comparison with the truth can be exact.
CLEAN_RUN = {"SOURCES__MOBILENEXT__RECONCILE_EVERY_HOURS": "0",
             "SOURCES__SESSION_SERVICES__RECHECK_HOURS": "0",
             "SOURCES__SESSIONVISION__RECHECK_ROWS": str(10**9)}


@pytest.mark.chaos
@pytest.mark.parametrize("source", list(SOURCES))
def test_faults_and_kills_lose_and_duplicate_nothing(source: str,
                                                     request: pytest.FixtureRequest) -> None:
    api = request.getfixturevalue(source)
    rounds = int(request.config.getoption("--chaos-runs"))
    given = request.config.getoption("--chaos-seed")
    first = int(given) if given is not None else random.randrange(1_000_000)
    stats: Counter = Counter()
    for n in range(rounds):
        seed = first + n
        try:
            _round(api, source, seed, stats)
        except AssertionError as exc:
            raise AssertionError(f"{source}: chaos round {n} (seed {seed}) failed; replay "
                                 f"with --chaos-seed {first} --chaos-runs {n + 1}: {exc}"
                                 ) from exc
    report = os.environ.get("CHAOS_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"source": source, "first_seed": first, "rounds": rounds,
                                **stats}) + "\n")
    print(f"{source}: seeds {first}..{first + rounds - 1}: {dict(stats)}")


def _round(api: Any, source: str, seed: int, stats: Counter) -> None:
    rng = random.Random(seed)
    truth, longest = SOURCES[source]
    behaviours = {name: rng.uniform(0.01, top) * (rng.random() < 0.5)
                  for name, top in BEHAVIOURS[source]}
    _switch(api, behaviours)
    api.advance(rng.uniform(0, longest))
    chosen = {name: rng.uniform(0.01, top) for name, top in FAULTS if rng.random() < 0.5}
    api.faults.update(retry_after=0, slow_seconds=1.5, **chosen)
    api.reset_stats()

    proc = subprocess.Popen([CLI, "sync", source], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "SOURCES__HTTP__READ_TIMEOUT": "1",
                                 "SOURCES__HTTP__MAX_RETRIES": "8"})
    kill = rng.choice(["requests", "time", "none"])
    timer = None
    if kill == "requests":
        at, seen = rng.randint(1, 40), []

        def kill_at(_request: Any) -> None:
            seen.append(1)
            if len(seen) == at:
                _kill(proc)
        api.before_request = kill_at
    elif kill == "time":
        timer = threading.Timer(rng.uniform(0.5, 6.0), lambda: _kill(proc))
        timer.start()
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        api.before_request = None
        if timer is not None:
            timer.cancel()
    stats["faults_injected"] += sum(api.injected.values())
    if proc.returncode == -signal.SIGKILL:
        stats["killed"] += 1
    elif proc.returncode == 0:
        stats["finished"] += 1
    else:  # a fault it must not paper over (a repeated page): one clear line, no traceback
        assert proc.returncode == 1, err[-1000:]
        assert "Traceback" not in err and any(
            line.startswith("error:") for line in err.splitlines()), err[-1000:]
        stats["failed_clearly"] += 1

    api.faults = Faults()
    _switch(api, dict.fromkeys(behaviours, 0.0))
    stats["behaviours_on"] += sum(1 for level in behaviours.values() if level)
    if source == "tagbase":  # the writer finishes what it had begun, as a restarted one does
        api.flush_log(final=True)
    os.environ.update(CLEAN_RUN)
    try:
        clean = sync_source(source)
    finally:
        for name in CLEAN_RUN:
            del os.environ[name]
    assert clean.ok, clean.error
    truth(api)
    with connect("duckdb", resolve_location("duckdb", None)) as con:
        stats["rows_compared"] += sum(
            con.execute(f'SELECT count(*) FROM "{source}"."{t}"').fetchone()[0]
            for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                    "WHERE table_schema = ?", [source]).fetchall()
            if not t.startswith("_dlt"))
    stats["rounds"] += 1


def _switch(api: Any, levels: Dict[str, float]) -> None:
    """Set the sandbox's behaviour switches (sessionvision keeps them in `api.behaviour`)."""
    target = getattr(api, "behaviour", api)
    for name, level in levels.items():
        setattr(target, name, type(getattr(target, name))(level))


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
