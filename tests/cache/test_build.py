"""Tests for ``embedcache.cache.build``: the batch plan and the build pass into a preallocated store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedcache.cache.build import embed_block, fill_store, plan_batches, row_starts_for
from embedcache.cache.corpus_tokens import normalize_sentences
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings.base import TokenVectors
from embedcache.embeddings.charlm import CharLMEncoder
from tests.cache.reference import reference_vectors


def test_plan_is_longest_first_within_the_character_budget(wnut_train: list[TaggedSentence]) -> None:
    char_lengths = normalize_sentences(wnut_train[:300]).char_lengths
    batches = plan_batches(char_lengths, chars_per_batch=2000)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(300))  # every sentence exactly once
    assert (np.diff(char_lengths[order]) <= 0).all()  # longest first
    for ids in batches:
        padded_chars = len(ids) * char_lengths[ids].max()
        assert padded_chars <= 2000 or len(ids) == 1


def test_plan_skips_empty_sentences_and_isolates_oversized_ones() -> None:
    batches = plan_batches(np.array([5, 0, 50, 4, 0, 3]), chars_per_batch=12)
    assert [ids.tolist() for ids in batches] == [[2], [0, 3], [5]]


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_plan_needs_a_positive_int_budget(bad: object) -> None:
    with pytest.raises(ValueError, match="chars_per_batch"):
        plan_batches(np.array([3]), bad)  # type: ignore[arg-type]


def test_each_batch_is_one_contiguous_row_range() -> None:
    lengths = np.array([2, 0, 3, 1])
    batches = [np.array([2, 0]), np.array([3])]
    np.testing.assert_array_equal(row_starts_for(lengths, batches), [3, 0, 0, 5])


def test_fill_writes_every_batch_block_and_zeroes_the_padding_row(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, backward_encoder: CharLMEncoder
) -> None:
    corpus = normalize_sentences(small_corpus)
    batches = plan_batches(corpus.char_lengths, chars_per_batch=1500)
    target = torch.full((corpus.n_tokens + 1, 32), float("nan"))
    fill_store(target, corpus, batches, [encoder, backward_encoder], torch.device("cpu"), progress=False)
    expected = reference_vectors(small_corpus, [encoder, backward_encoder], chars_per_batch=1500)
    starts = row_starts_for(corpus.lengths, batches)
    for i, vectors in enumerate(expected):
        assert torch.equal(target[starts[i] : starts[i] + len(vectors)], vectors)
    assert torch.equal(target[-1], torch.zeros(32))
    assert not target.isnan().any()


def test_fill_casts_to_the_store_dtype(small_corpus: list[TaggedSentence], encoder: CharLMEncoder) -> None:
    corpus = normalize_sentences(small_corpus)
    batches = plan_batches(corpus.char_lengths)
    target = torch.empty(corpus.n_tokens + 1, 16, dtype=torch.bfloat16)
    fill_store(target, corpus, batches, [encoder], torch.device("cpu"), progress=False)
    expected = reference_vectors(small_corpus, [encoder])
    in_build_order = torch.cat([expected[i] for i in np.concatenate(batches)])  # (n_tokens, 16)
    assert torch.equal(target[:-1], in_build_order.to(torch.bfloat16))


def test_progress_bar_counts_tokens(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = normalize_sentences(small_corpus)
    target = torch.empty(corpus.n_tokens + 1, 16)
    fill_store(
        target, corpus, plan_batches(corpus.char_lengths), [encoder], torch.device("cpu"), progress=True
    )
    assert "695/695" in capsys.readouterr().err


class WrongWidth:
    """An embedder whose vectors do not match its declared ``embedding_length``."""

    embedding_length = 8

    def embed_batch(self, sentences: list[list[str]], whitespace_after: object = None) -> TokenVectors:
        n = sum(len(s) for s in sentences)
        return TokenVectors(torch.zeros(n, 5), torch.tensor([0, n]))

    def fingerprint(self) -> str:
        return "wrong-width"


def test_an_embedder_breaking_its_contract_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"WrongWidth.embed_batch returned shape \(2, 5\).*expected \(2, 8\)"
    ):
        embed_block([WrongWidth()], [["a", "b"]], [[1, 1]], torch.device("cpu"))
