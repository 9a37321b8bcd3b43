"""The token store and batch assembly: one index computation, one gather, one host→device transfer.

The store is one ``(n_tokens + 1, D)`` tensor in the storage dtype; its last row is all zeros and every
padding cell of a batch points at it, so a padded batch needs no mask fill after the gather. Rows are in
build order (sentences sorted by length), so each sentence is a contiguous row range found through
``row_starts`` and ``lengths``.

Assembly by placement, with ``B`` sentences padded to ``T`` tokens:

- store on the compute device (``gpu``, or any placement when computing on the CPU): ``index_select`` of the
  ``(B * T,)`` rows, then the cast to float32 on that device;
- host store (``cpu`` pinned, ``disk`` mapped) and a CUDA device: ``index_select`` on the host *into a
  pinned staging buffer*, one non-blocking copy to the device (in the storage dtype: half the bytes for
  fp16/bf16), then the cast there. Staging buffers come from PyTorch's caching host allocator, which records
  the copy's event and never hands a block out again while a copy from it is in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from embedcache.cache.placement import Placement

SentenceIds = Sequence[int] | np.ndarray | torch.Tensor
Batch = tuple[torch.Tensor, torch.Tensor]
"""``(padded, lengths)``: ``(B, T, D)`` float32 on the compute device and ``(B,)`` int64 on the CPU."""


def pinned_staging_buffer(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A page-locked host buffer for one batch, recycled by PyTorch's caching host allocator."""
    return torch.empty(shape, dtype=dtype, pin_memory=True)


@dataclass(eq=False)
class TokenStore:
    """Token vectors of a whole corpus in one tensor, and where each sentence's rows are.

    Attributes:
        vectors: ``(n_tokens + 1, D)`` storage-dtype tensor; row ``n_tokens`` is zero (padding).
        row_starts: ``(n_sentences,)`` int64 CPU first row of each sentence (0 for empty sentences).
        lengths: ``(n_sentences,)`` int64 CPU tokens per sentence.
        placement: where ``vectors`` lives: ``gpu`` (the compute device), ``cpu`` or ``disk`` (mapped file).
        device: the compute device batches are assembled on.
        verify_rows: called with the store rows of every gather before they are read; a persisted ``disk``
            store checks there the checksums of blocks read for the first time (``None``: nothing to check).
    """

    vectors: torch.Tensor
    row_starts: torch.Tensor
    lengths: torch.Tensor
    placement: Placement
    device: torch.device
    verify_rows: Callable[[torch.Tensor], None] | None = None

    @property
    def n_sentences(self) -> int:
        return self.lengths.numel()

    @property
    def n_tokens(self) -> int:
        return self.vectors.shape[0] - 1

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.vectors.dtype

    @property
    def nbytes(self) -> int:
        """Exact bytes the vectors hold in their placement: ``(n_tokens + 1) × D × itemsize``."""
        return self.vectors.untyped_storage().nbytes()

    @property
    def _host_to_device(self) -> bool:
        return self.vectors.device.type == "cpu" and self.device.type == "cuda"

    def padded_rows(self, sentence_ids: SentenceIds) -> tuple[torch.Tensor, torch.Tensor]:
        """The store row of every cell of a padded batch, pads pointing at the zero row.

        Returns:
            ``(rows, lengths)``: ``(B, T)`` int64 rows and ``(B,)`` int64 tokens per sentence, on the CPU.

        Raises:
            ValueError: ``sentence_ids`` is not one-dimensional.
            IndexError: an id is outside ``[0, n_sentences)``.
        """
        ids = torch.as_tensor(sentence_ids, dtype=torch.int64).cpu()  # (B,)
        if ids.dim() != 1:
            raise ValueError(f"sentence ids must be a flat sequence of ints, got shape {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.n_sentences):
            raise IndexError(
                f"sentence ids must lie in [0, {self.n_sentences}) for this cache; "
                f"got ids from {int(ids.min())} to {int(ids.max())}"
            )
        lengths = self.lengths[ids]  # (B,)
        max_len = int(lengths.max()) if ids.numel() else 0
        steps = torch.arange(max_len)  # (T,)
        rows = self.row_starts[ids].unsqueeze(1) + steps  # (B, T)
        return rows.masked_fill_(steps >= lengths.unsqueeze(1), self.n_tokens), lengths

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` float32 on the compute device for ``(B, T)`` store rows: one gather, one transfer."""
        flat_rows = rows.reshape(-1)  # (B * T,)
        if self.verify_rows is not None:
            self.verify_rows(flat_rows)
        if self._host_to_device:
            staging = pinned_staging_buffer((flat_rows.numel(), self.dim), self.dtype)  # (B * T, D)
            torch.index_select(self.vectors, 0, flat_rows, out=staging)
            cells = staging.to(self.device, non_blocking=True)  # storage dtype: fewer bytes on the bus
        else:
            cells = self.vectors.index_select(0, flat_rows.to(self.vectors.device, non_blocking=True))
        return cells.view(*rows.shape, self.dim).to(device=self.device, dtype=torch.float32)

    def batch(self, sentence_ids: SentenceIds) -> Batch:
        """The padded float32 batch of ``sentence_ids`` on the compute device, and their lengths."""
        rows, lengths = self.padded_rows(sentence_ids)
        return self.gather(rows), lengths

    def batches(self, id_lists: Iterable[SentenceIds], prefetch: bool = True) -> Iterator[Batch]:
        """Yield :meth:`batch` for each id list; with ``prefetch``, batch k + 1 is assembled while k is used.

        Prefetching runs the host gather of the next batch in a worker thread (``index_select`` releases
        the GIL, and on ``disk`` it is where the page faults happen) and, on CUDA, issues its transfer on a
        side stream; the consumer's stream waits on that transfer before a batch is yielded.
        """
        if not prefetch:
            yield from (self.batch(ids) for ids in id_lists)
            return
        copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        pending_ids = iter(id_lists)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedcache-prefetch") as worker:
            pending = self._submit_next(worker, pending_ids, copy_stream)
            while pending is not None:
                padded, lengths, ready = pending.result()
                pending = self._submit_next(worker, pending_ids, copy_stream)
                if ready is not None:
                    consumer = torch.cuda.current_stream(self.device)
                    consumer.wait_event(ready)
                    padded.record_stream(consumer)  # made on the side stream, used and freed on this one
                yield padded, lengths

    def _submit_next(
        self, worker: ThreadPoolExecutor, pending_ids: Iterator[SentenceIds], stream: torch.cuda.Stream | None
    ) -> Future[tuple[torch.Tensor, torch.Tensor, torch.cuda.Event | None]] | None:
        ids = next(pending_ids, None)
        return None if ids is None else worker.submit(self._assemble_on, ids, stream)

    def _assemble_on(
        self, sentence_ids: SentenceIds, stream: torch.cuda.Stream | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.cuda.Event | None]:
        """:meth:`batch` on ``stream`` (in the worker thread), with the event that marks it done."""
        if stream is None:
            return (*self.batch(sentence_ids), None)
        with torch.cuda.stream(stream):
            padded, lengths = self.batch(sentence_ids)
            return padded, lengths, stream.record_event()
