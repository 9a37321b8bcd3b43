"""Temporary names of atomic writes, and the removal of those that killed writers left behind.

An atomic write puts its data under ``.<name>.tmp-<pid>-<random>`` beside the target (a model directory
also retires the old one as ``.<name>.old-<pid>`` where it cannot swap them) and renames it into place; a
process killed in between leaves that name behind. The name carries the writer's pid, so the next writer of
the same target tells a leftover (its process is gone) from a write in progress (its process runs) and
deletes only leftovers. A pid reused by a new process keeps a leftover until that process ends. pids of other
machines cannot be checked: do not let writers on several hosts share one output directory.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def temporary_prefix(target: Path) -> str:
    """The prefix of this process's temporary names for ``target`` (for ``mkstemp``/``mkdtemp``)."""
    return f".{target.name}.tmp-{os.getpid()}-"


def remove_leftovers(target: Path) -> list[Path]:
    """Delete the temporary files and directories of ``target`` whose writing process no longer runs."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:tmp|old)-(\d+)(?:-.*)?")
    removed = []
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and not process_running(int(match.group(1))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_running(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
