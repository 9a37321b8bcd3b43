"""Tests for ``embedcache.cache.embedding_cache``: the public API end to end on small WNUT-17 slices."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
import torch
from flair.data import Sentence
from gensim.models import KeyedVectors

from embedcache.cache import CacheWriteError, EmbeddingCache, OverBudgetError, estimate
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.words import WordEmbeddings
from tests.cache.reference import pad, reference_vectors


@pytest.fixture(scope="module")
def word_vectors(small_corpus: list[TaggedSentence]) -> WordEmbeddings:
    """4-d vectors for the first 30 distinct words of the corpus; every other word gets zeros."""
    words = list(dict.fromkeys(t for s in small_corpus for t in s.tokens))[:30]
    kv = KeyedVectors(4)
    kv.add_vectors(words, torch.arange(len(words) * 4, dtype=torch.float32).reshape(-1, 4).numpy() / 8)
    return WordEmbeddings(kv, lowercase_fallback=False)


def build(sentences: object, embeddings: object, **options: object) -> EmbeddingCache:
    return EmbeddingCache.build(sentences, embeddings, progress=False, **options)  # type: ignore[arg-type]


def test_forward_backward_and_word_vectors_are_concatenated_in_order(
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    backward_encoder: CharLMEncoder,
    word_vectors: WordEmbeddings,
) -> None:
    embedders = [encoder, backward_encoder, word_vectors]
    cache = build(small_corpus, embedders, dtype=torch.float32)
    assert cache.embedding_length == 16 + 16 + 4
    ids = list(range(len(small_corpus)))
    padded, _ = cache.batch(ids)
    assert torch.equal(padded, pad(reference_vectors(small_corpus, embedders), ids))
    assert torch.equal(padded[0, 0, 32:], word_vectors.embed_batch([["@paulwalk"]]).vectors[0])
    assert small_corpus[0].tokens[0] == "@paulwalk"


def test_tagged_plain_and_flair_sentences_give_the_same_cache(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    tagged = build(small_corpus, encoder)
    plain = build([s.tokens for s in small_corpus], encoder)
    flair_sentences = build([Sentence(s.tokens) for s in small_corpus], encoder)
    assert tagged.fingerprint == plain.fingerprint
    # Flair puts no space after a sentence's last token: other spacing, other key (same vectors for an LM
    # that reads tokens joined by single spaces, as this one does).
    assert flair_sentences.fingerprint != tagged.fingerprint
    ids = list(range(len(small_corpus)))
    assert torch.equal(tagged.batch(ids)[0], plain.batch(ids)[0])
    assert torch.equal(tagged.batch(ids)[0], flair_sentences.batch(ids)[0])


def test_an_empty_corpus_is_refused_with_a_hint(encoder: CharLMEncoder) -> None:
    with pytest.raises(ValueError, match=r"empty corpus \(0 sentences\); check that the corpus file"):
        build([], encoder)


def test_empty_sentences_are_kept_with_length_zero(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, tmp_path: Path
) -> None:
    sentences = [[], *small_corpus[:5], TaggedSentence([]), *small_corpus[5:10]]
    for path in (None, tmp_path):
        cache = build(sentences, encoder, dtype=torch.float32, path=path)
        assert len(cache) == 12 and cache.n_tokens == sum(len(s) for s in small_corpus[:10])
        assert cache.lengths[[0, 6]].tolist() == [0, 0]
        padded, lengths = cache.batch([0, 6, 1])
        assert lengths.tolist() == [0, 0, len(small_corpus[0])]
        assert not padded[:2].any()
        assert torch.equal(padded[2], pad(reference_vectors(small_corpus[:10], [encoder]), [0])[0])


def test_a_corpus_of_only_empty_sentences_holds_just_the_padding_row(encoder: CharLMEncoder) -> None:
    cache = build([[], []], encoder, dtype=torch.float32)
    assert (cache.n_tokens, cache.nbytes) == (0, 16 * 4)
    padded, lengths = cache.batch([1, 0])
    assert padded.shape == (2, 0, 16) and lengths.tolist() == [0, 0]


def test_nbytes_equals_the_estimate_and_halves_with_16_bit_dtypes(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    full, half = build(small_corpus, encoder, dtype="float32"), build(small_corpus, encoder, dtype="bfloat16")
    assert full.nbytes == estimate(small_corpus, encoder, torch.float32) == 696 * 16 * 4 == 44_544
    assert half.nbytes == estimate(small_corpus, encoder, torch.bfloat16) == full.nbytes // 2


def test_over_budget_fails_before_any_lm_work(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    with pytest.raises(OverBudgetError, match=r"needs 22,272 bytes, over memory_budget_bytes \('gpu': 1,000"):
        build(small_corpus, encoder, placement="gpu", memory_budget_bytes=1000)


def test_over_budget_fallback_moves_to_the_next_placement(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="embedcache.cache.budget"):
        cache = build(
            small_corpus,
            encoder,
            placement="gpu",
            memory_budget_bytes={"gpu": 1000, "cpu": 2000},
            on_over_budget="fallback",
        )
    assert cache.placement == "disk" and cache.nbytes == 22_272
    assert "using placement 'disk'" in caplog.text


def test_a_disk_store_without_path_leaves_no_file(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    before = set(Path(tempfile.gettempdir()).glob("embedcache-*"))
    cache = build(small_corpus, encoder, placement="disk", dtype=torch.float32)
    assert set(Path(tempfile.gettempdir()).glob("embedcache-*")) == before
    assert cache.directory is None and cache.placement == "disk"
    ids = list(range(len(small_corpus)))
    assert torch.equal(cache.batch(ids)[0], pad(reference_vectors(small_corpus, [encoder]), ids))


def test_a_full_temporary_disk_is_an_error_with_a_remedy(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, full_disk: None
) -> None:
    with pytest.raises(CacheWriteError, match=r"No space left on device.*22,272 bytes.*TMPDIR"):
        build(small_corpus, encoder, placement="disk")


def test_repr_names_size_and_placement(small_corpus: list[TaggedSentence], encoder: CharLMEncoder) -> None:
    cache = build(small_corpus, encoder, placement="cpu")
    assert repr(cache) == (
        "EmbeddingCache(40 sentences, 695 tokens, D=16, float16, placement='cpu', nbytes=22272)"
    )
    assert cache.device == torch.device("cpu") and cache.dtype == torch.float16


@pytest.mark.cuda
def test_a_cuda_lm_builds_a_pinned_cpu_cache_close_to_the_cpu_one(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    # Overlapped device→host writes with the LM on the GPU; CUDA kernels round differently from the CPU.
    from tests.conftest import make_lm

    cuda_encoder = CharLMEncoder(make_lm(True, hidden_size=16, seed=3)).cuda()
    for path in (None, Path(tempfile.mkdtemp())):
        cache = build(small_corpus, cuda_encoder, placement="cpu", dtype=torch.float32, path=path)
        assert cache.store.vectors.is_pinned() and cache.device.type == "cuda"
        ids = list(range(len(small_corpus)))
        padded, _ = cache.batch(ids)
        torch.testing.assert_close(padded.cpu(), pad(reference_vectors(small_corpus, [encoder]), ids))
