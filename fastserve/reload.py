"""``--reload``: watch the source files (watchfiles) and tell the supervisor what changed."""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from fastserve.config import Config

logger = logging.getLogger("fastserve.error")

# uvicorn's defaults: Python sources, less editor droppings and hidden files.
DEFAULT_INCLUDES = ["*.py"]
DEFAULT_EXCLUDES = [".*", ".py[cod]", ".sw.*", "~*"]
IGNORED_DIRECTORIES = {
    "__pycache__",
    ".git",
    ".hg",
    ".svn",
    ".venv",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    "node_modules",
}


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class ReloadFilter:
    """Which changed paths restart the worker: --reload-include globs, less --reload-exclude ones."""

    def __init__(self, includes: list[str], excludes: list[str]) -> None:
        self.includes = includes or DEFAULT_INCLUDES
        # An explicitly included pattern is never excluded by a default one.
        self.excludes = [pattern for pattern in excludes or DEFAULT_EXCLUDES if pattern not in self.includes]

    def __call__(self, change: object, path: str) -> bool:
        parts = Path(path).parts
        if any(part in IGNORED_DIRECTORIES for part in parts[:-1]):
            return False
        name = parts[-1] if parts else path
        if any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern) for pattern in self.excludes):
            return False
        return any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern) for pattern in self.includes)


def watched_directories(config: Config) -> list[str]:
    directories = [os.path.abspath(path) for path in _as_list(config.reload_dirs)] or [os.getcwd()]
    missing = [path for path in directories if not os.path.isdir(path)]
    for path in missing:
        logger.warning("--reload-dir %s is not a directory; not watching it", path)
    return [path for path in directories if path not in missing]


def watch_changes(config: Config, changes: Connection, stop: threading.Event) -> None:
    """Run in a thread of the supervisor: send each batch of relevant changed paths down ``changes``."""
    import watchfiles

    directories = watched_directories(config)
    watch_filter = ReloadFilter(_as_list(config.reload_includes), _as_list(config.reload_excludes))
    logger.info("Watching for file changes in %s", ", ".join(directories))
    delay_ms = int(config.reload_delay * 1000)
    try:
        for batch in watchfiles.watch(
            *directories,
            watch_filter=watch_filter,
            stop_event=stop,
            debounce=max(delay_ms, 50),
            step=50,
            raise_interrupt=False,
        ):
            paths = sorted({os.path.relpath(path) for _, path in batch})
            changes.send(paths)
    except OSError as exc:
        logger.error("--reload: watching stopped: %s", exc)
    finally:
        changes.close()
