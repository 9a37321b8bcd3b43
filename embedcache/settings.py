"""The global optimisation setting: how long token embeddings are kept after they are computed.

Token vectors are gathered from a character LM's hidden-state tensor (chars × batch × hidden). Whether the
gather must produce an owning copy depends on who keeps the result:

- ``"none"``: nothing keeps the vectors past the current batch. No copy is needed; per-token tensors may be
  views of the LM states (which are freed with the batch).
- ``"gpu"``: vectors are kept on the compute device (whatever it is, CPU included). They must own compact
  storage, or each kept view pins the whole hidden-state tensor of its batch.
- ``"cpu"``: vectors are kept in host memory. On CUDA one batched transfer (into pinned memory) is the copy;
  on a CPU compute device the "transfer" is a no-op, so a compact copy is made explicitly.

The setting is global because it is a property of the *run* (training, prediction), not of an embedding
object: the trainer and predict set it for their duration with :func:`storage_mode`, and embeddings read it
once per batch. The default, ``"gpu"``, is the safe one: it always yields owning compact vectors, so code
that keeps them without setting a mode (e.g. Flair's ``ModelTrainer`` without the embedcache plugin) never
retains whole LM states.

Two neighbouring concepts have their own names: where an embedding cache keeps its bytes is its
*placement* (:data:`embedcache.cache.placement.Placement`: ``gpu``, ``cpu``, ``disk``), and the trainer's
``storage_mode`` (:data:`embedcache.training.config.TrainingStorage`) is ``none`` or such a placement; the
trainer sets this module's mode from it (:func:`embedcache.training.config.gather_mode`).

Example:
    >>> import embedcache as ec
    >>> with ec.storage_mode("none"):
    ...     ec.get_storage_mode()
    'none'
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, get_args

StorageMode = Literal["none", "cpu", "gpu"]
STORAGE_MODES: tuple[StorageMode, ...] = get_args(StorageMode)
DEFAULT_STORAGE_MODE: StorageMode = "gpu"

_lock = threading.Lock()
_current: StorageMode = DEFAULT_STORAGE_MODE


def validate_storage_mode(mode: object) -> StorageMode:
    """Return ``mode`` if it is a known storage mode, else raise a ``ValueError`` listing the valid ones."""
    if mode not in STORAGE_MODES:
        valid = ", ".join(repr(m) for m in STORAGE_MODES)
        raise ValueError(f"unknown embedding storage mode {mode!r}; valid modes are {valid}")
    return mode


def get_storage_mode() -> StorageMode:
    """The embedding storage mode in force now."""
    return _current


def set_storage_mode(mode: StorageMode) -> StorageMode:
    """Set the embedding storage mode for the whole process; returns the previous one.

    Prefer :func:`storage_mode`, which restores the previous value when the block ends.
    """
    global _current
    checked = validate_storage_mode(mode)
    with _lock:
        previous, _current = _current, checked
    return previous


@contextmanager
def storage_mode(mode: StorageMode) -> Iterator[StorageMode]:
    """Use ``mode`` inside the ``with`` block and restore the previous mode afterwards, even on exceptions."""
    previous = set_storage_mode(mode)
    try:
        yield get_storage_mode()
    finally:
        set_storage_mode(previous)
