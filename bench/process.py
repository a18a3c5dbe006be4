"""A command timed as a user runs it; imports nothing heavy, so a floor process that
imports its bench module pays no extra start-up."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, List, Optional


@dataclass
class Process:
    """A command run as a fresh process: its output, exit code, and what it cost."""

    out: str
    errors: str
    code: int
    wall: float  # from start to exit
    cpu: float  # user + system seconds of the process
    rss_mb: float  # its own peak RSS (`wait4`)


def timed_process(args: List[str], env: Dict[str, str], cwd: Optional[str] = None) -> Process:
    """Run `args` as a user would, timed from start to exit, with the child's own CPU and
    peak RSS (`wait4`), which a `resource.getrusage` of the children would mix up."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, errors = proc.communicate()
    return Process(out, errors, os.waitstatus_to_exitcode(status), wall,
                   usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
