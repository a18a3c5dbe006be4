"""Which package may import which: `sources/` never imports the runner or the schedulers,
and the runner and schedulers take the error types from `sources.errors`."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
ERRORS = {"SyncError", "ApiError", "PaginationError"}


def imports(path: Path) -> Iterator[Tuple[int, str, List[str]]]:
    """(line, module, names) of every import in a file, at any depth (lazy imports too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module, [alias.name for alias in node.names]


def test_sources_never_import_pipelines_or_schedules() -> None:
    files = sorted((ROOT / "sources").rglob("*.py"))
    assert len(files) > 20, "the walk found no sources"
    wrong = [f"{path.relative_to(ROOT)}:{line}: {module}" for path in files
             for line, module, _ in imports(path)
             if module.split(".")[0] in ("pipelines", "schedules")]
    assert not wrong, "sources/ imports the runner: " + ", ".join(wrong)


def test_runner_and_schedules_take_error_types_from_sources_errors() -> None:
    files = sorted([*(ROOT / "pipelines").rglob("*.py"), *(ROOT / "schedules").rglob("*.py")])
    wrong = [f"{path.relative_to(ROOT)}:{line}: {name} from {module}" for path in files
             for line, module, names in imports(path) for name in names
             if name in ERRORS and module != "sources.errors"]
    assert not wrong, ", ".join(wrong)
