"""The per-epoch training checkpoint: written atomically, read with ``torch.load(weights_only=True)``.

It holds only tensors and plain Python values (model and optimiser state, the scheduler's numbers, the score
history), so the safe loader reads it without any allow-list. It holds no random generator state: every epoch
reseeds its shuffling and dropout from the run's ``seed`` and the epoch's number
(:func:`~embedcache.training.distributed.epoch_seeds`), so a resumed run draws what an unstopped one would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from embedcache.atomic import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1
_START_OVER = "delete it (or train into another output directory) to start over"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: damaged, of another version, or of other settings."""


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``directory/checkpoint.pt`` via a temporary file and an atomic rename.

    Temporary files of earlier writers that were killed mid-write are removed first.
    """
    content = {"version": CHECKPOINT_VERSION, **state}
    return write_atomic(
        directory / CHECKPOINT_NAME, lambda temporary: torch.save(content, temporary), fsync=True
    )


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The last checkpoint in ``directory``, or ``None`` when there is none.

    Raises:
        CheckpointError: the file exists but is damaged or from another checkpoint version.
    """
    path = directory / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files
        raise CheckpointError(f"{path}: damaged checkpoint ({error}); {_START_OVER}") from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: not an embedcache checkpoint of version {CHECKPOINT_VERSION}; {_START_OVER}"
        )
    return state


def check_same_settings(path: Path, saved: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse to resume a run whose model or optimiser is shaped differently from the checkpoint's.

    Args:
        path: the checkpoint, for the message.
        saved: the settings stored in the checkpoint (``None`` in checkpoints written before they were).
        current: the same settings of this run.

    Raises:
        CheckpointError: naming every setting that differs, with both values.
    """
    if saved is None:
        return
    differ = sorted(key for key in current.keys() | saved.keys() if current.get(key) != saved.get(key))
    if differ:
        was = ", ".join(f"{key}={saved.get(key)!r}" for key in differ)
        now = ", ".join(f"{key}={current.get(key)!r}" for key in differ)
        raise CheckpointError(
            f"{path}: written with {was}, but this run has {now}; resume with the checkpoint's settings, "
            f"or {_START_OVER}"
        )


def resume_failure(path: Path, error: Exception) -> CheckpointError:
    """The state of an older checkpoint (without settings) that does not fit this run's model or optimiser."""
    return CheckpointError(
        f"{path}: does not fit this run's model or optimizer ({type(error).__name__}: {error}); resume "
        f"with the settings it was written with, or {_START_OVER}"
    )
