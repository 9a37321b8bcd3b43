"""The build pass: embed a corpus batch by batch straight into a preallocated store.

Sentences are sorted by character length (longest first, so an out-of-memory batch shows up at once) and cut
into batches whose *padded* character count (sentences × longest) stays within ``chars_per_batch``: the LM
then reads little padding. Each batch's sentences become one contiguous row range of the store, so a batch
is written as one ``(n_tokens, D)`` block: no per-token tensors, no list of batches.

With a CUDA compute device and a host store, batch k's device→host copy runs on a side stream while the LM
works on batch k + 1 (see :class:`DeviceToHostWriter`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from embedcache.cache.corpus_tokens import CorpusTokens
from embedcache.cache.store import pinned_staging_buffer
from embedcache.embeddings.base import TokenEmbedder
from embedcache.settings import storage_mode

logger = logging.getLogger(__name__)

DEFAULT_CHARS_PER_BATCH = 16_384


def plan_batches(
    char_lengths: np.ndarray, chars_per_batch: int = DEFAULT_CHARS_PER_BATCH
) -> list[np.ndarray]:
    """Sentence ids per LM batch: longest first, each batch's padded characters within ``chars_per_batch``.

    Empty sentences (0 characters) are left out: they have no rows and need no LM pass. A sentence longer
    than the budget gets a batch of its own.

    Args:
        char_lengths: ``(n_sentences,)`` characters per sentence.
        chars_per_batch: budget of ``batch size × longest sentence`` characters.
    """
    if not isinstance(chars_per_batch, int) or chars_per_batch < 1:
        raise ValueError(f"chars_per_batch must be a positive int, got {chars_per_batch!r}")
    order = np.argsort(-char_lengths, kind="stable")  # (n_sentences,) longest first
    order = order[char_lengths[order] > 0]
    batches: list[np.ndarray] = []
    start = 0
    while start < order.size:
        longest = int(char_lengths[order[start]])  # sorted: the first sentence sets the padded width
        size = max(1, chars_per_batch // longest)
        batches.append(order[start : start + size])
        start += size
    return batches


def row_starts_for(lengths: np.ndarray, batches: Sequence[np.ndarray]) -> np.ndarray:
    """``(n_sentences,)`` first store row of each sentence when batches are written one after another."""
    build_order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths[build_order])  # (n_built,) end row of each sentence in build order
    starts = np.zeros(lengths.size, dtype=np.int64)  # empty sentences start at row 0 (they read no row)
    starts[build_order] = ends - lengths[build_order]
    return starts


class BlockWriter(Protocol):
    """Puts each batch's ``(n, D)`` block into the store at a row; ``finish`` makes every write visible."""

    def write(self, start: int, block: torch.Tensor) -> None: ...

    def finish(self) -> None: ...


class DirectWriter:
    """A plain ``copy_`` (cast included): the block and the store are on the same device, or no CUDA."""

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target

    def write(self, start: int, block: torch.Tensor) -> None:
        self.target[start : start + block.shape[0]].copy_(block)

    def finish(self) -> None:
        if self.target.device.type == "cuda":
            # Readers may use other streams (prefetch): let them see every row.
            torch.cuda.synchronize(self.target.device)


class DeviceToHostWriter:
    """Copies CUDA blocks into a host store on a side stream, overlapping the LM's next batch.

    Each block is cast to the storage dtype on the device (fewer bytes over the bus), then copied without
    blocking: straight into the store when it is pinned (``cpu``), else into a pinned staging buffer that is
    written to the mapped file (``disk``) one batch later, once its copy event has fired. ``record_stream``
    keeps the caching allocator from reusing a block while its copy is in flight.
    """

    def __init__(self, target: torch.Tensor, device: torch.device) -> None:
        self.target = target
        self.stream = torch.cuda.Stream(device)
        self.staged = not target.is_pinned()
        self.pending: tuple[int, torch.Tensor, torch.cuda.Event] | None = None

    def write(self, start: int, block: torch.Tensor) -> None:
        block = block.to(self.target.dtype)  # (n, D) on the device
        self.stream.wait_event(torch.cuda.current_stream(block.device).record_event())
        if self.staged:
            destination = pinned_staging_buffer(tuple(block.shape), self.target.dtype)
        else:
            destination = self.target[start : start + block.shape[0]]
        with torch.cuda.stream(self.stream):
            destination.copy_(block, non_blocking=True)
            copied = self.stream.record_event()
        block.record_stream(self.stream)
        self._flush_pending()
        if self.staged:
            self.pending = (start, destination, copied)

    def _flush_pending(self) -> None:
        if self.pending is None:
            return
        start, staging, copied = self.pending
        copied.synchronize()  # the host may read the staging buffer only after its copy has landed
        self.target[start : start + staging.shape[0]].copy_(staging)
        self.pending = None

    def finish(self) -> None:
        self._flush_pending()
        self.stream.synchronize()


def block_writer(target: torch.Tensor, block_device: torch.device) -> BlockWriter:
    """The writer for blocks made on ``block_device`` going into ``target``."""
    if block_device.type == "cuda" and target.device.type == "cpu":
        return DeviceToHostWriter(target, block_device)
    return DirectWriter(target)


def embed_block(
    embedders: Sequence[TokenEmbedder],
    tokens: list[Sequence[str]],
    spaces: list[Sequence[int]],
    device: torch.device,
) -> torch.Tensor:
    """``(n_tokens, D)`` vectors of one batch on ``device``, the embedders' outputs side by side along D."""
    n_tokens = sum(len(sentence) for sentence in tokens)
    parts = []
    for embedder in embedders:
        vectors = embedder.embed_batch(tokens, spaces).vectors  # (n_tokens, D_e)
        if tuple(vectors.shape) != (n_tokens, embedder.embedding_length):
            raise ValueError(
                f"{type(embedder).__name__}.embed_batch returned shape {tuple(vectors.shape)} for a batch "
                f"of {n_tokens} tokens; expected ({n_tokens}, {embedder.embedding_length}) (its "
                "embedding_length): fix the embedder"
            )
        parts.append(vectors.to(device, non_blocking=True))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (n_tokens, D)


def fill_store(
    target: torch.Tensor,
    corpus: CorpusTokens,
    batches: Sequence[np.ndarray],
    embedders: Sequence[TokenEmbedder],
    device: torch.device,
    progress: bool = True,
) -> None:
    """Embed ``batches`` of ``corpus`` into ``target`` (``(n_tokens + 1, D)``), rows in batch order.

    The embedders run under storage mode ``"gpu"`` (vectors stay on the compute device); the writer does
    the one copy to the store's placement. The padding row is zeroed here.
    """
    target[-1].zero_()
    writer = block_writer(target, device)
    row = 0
    with (
        torch.no_grad(),
        storage_mode("gpu"),
        tqdm(total=corpus.n_tokens, unit="tok", unit_scale=True, disable=not progress, desc="cache") as bar,
    ):
        try:
            for ids in batches:
                tokens = [corpus.tokens[i] for i in ids]
                spaces = [corpus.whitespace_after[i] for i in ids]
                block = embed_block(embedders, tokens, spaces, device)  # (n, D)
                writer.write(row, block)
                row += block.shape[0]
                bar.update(block.shape[0])
        finally:
            writer.finish()  # also on errors: no copy may still be landing when the store is freed
    logger.debug("embedded %d tokens in %d batches into a %s store", row, len(batches), target.device)
