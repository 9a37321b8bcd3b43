"""Tests for ``embedcache.cache.corpus_tokens``: every accepted sentence type reads the same, bad input is
named."""

from __future__ import annotations

import numpy as np
import pytest
from flair.data import Sentence

from embedcache.cache.corpus_tokens import normalize_sentences
from embedcache.data.sentence import TaggedSentence


def test_tagged_plain_and_flair_sentences_give_the_same_tokens() -> None:
    tagged = normalize_sentences([TaggedSentence(["I", "love", "Berlin", "."], ["O", "O", "B-loc", "O"])])
    plain = normalize_sentences([["I", "love", "Berlin", "."]])
    flair_sentence = normalize_sentences([Sentence(["I", "love", "Berlin", "."])])
    assert tagged.tokens == plain.tokens == [["I", "love", "Berlin", "."]]
    assert flair_sentence.tokens == [["I", "love", "Berlin", "."]]
    assert tagged.whitespace_after == plain.whitespace_after == [[1, 1, 1, 1]]


def test_flair_spacing_is_kept() -> None:
    corpus = normalize_sentences([Sentence("I love Berlin.")])
    assert corpus.tokens == [["I", "love", "Berlin", "."]]
    assert corpus.whitespace_after == [[1, 1, 0, 1]] or corpus.whitespace_after[0][2] == 0


def test_lengths_and_characters_count_empty_sentences_as_zero() -> None:
    corpus = normalize_sentences([["ab", "c"], [], ["xyz"]])
    assert corpus.n_sentences == 3
    assert corpus.n_tokens == 3
    np.testing.assert_array_equal(corpus.lengths, [2, 0, 1])
    np.testing.assert_array_equal(corpus.char_lengths, [3 + 2, 0, 3 + 1])  # characters + one separator each
    np.testing.assert_array_equal(corpus.token_char_lengths(), [2, 1, 3])


def test_a_generator_is_read_once() -> None:
    corpus = normalize_sentences(s for s in [["a"], ["b", "c"]])
    assert corpus.tokens == [["a"], ["b", "c"]]


@pytest.mark.parametrize(
    ("sentences", "error", "message"),
    [
        ("I love Berlin", TypeError, "got a str"),
        ([["ok"], "not tokenized"], TypeError, "sentence 1"),
        ([["ok"], ["", "x"]], ValueError, "sentence 1, token 0: empty token"),
        ([["ok", 3]], TypeError, "sentence 0, token 1"),
        ([TaggedSentence(["a", "b"], whitespace_after=[1])], ValueError, "sentence 0: 2 tokens but 1"),
    ],
)
def test_bad_sentences_are_named(sentences: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        normalize_sentences(sentences)  # type: ignore[arg-type]
