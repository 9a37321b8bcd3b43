"""``EmbeddingCache``: build once, then assemble padded float32 batches from one contiguous store.

Example:
    >>> import torch, embedcache as ec
    >>> cache = ec.EmbeddingCache.build(sentences, [forward, backward], placement="cpu",
    ...                                 dtype=torch.float16, path="~/.cache/embedcache")  # doctest: +SKIP
    >>> padded, lengths = cache.batch([0, 5, 7])  # (3, T, D) float32 on the compute device  # doctest: +SKIP
    >>> for padded, lengths in cache.batches(id_lists, prefetch=True): ...  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from embedcache.cache.budget import MemoryBudget, OverBudgetPolicy, as_embedders, choose_placement
from embedcache.cache.build import DEFAULT_CHARS_PER_BATCH, fill_store, plan_batches, row_starts_for
from embedcache.cache.corpus_tokens import SentenceLike, normalize_sentences
from embedcache.cache.persist import (
    CachedFiles,
    CacheHeader,
    CorruptCacheError,
    cache_fingerprint,
    cache_write_error,
    load_or_build,
)
from embedcache.cache.persist import open_cache as open_cache_directory
from embedcache.cache.placement import (
    Placement,
    allocate_in_memory,
    anonymous_mapped_file,
    dtype_name,
    resolve_device,
    resolve_dtype,
    store_nbytes,
    validate_placement,
)
from embedcache.cache.store import Batch, SentenceIds, TokenStore
from embedcache.embeddings.stack import EmbeddingsLike

logger = logging.getLogger(__name__)


def _allocate(
    shape: tuple[int, int], dtype: torch.dtype, placement: Placement, device: torch.device
) -> torch.Tensor:
    """A store with no cache directory: in memory, or an unnamed temporary file for ``disk``."""
    if placement != "disk":
        return allocate_in_memory(shape, dtype, placement, device)
    directory = Path(tempfile.gettempdir())
    try:
        return anonymous_mapped_file(directory, shape, dtype)
    except OSError as error:
        remedy = "Point TMPDIR at a disk with free space, pass path=, or use placement='cpu'"
        raise cache_write_error(directory, error, shape[0] * shape[1] * dtype.itemsize, remedy) from error


def _load(files: CachedFiles, placement: Placement, device: torch.device) -> torch.Tensor:
    """The mapped vectors as they are (``disk``), or copied once into memory (``cpu``, ``gpu``)."""
    if placement == "disk":
        return files.vectors
    vectors = allocate_in_memory(files.header.shape, files.header.torch_dtype, placement, device)
    vectors.copy_(files.vectors)
    return vectors


class EmbeddingCache:
    """Token vectors of a corpus in one contiguous store, served as padded float32 batches.

    Build it with :meth:`build` (or reopen a directory with :meth:`open`); read ``nbytes`` for the exact
    bytes held in ``placement``; get batches with :meth:`batch` and :meth:`batches`. Sentence ids are
    positions in the corpus given to :meth:`build`.

    Attributes:
        store: the tensor store (vectors, row table, placement, compute device).
        fingerprint: sha256 of the embedders, dtype and corpus (see ``embedcache.cache.persist``).
        directory: the ``<root>/<fingerprint>`` directory holding the persisted cache, if any.
        reused: True when the vectors were read from an existing cache directory instead of being built.
    """

    def __init__(
        self, store: TokenStore, fingerprint: str, directory: Path | None = None, reused: bool = False
    ) -> None:
        self.store = store
        self.fingerprint = fingerprint
        self.directory = directory
        self.reused = reused

    @classmethod
    def build(
        cls,
        sentences: Iterable[SentenceLike],
        embeddings: EmbeddingsLike,
        placement: Placement = "cpu",
        dtype: torch.dtype | str = torch.float16,
        path: str | PathLike[str] | None = None,
        *,
        device: torch.device | str | None = None,
        chars_per_batch: int = DEFAULT_CHARS_PER_BATCH,
        progress: bool = True,
        rebuild: bool = True,
        memory_budget_bytes: MemoryBudget = None,
        on_over_budget: OverBudgetPolicy = "error",
    ) -> EmbeddingCache:
        """Embed every token of ``sentences`` once into a store, or reuse the persisted one.

        Args:
            sentences: ``TaggedSentence``s, lists of token strings or ``flair.data.Sentence``s; empty
                sentences are kept with length 0.
            embeddings: a ``TokenEmbedder``, a stack, a Flair embedding (``StackedEmbeddings``,
                ``FlairEmbeddings``, ...) or a list of them; their vectors are concatenated along D.
            placement: ``"gpu"`` (the compute device), ``"cpu"`` (pinned when computing on CUDA) or
                ``"disk"`` (a memory-mapped file: in ``path``, else an unnamed temporary file).
            dtype: storage dtype, ``float32``, ``float16`` or ``bfloat16``; batches are always float32.
            path: cache root directory. The cache is stored in ``path/<fingerprint>/`` and reused by later
                runs and other processes with the same embedders, dtype and corpus; ``None``: not persisted.
            device: compute device for building and batches; by default the first embedder's.
            chars_per_batch: LM batch budget, sentences × longest sentence in characters.
            progress: show a tqdm bar with tokens/s while building.
            rebuild: when ``path`` holds no valid cache for this fingerprint, build it; if False, raise
                ``CacheMissError`` instead (e.g. a training job that must not re-run the LMs).
            memory_budget_bytes: budget of the requested placement (int) or per placement (mapping).
            on_over_budget: ``"error"`` or ``"fallback"`` (gpu → cpu → disk), see ``embedcache.cache.budget``.

        Raises:
            ValueError: the corpus has no sentence, or an argument is invalid.
            OverBudgetError: the store exceeds the budget (``on_over_budget="error"``, or nowhere fits).
            CacheWriteError: ``path`` (or the temporary directory) cannot be written, or the disk is full.
            CacheMissError: no valid cache and ``rebuild=False``.
        """
        embedders = as_embedders(embeddings)
        corpus = normalize_sentences(sentences)
        if corpus.n_sentences == 0:
            raise ValueError(
                "cannot build an embedding cache from an empty corpus (0 sentences); check that the corpus "
                "file or split you passed is the one you meant and is not empty"
            )
        dtype, device = resolve_dtype(dtype), resolve_device(embedders, device)
        dim = sum(embedder.embedding_length for embedder in embedders)
        nbytes = store_nbytes(corpus.n_tokens, dim, dtype)
        placement = choose_placement(
            validate_placement(placement), nbytes, memory_budget_bytes, on_over_budget
        )
        batches = plan_batches(corpus.char_lengths, chars_per_batch)
        row_starts = row_starts_for(corpus.lengths, batches)
        fingerprint = cache_fingerprint(corpus, [embedder.fingerprint() for embedder in embedders], dtype)
        fill = functools.partial(
            fill_store, corpus=corpus, batches=batches, embedders=embedders, device=device, progress=progress
        )
        logger.info(
            "embedding cache: %d sentences, %d tokens, D=%d, %s, %s bytes in %s",
            corpus.n_sentences, corpus.n_tokens, dim, dtype_name(dtype), f"{nbytes:,}", placement,
        )  # fmt: skip
        if path is None:
            vectors = _allocate((corpus.n_tokens + 1, dim), dtype, placement, device)
            fill(vectors)
            store = TokenStore(
                vectors, torch.from_numpy(row_starts), torch.from_numpy(corpus.lengths), placement, device
            )
            return cls(store, fingerprint)
        header = CacheHeader(fingerprint, corpus.n_sentences, corpus.n_tokens, dim, dtype_name(dtype))
        table = np.stack([row_starts, corpus.lengths], axis=1)  # (n_sentences, 2)
        # A store copied into memory is read whole at once: verify it whole too (see cache.integrity).
        files, built = load_or_build(
            Path(path).expanduser(), header, table, fill, rebuild, verify_now=placement != "disk"
        )
        return cls._from_files(files, placement, device, reused=not built)

    @classmethod
    def open(
        cls, directory: str | PathLike[str], placement: Placement = "disk", device: torch.device | str = "cpu"
    ) -> EmbeddingCache:
        """Open a built cache directory (``<root>/<fingerprint>``) without its embedders.

        Raises:
            CorruptCacheError: the directory is missing files or fails validation (for a ``disk``
                placement, a block that fails its checksum raises it at the first batch that reads it).
        """
        directory, placement = Path(directory).expanduser(), validate_placement(placement)
        try:
            files = open_cache_directory(directory, verify_now=placement != "disk")
        except CorruptCacheError as error:
            raise CorruptCacheError(
                f"{error}. Rebuild it: EmbeddingCache.build(sentences, embeddings, path={directory.parent})"
            ) from error
        return cls._from_files(files, placement, torch.device(device), reused=True)

    @classmethod
    def _from_files(
        cls, files: CachedFiles, placement: Placement, device: torch.device, reused: bool
    ) -> EmbeddingCache:
        table = torch.from_numpy(files.table)  # (n_sentences, 2)
        vectors = _load(files, placement, device)
        verify_rows = files.verifier.verify_rows if files.verifier is not None else None
        store = TokenStore(vectors, table[:, 0].clone(), table[:, 1].clone(), placement, device, verify_rows)
        return cls(store, files.header.fingerprint, files.directory, reused)

    @property
    def placement(self) -> Placement:
        return self.store.placement

    @property
    def dtype(self) -> torch.dtype:
        """The storage dtype (batches are float32)."""
        return self.store.dtype

    @property
    def device(self) -> torch.device:
        """The compute device batches are returned on."""
        return self.store.device

    @property
    def embedding_length(self) -> int:
        return self.store.dim

    @property
    def n_tokens(self) -> int:
        return self.store.n_tokens

    @property
    def lengths(self) -> torch.Tensor:
        """``(n_sentences,)`` int64 tokens per sentence."""
        return self.store.lengths

    @property
    def nbytes(self) -> int:
        """Exact bytes of the vectors in ``placement``: ``(n_tokens + 1) × D × itemsize`` (+1: padding)."""
        return self.store.nbytes

    def __len__(self) -> int:
        return self.store.n_sentences

    def batch(self, sentence_ids: SentenceIds) -> Batch:
        """``(padded, lengths)``: ``(B, T, D)`` float32 on the compute device, zero past each length."""
        return self.store.batch(sentence_ids)

    def batches(self, id_lists: Iterable[SentenceIds], prefetch: bool = True) -> Iterator[Batch]:
        """:meth:`batch` for each list of ids, assembling the next batch in the background if ``prefetch``."""
        return self.store.batches(id_lists, prefetch)

    def __repr__(self) -> str:
        return (
            f"EmbeddingCache({len(self)} sentences, {self.n_tokens} tokens, D={self.embedding_length}, "
            f"{dtype_name(self.dtype)}, placement={self.placement!r}, nbytes={self.nbytes})"
        )
