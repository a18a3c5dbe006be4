"""A source's settings, read from its dlt source function: the signature is the configuration
surface.

Every parameter of a source function is a setting dlt injects from `[sources.<name>]` (or
`SOURCES__<NAME>__<KEY>`), except `http` (the transport settings, their own section) and the
arguments the runner passes per run (`RUN_ARGUMENTS`). Its default is the code's default,
`dlt.secrets.value` marks a secret and `dlt.config.value` a required setting; its
description is its entry under `Args:` in the function's docstring. `sessionsync init` writes
its templates from these, and a test holds `.dlt/config.toml` to them.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Dict, List

from sources.spec import SourceSpec

# Arguments the runner (backfill, first sync) passes per run: never settings.
RUN_ARGUMENTS = frozenset({"window", "since", "defer"})
NESTED = frozenset({"http"})  # settings of their own section, `[sources.http]`


@dataclass(frozen=True)
class Setting:
    """One setting of a source.

    Attributes:
        name: the parameter's name (the key in `[sources.<name>]`).
        default: the code's default; None when the setting is required or secret.
        secret: read from secrets (`dlt.secrets.value`).
        required: no default (`dlt.config.value` or `dlt.secrets.value`).
        doc: the parameter's description in the docstring, as one line.
        kind: its annotation, as written (`str`, `List[str]`, ...).
    """

    name: str
    default: Any
    secret: bool
    required: bool
    doc: str
    kind: str


def settings(spec: SourceSpec) -> List[Setting]:
    """The settings of `spec`'s source function, in its order (imports the source)."""
    function = spec.load()
    docs = _args_section(inspect.unwrap(function).__doc__ or "")
    found = []
    for param in inspect.signature(function).parameters.values():
        if param.name in RUN_ARGUMENTS or param.name in NESTED:
            continue
        marker = repr(param.default)
        secret = marker.startswith("SecretValue(")
        required = secret or marker.startswith("ConfigValue(")
        annotation = param.annotation
        kind = annotation if isinstance(annotation, str) else getattr(
            annotation, "__name__", str(annotation))
        found.append(Setting(param.name, None if required else param.default, secret,
                             required, docs.get(param.name, ""), kind))
    return found


def _args_section(doc: str) -> Dict[str, str]:
    """`name -> description` from a Google-style docstring's `Args:` section."""
    lines = inspect.cleandoc(doc).splitlines()
    out: Dict[str, str] = {}
    inside, current = False, None
    for line in lines:
        if line.strip() == "Args:":
            inside = True
            continue
        if not inside:
            continue
        entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line)
        if entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif line.startswith("        ") and current:
            out[current] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break  # the next section (`Returns:`, ...)
    return out
