"""What every embedcache embedder produces and accepts: the tensor-level contract.

The native path (cache build, training batches, CLI predict) works on plain token lists and on one
``(n_tokens, D)`` tensor per batch, never on per-token tensors. The Flair faces (``CharLMEmbeddings``,
``WordEmbeddings`` as ``flair.embeddings.TokenEmbeddings``) are thin adapters over this contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

TokenizedSentences = Sequence[Sequence[str]]
"""A batch of sentences, each a sequence of token strings."""

WhitespaceAfter = Sequence[Sequence[int]]
"""Spaces after each token (Flair's ``Token.whitespace_after``); ``None``: one space after each token."""


@dataclass(frozen=True)
class TokenVectors:
    """All token vectors of a batch, sentence after sentence.

    Attributes:
        vectors: ``(n_tokens, D)`` float tensor; rows of sentence ``i`` are
            ``sentence_offsets[i]:sentence_offsets[i + 1]``.
        sentence_offsets: ``(n_sentences + 1,)`` int64 CPU tensor of row offsets, starting at 0.
    """

    vectors: torch.Tensor
    sentence_offsets: torch.Tensor

    @property
    def n_sentences(self) -> int:
        return self.sentence_offsets.numel() - 1

    @property
    def lengths(self) -> torch.Tensor:
        """``(n_sentences,)`` int64 token counts."""
        return self.sentence_offsets.diff()

    def sentence(self, i: int) -> torch.Tensor:
        """The ``(len_i, D)`` vectors of sentence ``i`` (a view)."""
        return self.vectors[int(self.sentence_offsets[i]) : int(self.sentence_offsets[i + 1])]


@runtime_checkable
class TokenEmbedder(Protocol):
    """Anything that turns tokenized sentences into one ``(n_tokens, D)`` tensor per batch."""

    @property
    def embedding_length(self) -> int:
        """D, the width of each token vector."""
        ...

    def embed_batch(
        self, sentences: TokenizedSentences, whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        """Embed a batch of sentences; placement follows the global storage mode."""
        ...

    def fingerprint(self) -> str:
        """A hex digest of everything that changes the vectors (weights, options), for cache keys."""
        ...


def sentence_offsets(lengths: Sequence[int]) -> torch.Tensor:
    """``(len(lengths) + 1,)`` int64 cumulative offsets ``[0, l0, l0 + l1, ...]``."""
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    if lengths:
        torch.cumsum(torch.as_tensor(lengths, dtype=torch.int64), 0, out=offsets[1:])
    return offsets


def check_sentences(sentences: object) -> list[Sequence[str]]:
    """Validate a batch of tokenized sentences and return it as a list.

    Raises:
        TypeError: the batch is a bare string, a sentence is not a sequence, or a token is not a ``str``.
        ValueError: a token is the empty string (it has no characters to take a hidden state from).
    """
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError(
            f"expected a list of tokenized sentences (lists of str), got {type(sentences).__name__}"
        )
    checked = list(sentences)
    for i, sentence in enumerate(checked):
        if isinstance(sentence, str) or not isinstance(sentence, Sequence):
            raise TypeError(f"sentence {i}: expected a list of token strings, got {type(sentence).__name__}")
        for j, token in enumerate(sentence):
            if not isinstance(token, str):
                raise TypeError(f"sentence {i}, token {j}: expected str, got {type(token).__name__}")
            if not token:
                raise ValueError(f"sentence {i}, token {j}: empty token (tokens need at least one character)")
    return checked


def check_whitespace_after(
    whitespace_after: WhitespaceAfter | None, sentences: Sequence[Sequence[str]]
) -> list[Sequence[int]]:
    """Return per-token space counts, defaulting to one space after every token."""
    if whitespace_after is None:
        return [[1] * len(sentence) for sentence in sentences]
    spaces = list(whitespace_after)
    if len(spaces) != len(sentences) or any(len(w) != len(s) for w, s in zip(spaces, sentences, strict=True)):
        raise ValueError("whitespace_after must give one count per token of every sentence")
    return spaces
