"""Measuring what a storage mode costs: peak process and device memory over a step, and embedding a corpus
batch by batch while counting the exact bytes that the kept vectors retain.

``embedcache profile``, the notebooks and the benchmarks all measure through these functions, so a number
means the same thing wherever it is printed.

Peak RSS is per step where a process can reset its peak (Linux, ``/proc/self/clear_refs``); elsewhere it is
the peak of the whole process so far, and :attr:`MemoryPeaks.rss_is_per_step` says so. Peak device memory
is ``torch.cuda.max_memory_allocated`` (tensors only, not the allocator's reserve), reset at each step.

Example:
    >>> with PeakMemoryTracker(torch.device("cpu")) as tracker:  # doctest: +SKIP
    ...     train()
    >>> tracker.peaks.rss_growth_bytes  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import torch
from flair.data import Sentence
from flair.embeddings import TokenEmbeddings
from flair.training_utils import store_embeddings

from embedcache.accounting import retained_nbytes, token_embeddings
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings.base import TokenEmbedder
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.stack import EmbeddingsLike, as_embedders
from embedcache.settings import StorageMode, storage_mode

BatchItem = TypeVar("BatchItem")


def can_reset_peak_rss() -> bool:
    """Whether this process can reset its peak RSS (Linux with a writable ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w"):
            return True
    except OSError:
        return False


def reset_peak_rss() -> None:
    """Reset the peak RSS (VmHWM, and with it ``ru_maxrss``) to the current RSS, where the platform can."""
    if can_reset_peak_rss():
        with open("/proc/self/clear_refs", "w") as control:
            control.write("5")


def peak_rss_bytes() -> int | None:
    """The process's peak RSS since start or the last :func:`reset_peak_rss`; ``None`` on Windows."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def release_freed_heap() -> None:
    """Hand memory that is free but still mapped back to the OS (glibc's ``malloc_trim``), where there is one.

    glibc keeps freed blocks mapped for reuse (its mmap threshold rises as large blocks are freed), so without
    this a step that reuses what an earlier step freed would not raise RSS at all, however much it allocates.
    """
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if libc_name is None:
        return
    trim = getattr(ctypes.CDLL(libc_name), "malloc_trim", None)  # absent from musl
    if trim is not None:
        trim(0)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a clock or memory read afterwards covers them (CUDA is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class MemoryPeaks:
    """Memory high-water marks of one step.

    Attributes:
        rss_start_bytes: the RSS when the step began (after a garbage collection).
        peak_rss_bytes: the highest RSS during the step.
        peak_device_bytes: ``torch.cuda.max_memory_allocated`` during the step; ``None`` off CUDA.
        rss_is_per_step: ``False`` where the peak could not be reset: it is then the process's peak so far.
    """

    rss_start_bytes: int | None
    peak_rss_bytes: int | None
    peak_device_bytes: int | None
    rss_is_per_step: bool

    @property
    def rss_growth_bytes(self) -> int | None:
        """How far the step raised RSS above where it began: what the step itself cost in host memory."""
        if self.rss_start_bytes is None or self.peak_rss_bytes is None or not self.rss_is_per_step:
            return None
        return self.peak_rss_bytes - self.rss_start_bytes


class PeakMemoryTracker:
    """A ``with`` block whose peak RSS and peak device memory are recorded in :attr:`peaks` at its end."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peaks: MemoryPeaks | None = None
        self._rss_start: int | None = None
        self._per_step = False

    def __enter__(self) -> PeakMemoryTracker:
        gc.collect()  # what an earlier step left for the collector must not count here
        release_freed_heap()  # ... nor the freed memory it left mapped: the step's allocations must show
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._per_step = can_reset_peak_rss()
        reset_peak_rss()
        self._rss_start = peak_rss_bytes() if self._per_step else None  # right after a reset: current RSS
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        synchronize(self.device)
        device_peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        self.peaks = MemoryPeaks(self._rss_start, peak_rss_bytes(), device_peak, self._per_step)


@dataclass(frozen=True)
class EmbeddingProfile:
    """Embedding a corpus once, batch by batch, and keeping what a storage mode keeps.

    Attributes:
        seconds: time inside the embedding calls only (the byte accounting is outside the clock).
        retained_bytes_after_batch: exact bytes held by every vector kept so far, after each batch.
        memory: peak RSS and device memory over the whole pass, accounting included.
    """

    seconds: float
    retained_bytes_after_batch: list[int]
    memory: MemoryPeaks

    @property
    def retained_bytes(self) -> int:
        return self.retained_bytes_after_batch[-1] if self.retained_bytes_after_batch else 0


def profile_embedding(
    embed_batch: Callable[[BatchItem], Sequence[torch.Tensor]],
    batches: Sequence[BatchItem],
    device: torch.device,
) -> EmbeddingProfile:
    """Run ``embed_batch`` on every batch, keep the tensors it returns to the end, and measure.

    ``embed_batch`` returns the tensors its storage mode keeps (none in ``none``). Batches never share a
    storage (each has its own LM states and its own copies), so the bytes retained after a batch are those
    retained before it plus the batch's own: the running sum is exact, and counting costs one pass per batch.
    """
    kept: list[torch.Tensor] = []  # holds the vectors until the end, as a trainer's storage would
    retained_after_batch: list[int] = []
    seconds = 0.0
    with PeakMemoryTracker(device) as tracker, torch.no_grad():
        for batch in batches:
            synchronize(device)
            started = time.perf_counter()
            tensors = embed_batch(batch)
            synchronize(device)
            seconds += time.perf_counter() - started
            kept.extend(tensors)
            previous = retained_after_batch[-1] if retained_after_batch else 0
            retained_after_batch.append(previous + retained_nbytes(tensors))
    assert tracker.peaks is not None
    return EmbeddingProfile(seconds, retained_after_batch, tracker.peaks)


def sentence_batches(sentences: Sequence[BatchItem], batch_size: int) -> list[Sequence[BatchItem]]:
    """``sentences`` in consecutive slices of ``batch_size``, in file order (no sorting, no shuffling)."""
    return [sentences[start : start + batch_size] for start in range(0, len(sentences), batch_size)]


def profile_charlm_storage(
    embeddings: EmbeddingsLike,
    sentences: Sequence[TaggedSentence],
    mode: StorageMode,
    batch_size: int,
) -> EmbeddingProfile:
    """embedcache: every embedder embeds each batch in ``mode``; the vectors are kept as a trainer keeps them.

    ``embeddings`` are embedcache embedders or Flair embedding objects (adapted, see
    :func:`~embedcache.embeddings.stack.as_embedders`). ``none`` drops the vectors after each batch (for
    character LMs they are views of the LM states); ``cpu`` and ``gpu`` keep them to the end, and
    :func:`~embedcache.accounting.retained_nbytes` then finds exactly ``n_tokens × D × 4``.
    """
    embedders = as_embedders(embeddings)

    def embed_batch(batch: Sequence[TaggedSentence]) -> list[torch.Tensor]:
        tokens, spaces = [s.tokens for s in batch], [s.whitespace_after for s in batch]
        vectors = [v for embedder in embedders for v in _token_tensors(embedder, tokens, spaces)]
        return vectors if mode != "none" else []

    with storage_mode(mode):
        return profile_embedding(embed_batch, sentence_batches(sentences, batch_size), _device_of(embedders))


def _token_tensors(
    embedder: TokenEmbedder, tokens: list[list[str]], spaces: list[list[int]]
) -> Sequence[torch.Tensor]:
    """One tensor per token as a Flair-face user keeps them (character LMs: views in ``none`` storage)."""
    encoder = embedder if isinstance(embedder, CharLMEncoder) else getattr(embedder, "encoder", None)
    if isinstance(encoder, CharLMEncoder):
        return encoder.token_tensors(tokens, spaces)
    return embedder.embed_batch(tokens, spaces).vectors.unbind(0)


def _device_of(embedders: Sequence[TokenEmbedder]) -> torch.device:
    for embedder in embedders:
        if isinstance(embedder, torch.nn.Module):
            for tensor in (*embedder.parameters(), *embedder.buffers()):
                return tensor.device
    return torch.device("cpu")


def profile_flair_storage(
    embeddings: TokenEmbeddings,
    sentences: Sequence[Sentence],
    mode: StorageMode,
    batch_size: int,
    device: torch.device,
) -> EmbeddingProfile:
    """Flair 0.15.1: ``embeddings.embed(batch)`` then ``store_embeddings(batch, mode)``, as its trainer does.

    The tensors counted are those left on the tokens afterwards (none in ``none``); in ``cpu`` and ``gpu``
    they are views of each batch's LM states, which the counting sees as whole storages.
    """

    def embed_batch(batch: Sequence[Sentence]) -> list[torch.Tensor]:
        embeddings.embed(list(batch))
        store_embeddings(list(batch), mode)
        return list(token_embeddings(batch))

    return profile_embedding(embed_batch, sentence_batches(sentences, batch_size), device)
