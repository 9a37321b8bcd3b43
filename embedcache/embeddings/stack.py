"""Several token embedders side by side: forward LM, backward LM, word vectors → one ``(n, ΣD)`` tensor."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from embedcache.embeddings.base import TokenEmbedder, TokenizedSentences, TokenVectors, WhitespaceAfter


class EmbeddingStack(torch.nn.Module):
    """Concatenates the vectors of its members along the last dimension, in the given order.

    Members that are ``torch.nn.Module``s are registered, so ``.to(device)`` moves them all.

    Args:
        embedders: the members; at least one.
    """

    def __init__(self, embedders: Sequence[TokenEmbedder]) -> None:
        super().__init__()
        if not embedders:
            raise ValueError("an EmbeddingStack needs at least one embedder")
        for embedder in embedders:
            if not isinstance(embedder, TokenEmbedder):
                raise TypeError(
                    f"{type(embedder).__name__} is not a TokenEmbedder (no embed_batch/fingerprint)"
                )
        self.embedders = list(embedders)
        self.modules_list = torch.nn.ModuleList(e for e in embedders if isinstance(e, torch.nn.Module))

    @property
    def embedding_length(self) -> int:
        return sum(embedder.embedding_length for embedder in self.embedders)

    @property
    def is_static(self) -> bool:
        """True when no member changes during training, so the vectors may be cached."""
        return all(getattr(embedder, "static_embeddings", True) for embedder in self.embedders)

    def embed_batch(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        parts = [embedder.embed_batch(sentences, whitespace_after) for embedder in self.embedders]
        if len(parts) == 1:
            return parts[0]
        vectors = torch.cat([part.vectors.to(parts[0].vectors.device) for part in parts], dim=1)  # (n, ΣD)
        return TokenVectors(vectors, parts[0].sentence_offsets)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(b"embedcache.stack/1")
        for embedder in self.embedders:
            digest.update(embedder.fingerprint().encode())
        return digest.hexdigest()


def as_stack(embeddings: TokenEmbedder | Sequence[TokenEmbedder]) -> EmbeddingStack:
    """Wrap one embedder or a list of them in an :class:`EmbeddingStack` (a stack is returned as is)."""
    if isinstance(embeddings, EmbeddingStack):
        return embeddings
    if isinstance(embeddings, Sequence):
        return EmbeddingStack(list(embeddings))
    return EmbeddingStack([embeddings])
