"""Tests for ``embedcache.cache.store``: exact bytes, exact read-back, padded batches, prefetch.

All stores here are built on the CPU; the references come from the embedders on the cache's own batches
(see ``tests/cache/reference.py``), so fp32 comparisons are ``torch.equal`` and fp16/bf16 ones compare
with the reference rounded to that dtype, also exactly.
"""

from __future__ import annotations

import pytest
import torch

from embedcache.cache import EmbeddingCache
from embedcache.cache.build import plan_batches
from embedcache.cache.corpus_tokens import normalize_sentences
from embedcache.cache.store import TokenStore
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings.charlm import CharLMEncoder
from tests.cache.reference import pad, reference_vectors

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
PLACEMENTS = ["gpu", "cpu", "disk"]


@pytest.fixture(scope="module")
def two_lm_reference(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, backward_encoder: CharLMEncoder
) -> list[torch.Tensor]:
    return reference_vectors(small_corpus, [encoder, backward_encoder])


def build(corpus: list[TaggedSentence], embedders: list[CharLMEncoder], **options: object) -> EmbeddingCache:
    return EmbeddingCache.build(corpus, embedders, progress=False, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bytes_held_are_exactly_tokens_plus_padding_row(
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    backward_encoder: CharLMEncoder,
    placement: str,
    dtype: torch.dtype,
) -> None:
    cache = build(small_corpus, [encoder, backward_encoder], placement=placement, dtype=dtype)
    held = cache.store.vectors.untyped_storage().nbytes()
    assert held == cache.nbytes == (695 + 1) * 32 * dtype.itemsize
    assert held == {torch.float32: 89_088, torch.float16: 44_544, torch.bfloat16: 44_544}[dtype]
    assert cache.store.vectors.is_contiguous()
    assert cache.placement == placement


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_vectors_read_back_equal_the_embedders_output(
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    backward_encoder: CharLMEncoder,
    two_lm_reference: list[torch.Tensor],
    placement: str,
    dtype: torch.dtype,
) -> None:
    cache = build(small_corpus, [encoder, backward_encoder], placement=placement, dtype=dtype)
    ids = list(range(len(small_corpus)))
    padded, lengths = cache.batch(ids)
    assert padded.dtype == torch.float32
    assert lengths.tolist() == [len(s) for s in small_corpus]
    expected = pad(two_lm_reference, ids)  # (40, T, 32) float32
    assert torch.equal(padded, expected.to(dtype).float())


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_build_batch_equals_embed_padded_on_the_same_sentences(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, dtype: torch.dtype
) -> None:
    cache = build(small_corpus, [encoder], dtype=dtype, chars_per_batch=1500)
    corpus = normalize_sentences(small_corpus)
    for ids in plan_batches(corpus.char_lengths, chars_per_batch=1500):
        with torch.no_grad():
            direct, direct_lengths = encoder.embed_padded([corpus.tokens[i] for i in ids])
        padded, lengths = cache.batch(ids)
        assert torch.equal(lengths, direct_lengths)
        assert torch.equal(padded, direct.to(dtype).float())


def test_any_ids_in_any_order_with_repeats(
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    backward_encoder: CharLMEncoder,
    two_lm_reference: list[torch.Tensor],
) -> None:
    cache = build(small_corpus, [encoder, backward_encoder], dtype=torch.float32)
    ids = [5, 0, 5, 33, 17, 39]
    padded, lengths = cache.batch(torch.tensor(ids))
    assert torch.equal(padded, pad(two_lm_reference, ids))
    mask = torch.arange(padded.shape[1]) >= lengths.unsqueeze(1)  # (B, T) padding cells
    assert not padded[mask].any()


def test_padding_cells_point_at_the_zero_row() -> None:
    store = TokenStore(
        vectors=torch.arange(1.0, 13.0).reshape(6, 2).index_fill_(0, torch.tensor([5]), 0.0),
        row_starts=torch.tensor([3, 0, 0]),
        lengths=torch.tensor([2, 3, 0]),
        placement="cpu",
        device=torch.device("cpu"),
    )
    rows, lengths = store.padded_rows([0, 1, 2])
    assert rows.tolist() == [[3, 4, 5], [0, 1, 2], [5, 5, 5]]
    assert lengths.tolist() == [2, 3, 0]
    padded, _ = store.batch([2, 0])
    assert padded.tolist() == [[[0, 0], [0, 0]], [[7, 8], [9, 10]]]


def test_bad_ids_are_refused_with_the_valid_range(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    cache = build(small_corpus, [encoder])
    with pytest.raises(IndexError, match=r"\[0, 40\).*from 3 to 40"):
        cache.batch([3, 40])
    with pytest.raises(IndexError, match="from -1 to 2"):
        cache.batch([2, -1])
    with pytest.raises(ValueError, match="flat sequence"):
        cache.batch([[1, 2]])
    padded, lengths = cache.batch([])
    assert padded.shape == (0, 0, 16) and lengths.shape == (0,)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_prefetched_batches_equal_single_batches(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, placement: str
) -> None:
    cache = build(small_corpus, [encoder], placement=placement)
    id_lists = [[0, 1, 2], [39], [10, 3, 3, 20], []]
    prefetched = list(cache.batches(id_lists, prefetch=True))
    plain = list(cache.batches(iter(id_lists), prefetch=False))
    assert len(prefetched) == len(plain) == 4
    for ids, (padded, lengths), (plain_padded, plain_lengths) in zip(
        id_lists, prefetched, plain, strict=True
    ):
        single, single_lengths = cache.batch(ids)
        assert torch.equal(padded, single) and torch.equal(plain_padded, single)
        assert torch.equal(lengths, single_lengths) and torch.equal(plain_lengths, single_lengths)


def test_stopping_a_prefetching_loop_early_is_clean(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder
) -> None:
    cache = build(small_corpus, [encoder])
    batches = cache.batches([[i] for i in range(40)], prefetch=True)
    first, _ = next(batches)
    batches.close()  # the worker thread finishes its prefetch and shuts down
    assert torch.equal(first, cache.batch([0])[0])


@pytest.mark.cuda
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_batches_equal_the_cpu_reference(
    small_corpus: list[TaggedSentence],
    encoder: CharLMEncoder,
    backward_encoder: CharLMEncoder,
    two_lm_reference: list[torch.Tensor],
    placement: str,
    dtype: torch.dtype,
) -> None:
    # CPU LMs, CUDA compute device: the device→host writer and the pinned staging path, exactly.
    cache = build(small_corpus, [encoder, backward_encoder], placement=placement, dtype=dtype, device="cuda")
    assert cache.store.vectors.device.type == ("cuda" if placement == "gpu" else "cpu")
    if placement == "cpu":
        assert cache.store.vectors.is_pinned()
    assert cache.nbytes == (695 + 1) * 32 * dtype.itemsize
    id_lists = [list(range(40)), [5, 0, 5], [39, 1]]
    for ids, (padded, lengths) in zip(id_lists, cache.batches(id_lists, prefetch=True), strict=True):
        assert padded.device.type == "cuda" and lengths.tolist() == cache.lengths[ids].tolist()
        assert torch.equal(padded.cpu(), pad(two_lm_reference, ids).to(dtype).float())
        assert torch.equal(cache.batch(ids)[0].cpu(), padded.cpu())
