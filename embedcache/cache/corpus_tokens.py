"""The cache's view of a corpus: token strings and spacing, normalised once at the edge.

``EmbeddingCache.build`` accepts embedcache ``TaggedSentence``s, plain lists of token strings and Flair
``Sentence``s. Everything after this module (fingerprint, batch plan, build pass) reads only the two plain
lists held by :class:`CorpusTokens`, so per-token Flair objects are touched exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import TYPE_CHECKING, Union

import numpy as np

from embedcache.data.sentence import TaggedSentence, is_flair_sentence
from embedcache.embeddings.base import check_sentences

if TYPE_CHECKING:  # a Flair sentence exists only where Flair is imported already
    from flair.data import Sentence

SentenceLike = Union[TaggedSentence, "Sentence", Sequence[str]]  # "Sentence": a forward reference
"""One sentence as the cache accepts it."""


@dataclass(frozen=True)
class CorpusTokens:
    """Token strings and spaces-after of every sentence, in corpus order.

    Attributes:
        tokens: the token strings of each sentence (sentences may be empty).
        whitespace_after: spaces after each token, one list per sentence.
    """

    tokens: list[Sequence[str]]
    whitespace_after: list[Sequence[int]]

    @property
    def n_sentences(self) -> int:
        return len(self.tokens)

    @cached_property
    def lengths(self) -> np.ndarray:
        """``(n_sentences,)`` int64 tokens per sentence."""
        return np.fromiter((len(s) for s in self.tokens), dtype=np.int64, count=len(self.tokens))

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    @cached_property
    def char_lengths(self) -> np.ndarray:
        """``(n_sentences,)`` int64 characters the LM reads per sentence (tokens plus one separator each).

        This is what a batch costs the LM, so batches are planned on it rather than on token counts.
        """
        token_chars = np.fromiter(
            (sum(len(token) for token in sentence) for sentence in self.tokens),
            dtype=np.int64,
            count=len(self.tokens),
        )
        return token_chars + self.lengths

    def token_char_lengths(self) -> np.ndarray:
        """``(n_tokens,)`` int64 code points of every token, sentence after sentence."""
        return np.fromiter((len(t) for t in chain.from_iterable(self.tokens)), dtype=np.int64)

    def flat_whitespace(self) -> np.ndarray:
        """``(n_tokens,)`` int64 spaces after every token, sentence after sentence."""
        return np.fromiter(chain.from_iterable(self.whitespace_after), dtype=np.int64)


def _tokens_and_spaces(sentence: SentenceLike, index: int) -> tuple[Sequence[str], Sequence[int]]:
    if isinstance(sentence, TaggedSentence):
        return sentence.tokens, sentence.whitespace_after
    if is_flair_sentence(sentence):
        return [t.text for t in sentence.tokens], [t.whitespace_after for t in sentence.tokens]
    if isinstance(sentence, str) or not isinstance(sentence, Sequence):
        raise TypeError(
            f"sentence {index}: expected a TaggedSentence, a flair Sentence or a list of token strings, "
            f"got {type(sentence).__name__}"
        )
    return sentence, [1] * len(sentence)


def normalize_sentences(sentences: Iterable[SentenceLike]) -> CorpusTokens:
    """Read tokens and spacing from any accepted sentence type, once.

    Raises:
        TypeError: ``sentences`` is a bare string, or a sentence or token has the wrong type.
        ValueError: a token is the empty string, or a sentence's spacing does not match its tokens.
    """
    if isinstance(sentences, str):
        raise TypeError(
            "expected an iterable of sentences, got a str; split it into sentences and tokens first"
        )
    tokens: list[Sequence[str]] = []
    spaces: list[Sequence[int]] = []
    for index, sentence in enumerate(sentences):
        sentence_tokens, sentence_spaces = _tokens_and_spaces(sentence, index)
        if len(sentence_spaces) != len(sentence_tokens):
            raise ValueError(
                f"sentence {index}: {len(sentence_tokens)} tokens but {len(sentence_spaces)} "
                "whitespace_after entries; give one space count per token"
            )
        tokens.append(sentence_tokens)
        spaces.append(sentence_spaces)
    check_sentences(tokens)
    return CorpusTokens(tokens, spaces)
