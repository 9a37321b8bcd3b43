"""Reference vectors computed straight from the embedders, for comparison with what a cache returns.

A char LM's vectors for a sentence may depend, by float rounding, on which sentences share its batch
(batched matmuls). The references are therefore computed on exactly the batches the cache builds with
(``plan_batches`` with the same ``chars_per_batch``), so comparisons can be exact on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from embedcache.cache.build import DEFAULT_CHARS_PER_BATCH, plan_batches
from embedcache.cache.corpus_tokens import SentenceLike, normalize_sentences
from embedcache.embeddings.base import TokenEmbedder
from embedcache.settings import storage_mode


def reference_vectors(
    sentences: Sequence[SentenceLike],
    embedders: Sequence[TokenEmbedder],
    chars_per_batch: int = DEFAULT_CHARS_PER_BATCH,
) -> list[torch.Tensor]:
    """Each sentence's ``(len, D)`` float32 vectors, embedders side by side, batched as the cache batches."""
    corpus = normalize_sentences(sentences)
    dim = sum(e.embedding_length for e in embedders)
    vectors = [torch.zeros(0, dim) for _ in range(corpus.n_sentences)]
    with torch.no_grad(), storage_mode("gpu"):
        for ids in plan_batches(corpus.char_lengths, chars_per_batch):
            tokens = [corpus.tokens[i] for i in ids]
            spaces = [corpus.whitespace_after[i] for i in ids]
            parts = [e.embed_batch(tokens, spaces) for e in embedders]
            block = torch.cat([p.vectors.cpu() for p in parts], dim=1)  # (n, D)
            lengths = parts[0].lengths.tolist()
            for i, rows in zip(ids.tolist(), block.split(lengths), strict=True):
                vectors[i] = rows
    return vectors


def pad(vectors: Sequence[torch.Tensor], ids: Sequence[int]) -> torch.Tensor:
    """``(B, T, D)`` zero-padded stack of ``vectors[i]`` for ``i`` in ``ids``."""
    dim = vectors[0].shape[1]
    max_len = max((vectors[i].shape[0] for i in ids), default=0)
    padded = torch.zeros(len(ids), max_len, dim)
    for row, i in enumerate(ids):
        padded[row, : vectors[i].shape[0]] = vectors[i]
    return padded
