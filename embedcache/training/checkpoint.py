"""The per-epoch training checkpoint: written atomically, read with ``torch.load(weights_only=True)``.

It holds only tensors and plain Python values (model and optimiser state, the scheduler's numbers, random
generator states, the score history), so the safe loader reads it without any allow-list.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from embedcache.temporaries import remove_leftovers, temporary_prefix

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``directory/checkpoint.pt`` via a temporary file and an atomic rename.

    Temporary files of earlier writers that were killed mid-write are removed first.
    """
    target = directory / CHECKPOINT_NAME
    remove_leftovers(target)
    handle, temporary = tempfile.mkstemp(prefix=temporary_prefix(target), dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save({"version": CHECKPOINT_VERSION, **state}, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The last checkpoint in ``directory``, or ``None`` when there is none.

    Raises:
        ValueError: the file exists but is damaged or from another checkpoint version.
    """
    path = directory / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise ValueError(f"{path}: damaged checkpoint ({error}); delete it to start over") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: not an embedcache checkpoint of version {CHECKPOINT_VERSION}")
    return state
