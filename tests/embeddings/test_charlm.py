"""CharLMEmbeddings against Flair's FlairEmbeddings: same vectors, exact memory, no needless copies."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from flair.training_utils import store_embeddings

import embedcache as ec
from embedcache.accounting import retained_nbytes, token_embeddings
from embedcache.data import read_column_file
from tests.conftest import make_lm

# Raw-text sentences: whitespace_after of 0 and 2 exercise the plain-text (tokenized_lm=False) offsets.
RAW_TEXTS = ["Hello  world, ok!", "No-space:here;and  there   .", "x"]


def flair_sentences(path, limit=None):
    sentences = [Sentence(s.tokens) for s in read_column_file(path)]
    return sentences[:limit] if limit else sentences


def batches(items, size=32):
    return [items[i : i + size] for i in range(0, len(items), size)]


def embed_and_take(embeddings, batch):
    """Embed a batch, return clones of every token's vector, and clear the tokens again."""
    embeddings.embed(batch)
    vectors = [token.get_embedding([embeddings.name]).clone() for s in batch for token in s]
    for sentence in batch:
        sentence.clear_embeddings()
    return vectors


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_vectors_equal_flair_on_wnut17_dev_for_every_option(data_dir, direction):
    lm = make_lm(direction == "forward", hidden_size=256, seed=7)
    chars_per_chunk = 128
    sentences = flair_sentences(data_dir / "wnut17" / "dev.conll")
    sentences += [Sentence(text) for text in RAW_TEXTS]
    sentences.append(Sentence(["a" * 300, "b", "c" * 150]))  # several chunks long
    assert any(len(s.to_tokenized_string()) > chars_per_chunk for s in sentences)
    assert {t.whitespace_after for s in sentences for t in s} >= {0, 1, 2}
    for with_whitespace in (True, False):
        for tokenized_lm in (True, False):
            options = dict(with_whitespace=with_whitespace, tokenized_lm=tokenized_lm, chars_per_chunk=128)
            flair = FlairEmbeddings(lm, **options)
            ours = ec.CharLMEmbeddings(lm, **options)
            # Both extraction paths are covered across the combinations: views and the compact gather.
            with ec.storage_mode("none" if tokenized_lm else "gpu"):
                for batch in batches(sentences):
                    expected = embed_and_take(flair, batch)
                    got = embed_and_take(ours, batch)
                    assert len(got) == len(expected)
                    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True)), (
                        direction,
                        options,
                    )


def test_tensor_level_api_matches_the_flair_face(forward_lm, backward_lm):
    tokens = [["I", "love", "Berlin", "."], ["Emoji", "😀"], ["x" * 40]]
    stack = [ec.CharLMEncoder(forward_lm), ec.CharLMEncoder(backward_lm)]
    faces = [ec.CharLMEmbeddings(forward_lm), ec.CharLMEmbeddings(backward_lm)]
    sentences = [Sentence(t) for t in tokens]
    StackedEmbeddings(faces).embed(sentences)
    flair_view = torch.stack([token.get_embedding() for s in sentences for token in s])  # (n, 2H)
    vectors = torch.cat([encoder.embed_batch(tokens).vectors for encoder in stack], dim=1)
    assert torch.equal(vectors, flair_view)
    token_vectors = stack[0].embed_batch(tokens)
    assert token_vectors.sentence_offsets.tolist() == [0, 4, 6, 7]
    padded, lengths = stack[0].embed_padded(tokens)
    assert padded.shape == (3, 4, 256) and lengths.tolist() == [4, 2, 1]
    for i in range(3):
        assert torch.equal(padded[i, : lengths[i]], token_vectors.sentence(i))
        assert not padded[i, lengths[i] :].any()


def test_gpu_and_cpu_modes_give_owning_compact_vectors(forward_lm):
    encoder = ec.CharLMEncoder(forward_lm)
    tokens = [["a", "b", "c"], ["d"]]
    for mode in ("gpu", "cpu", "none"):
        with ec.storage_mode(mode):
            vectors = encoder.embed_batch(tokens).vectors
        assert vectors.is_contiguous() and vectors.device.type == "cpu"
        assert vectors.untyped_storage().nbytes() == 4 * 256 * 4


@pytest.mark.parametrize("mode", ["none", "gpu", "cpu"])
def test_per_token_tensors_share_lm_states_only_in_none_mode(forward_lm, mode):
    embeddings = ec.CharLMEmbeddings(forward_lm, name="lm")
    captured = []
    run_lm = embeddings.encoder.hidden_states
    embeddings.encoder.hidden_states = lambda strings: captured.append(run_lm(strings)) or captured[-1]
    sentence = Sentence("Contextual string embeddings , one gather per batch .")
    with ec.storage_mode(mode):
        embeddings.embed(sentence)
    states = captured[-1]  # (chars, 1, H): the states the tokens were taken from
    pointers = {t.get_embedding(["lm"]).untyped_storage().data_ptr() for t in sentence}
    assert len(pointers) == 1
    if mode == "none":
        assert pointers == {states.untyped_storage().data_ptr()}
    else:
        assert pointers != {states.untyped_storage().data_ptr()}
        assert retained_nbytes(token_embeddings([sentence])) == len(sentence) * 256 * 4


def test_none_mode_retains_nothing_after_the_batch(forward_lm):
    sentences = [Sentence("Nothing outlives the batch ."), Sentence("Really nothing .")]
    with ec.storage_mode("none"):
        ec.CharLMEmbeddings(forward_lm, name="lm").embed(sentences)
    alive = weakref.ref(sentences[0][0].get_embedding(["lm"]))
    store_embeddings(sentences, "none")
    gc.collect()
    assert alive() is None
    assert retained_nbytes(token_embeddings(sentences)) == 0


