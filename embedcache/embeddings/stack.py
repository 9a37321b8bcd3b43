"""Several token embedders side by side: forward LM, backward LM, word vectors → one ``(n, ΣD)`` tensor.

Wherever embedcache takes embedders (the tagger, the trainer, the cache, ``estimate``, the profiler), they
go through :func:`as_embedders`, which also accepts Flair's embedding objects (``FlairEmbeddings``,
``StackedEmbeddings``, ``WordEmbeddings``, other static ``TokenEmbeddings``) and adapts them (see
:mod:`embedcache.embeddings.flair_adapters`, imported only when a Flair object is met).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Union

import torch

from embedcache.embeddings.base import TokenEmbedder, TokenizedSentences, TokenVectors, WhitespaceAfter

if TYPE_CHECKING:
    from flair.embeddings import TokenEmbeddings

EmbeddingsLike = Union[
    "TokenEmbedder", "TokenEmbeddings", "EmbeddingStack", Sequence[Union["TokenEmbedder", "TokenEmbeddings"]]
]
"""What the tagger, trainer, cache and profiler take: embedcache embedders, stacks, Flair embeddings."""


class EmbeddingStack(torch.nn.Module):
    """Concatenates the vectors of its members along the last dimension, in the given order.

    Members that are ``torch.nn.Module``s are registered, so ``.to(device)`` moves them all.

    Args:
        embedders: the members, at least one: embedcache embedders, nested stacks, or Flair embedding
            objects (see :func:`as_embedders`).
    """

    def __init__(self, embedders: EmbeddingsLike) -> None:
        super().__init__()
        self.embedders = as_embedders(embedders)
        self.modules_list = torch.nn.ModuleList(e for e in self.embedders if isinstance(e, torch.nn.Module))
        # Members run at once, one thread each: for runtimes that release the GIL (ONNX Runtime), two LMs
        # of a few threads each beat one LM after the other on all threads (small matrices scale poorly).
        self.concurrent = False

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
        if self.concurrent and len(self.embedders) > 1:
            with ThreadPoolExecutor(len(self.embedders)) as pool:
                parts = list(pool.map(lambda e: e.embed_batch(sentences, whitespace_after), self.embedders))
        else:
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


def as_embedders(embeddings: EmbeddingsLike) -> list[TokenEmbedder]:
    """The flat list of embedders behind one embedder, a stack, a Flair embedding object, or a list of those.

    Nested stacks (embedcache's or Flair's) are flattened in order, so the vectors are concatenated exactly
    as Flair's ``StackedEmbeddings`` concatenates them.

    Raises:
        ValueError: no embedder at all.
        TypeError: an object that is neither an embedcache embedder nor a Flair token embedding (the
            message names its position and type); Flair embeddings that cannot be run are refused with
            :class:`~embedcache.embeddings.flair_adapters.UnsupportedFlairEmbeddings`, a ``TypeError``.
    """
    members = list(embeddings) if isinstance(embeddings, Sequence) else [embeddings]
    flat: list[TokenEmbedder] = []
    for i, member in enumerate(members):
        if isinstance(member, EmbeddingStack):
            flat += member.embedders
        elif isinstance(member, TokenEmbedder):
            flat.append(member)
        elif _is_flair_object(member):
            from embedcache.embeddings.flair_adapters import adapt_flair_embeddings

            flat += adapt_flair_embeddings(member)
        else:
            raise TypeError(
                f"embeddings[{i}] is a {type(member).__name__}, not a TokenEmbedder (embedding_length, "
                "embed_batch, fingerprint) and not a Flair TokenEmbeddings"
            )
    if not flat:
        raise ValueError("at least one embedder is needed: an embedder, a Flair embedding or a list")
    return flat


def _is_flair_object(value: object) -> bool:
    """True for instances of Flair classes and of user classes derived from them, without importing Flair."""
    return any(cls.__module__.split(".")[0] == "flair" for cls in type(value).__mro__)


def as_stack(embeddings: EmbeddingsLike) -> EmbeddingStack:
    """Wrap one embedder, a Flair embedding object or a list of them in an :class:`EmbeddingStack`."""
    if isinstance(embeddings, EmbeddingStack):
        return embeddings
    return EmbeddingStack(as_embedders(embeddings))
