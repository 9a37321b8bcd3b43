"""Block checksums of a persisted store: written at publish, verified the first time each block is read.

A cache outlives the run that built it, so damage that keeps the file's size (a flipped bit, NaN written
over a row) must not be read back as vectors. ``vectors.bin`` is cut into blocks of whole rows, about
:data:`BLOCK_BYTES` each, and the CRC-32 of every block goes into the header when the cache is published.
A store copied into memory (``cpu``, ``gpu``) is verified whole as it is opened; a mapped store (``disk``)
verifies a block the first time a batch gathers rows from it, so opening stays free and each block is
hashed once per process.

CRC-32 (zlib, about 4 GB/s on one core) detects every error burst of up to 32 bits and other damage with
probability 1 - 2**-32: a check against decay and accidents, not against tampering (whoever can write
``vectors.bin`` can write the header too).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import torch

BLOCK_BYTES = 1 << 20
"""Bytes per checksummed block (rounded down to whole rows): small enough that a batch's first read of a
block costs well under a millisecond, large enough that the header holds one number per MiB."""


class CorruptCacheError(ValueError):
    """A cache directory fails validation; the message names the file and what is wrong."""


def rows_per_block(row_nbytes: int) -> int:
    """Rows in a checksummed block of a store whose rows have ``row_nbytes`` bytes (at least 1)."""
    return max(1, BLOCK_BYTES // max(row_nbytes, 1))


def block_checksums(vectors: torch.Tensor, block_rows: int) -> list[int]:
    """The CRC-32 of each block of ``block_rows`` rows of a CPU store (the last block may be shorter)."""
    return [_crc32(vectors[start : start + block_rows]) for start in range(0, vectors.shape[0], block_rows)]


def _crc32(rows: torch.Tensor) -> int:
    return zlib.crc32(rows.contiguous().view(torch.uint8).numpy().data)  # the raw bytes, whatever the dtype


class BlockVerifier:
    """Checks the blocks of a store against the checksums written with it, each block once.

    Args:
        path: the ``vectors.bin`` file, for messages.
        vectors: the ``(n_tokens + 1, D)`` store, mapped from ``path``.
        block_rows: rows per block.
        checksums: the CRC-32 of each block, from the header.
    """

    def __init__(self, path: Path, vectors: torch.Tensor, block_rows: int, checksums: Sequence[int]) -> None:
        self.path, self.vectors, self.block_rows, self.checksums = path, vectors, block_rows, checksums
        self.unverified = torch.ones(len(checksums), dtype=torch.bool)  # (n_blocks,)
        self.remaining = len(checksums)

    def verify_all(self) -> None:
        """Verify every block not verified yet (reads the whole file once).

        Raises:
            CorruptCacheError: a block differs from its checksum.
        """
        for block in self.unverified.nonzero().flatten().tolist():
            self._verify(block, remedy="")

    def verify_rows(self, rows: torch.Tensor) -> None:
        """Verify the blocks that store ``rows`` (int64 indices, any shape) fall in, if not verified yet.

        Raises:
            CorruptCacheError: a block differs from its checksum; the message says to delete the cache.
        """
        if self.remaining == 0:
            return
        blocks = torch.unique(rows.reshape(-1) // self.block_rows)  # (n,) blocks this batch reads
        for block in blocks[self.unverified[blocks]].tolist():
            self._verify(block, remedy=f"; delete {self.path.parent} and the next build writes it again")

    def _verify(self, block: int, remedy: str) -> None:
        start = block * self.block_rows
        rows = self.vectors[start : start + self.block_rows]
        if _crc32(rows) != self.checksums[block]:
            raise CorruptCacheError(
                f"{self.path}: rows {start:,} to {start + rows.shape[0] - 1:,} differ from the checksum "
                f"written with the cache (damaged after it was built){remedy}"
            )
        self.unverified[block] = False
        self.remaining -= 1
