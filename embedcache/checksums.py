"""Fingerprints: the sha256 of a file, read in 1 MiB blocks so that a large file never sits in memory whole,
and of a network's tensors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file at ``path`` (a model card's provenance, an export's integrity record)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_tensors(digest: Any, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Feed each name and the raw bytes of its tensor to a ``hashlib`` ``digest`` (a weights fingerprint)."""
    import torch  # here, not above: file_sha256 serves start-up paths that never load torch

    for name, tensor in named_tensors:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
