"""Where a run's batches come from: the budget decides the cache's placement, then each split is cached
once (or, with ``none`` storage, embedded anew for every batch)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from embedcache.cache import EmbeddingCache, estimate
from embedcache.cache.budget import choose_placement
from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.backends import use_backend
from embedcache.training.batches import BatchSource, LiveEmbeddings
from embedcache.training.config import TrainingConfig, TrainingStorage

log = logging.getLogger(__name__)


def fitted_storage(
    storage: TrainingStorage,
    splits: Sequence[Sequence[TaggedSentence]],
    tagger: SequenceTagger,
    config: TrainingConfig,
) -> TrainingStorage:
    """The storage of all this rank's caches together, decided before any LM runs.

    The budget covers the train and dev stores at once (each alone could fit while both do not); over it,
    ``on_over_budget`` fails now with the arithmetic or falls back to a slower placement.
    """
    if storage == "none" or config.memory_budget_bytes is None:
        return storage
    dtype = getattr(torch, config.cache_dtype)
    needed = sum(estimate(split, tagger.embeddings, dtype) for split in splits)
    return choose_placement(storage, needed, config.memory_budget_bytes, config.on_over_budget)


def batch_source(
    storage: TrainingStorage,
    sentences: Sequence[TaggedSentence],
    split: str,
    tagger: SequenceTagger,
    config: TrainingConfig,
    device: torch.device,
    progress: bool,
) -> BatchSource:
    """The embedders run live (``none``), or an embedding cache of ``sentences`` built in ``storage``."""
    if storage == "none":
        return LiveEmbeddings(tagger, sentences)
    log.info("caching the %s split's embeddings (%s storage, %s)", split, storage, config.cache_dtype)
    if config.cache_int8:
        use_backend(tagger, "onnx", int8=True, head=False)  # the fingerprints, so the cache keys, say int8
    try:
        return EmbeddingCache.build(
            sentences,
            tagger.embeddings,
            placement=storage,
            dtype=getattr(torch, config.cache_dtype),
            path=config.cache_dir,
            device=device,
            progress=progress,
        )
    finally:
        if config.cache_int8:
            use_backend(tagger, "torch")