@pytest.mark.slow
def test_retained_bytes_are_exact_on_wnut17_train_and_flair_holds_more(data_dir, forward_lm):
    sentences = flair_sentences(data_dir / "wnut17" / "train.conll")
    n_tokens = sum(len(s) for s in sentences)
    hidden = forward_lm.hidden_size
    ours = ec.CharLMEmbeddings(forward_lm)
    flair = FlairEmbeddings(forward_lm)
    retained = {}
    for name, embeddings in (("embedcache", ours), ("flair", flair)):
        for mode in ("gpu", "cpu"):
            with ec.storage_mode(mode):
                for batch in batches(sentences):
                    embeddings.embed(batch)
                    store_embeddings(batch, mode)
            retained[name, mode] = retained_nbytes(token_embeddings(sentences))
            for sentence in sentences:
                sentence.clear_embeddings()
    assert n_tokens == 62730
    assert retained["embedcache", "gpu"] == retained["embedcache", "cpu"] == n_tokens * hidden * 4
    # Flair keeps one view per token into its batch's (chars, batch, hidden) states: whole states retained.
    assert retained["flair", "gpu"] > 5 * n_tokens * hidden * 4
    assert retained["flair", "cpu"] > 5 * n_tokens * hidden * 4


def test_bad_input_has_defined_behaviour(tiny_lm):
    encoder = ec.CharLMEncoder(tiny_lm, chars_per_chunk=8)
    empty = encoder.embed_batch([])
    assert empty.vectors.shape == (0, 16) and empty.sentence_offsets.tolist() == [0]
    no_tokens = encoder.embed_batch([[], ["a"], []])
    assert no_tokens.vectors.shape == (1, 16) and no_tokens.lengths.tolist() == [0, 1, 0]
    assert encoder.embed_batch([[], []]).vectors.shape == (0, 16)
    odd = [
        ["😀", "東京", "\x00\x07", "\u200b"],
        ["y" * 5000],
        ["a"] * 40,
    ]  # unknown chars, long token, > chunk
    vectors = encoder.embed_batch(odd)
    assert vectors.vectors.shape == (4 + 1 + 40, 16) and torch.isfinite(vectors.vectors).all()
    padded, _ = encoder.embed_padded([[], ["a"]])
    assert padded.shape == (2, 1, 16) and not padded[0].any()
    assert ec.CharLMEmbeddings(tiny_lm).embed([]) == []


@pytest.mark.parametrize(
    ("batch", "error", "message"),
    [
        ("just a string", TypeError, "list of tokenized sentences"),
        ([["ok", 3]], TypeError, "sentence 0, token 1: expected str, got int"),
        ([["ok"], "abc"], TypeError, "sentence 1: expected a list of token strings"),
        ([["ok", ""]], ValueError, "sentence 0, token 1: empty token"),
        (None, TypeError, "NoneType"),
    ],
)
def test_invalid_input_raises_a_clear_error(tiny_lm, batch, error, message):
    with pytest.raises(error, match=message):
        ec.CharLMEncoder(tiny_lm).embed_batch(batch)


def test_whitespace_after_must_match_the_tokens(tiny_lm):
    with pytest.raises(ValueError, match="one count per token"):
        ec.CharLMEncoder(tiny_lm).embed_batch([["a", "b"]], whitespace_after=[[1]])


@pytest.mark.parametrize("chars_per_chunk", [0, -1, 2.5])
def test_chars_per_chunk_must_be_a_positive_int(tiny_lm, chars_per_chunk):
    with pytest.raises(ValueError, match="chars_per_chunk"):
        ec.CharLMEncoder(tiny_lm, chars_per_chunk=chars_per_chunk)


def test_the_none_that_flairs_lm_to_returns_is_refused_with_the_reason(tiny_lm):
    moved = tiny_lm.to("cpu")  # Flair's LanguageModel._apply returns None, so .to() and .cuda() do too
    with pytest.raises(
        TypeError, match=r"got NoneType \(Flair's LanguageModel.to\(\) and .cuda\(\) return None"
    ):
        ec.CharLMEncoder(moved)
    with pytest.raises(TypeError, match=r"expected a CharLanguageModel or a flair LanguageModel, got str$"):
        ec.CharLMEncoder("forward.pt")


def test_fingerprint_changes_with_weights_and_options_only(tiny_lm):
    base = ec.CharLMEncoder(tiny_lm).fingerprint()
    assert ec.CharLMEncoder(tiny_lm).fingerprint() == base
    assert ec.CharLMEncoder(tiny_lm, with_whitespace=False).fingerprint() != base
    assert ec.CharLMEncoder(make_lm(True, hidden_size=16, seed=99)).fingerprint() != base


def test_lm_stays_in_eval_mode_unless_fine_tuned(tiny_lm):
    frozen = ec.CharLMEmbeddings(tiny_lm).train()
    assert not frozen.lm.training
    tuned = ec.CharLMEmbeddings(make_lm(True, hidden_size=16), fine_tune=True).train()
    assert tuned.lm.training and not tuned.static_embeddings


def test_fine_tuning_lets_gradients_reach_the_lm():
    lm = make_lm(True, hidden_size=16)
    embeddings = ec.CharLMEmbeddings(lm, fine_tune=True).train()
    sentence = Sentence("gradients flow")
    with ec.storage_mode("none"):
        embeddings.embed(sentence)
    torch.stack([t.get_embedding() for t in sentence]).sum().backward()
    assert lm.encoder.weight.grad is not None and lm.encoder.weight.grad.abs().sum() > 0
