"""Fuzzed batches for the extractor: equal to Flair's ``FlairEmbeddings`` wherever Flair can take them.

Tokens are drawn from hostile characters (emoji, combining marks, RTL, zero-width, controls, NUL, tabs and
odd whitespace, whole-whitespace tokens, characters whose lower case is longer); spacing, directions and
every extraction option are drawn too. Where Flair can embed the batch (no empty sentence: Flair's LM
input would differ in shape), every token vector must equal Flair's bit for bit, through both the
tensor-level encoder and the Flair face. Everything else (empty sentences, empty batches) must give the
right shapes and finite values, and an empty token must be refused with a clear ``ValueError``.
"""

from __future__ import annotations

import pytest
import torch
from flair.data import Sentence, Token
from flair.embeddings import FlairEmbeddings
from hypothesis import event, given
from hypothesis import strategies as st

import embedcache as ec
from tests.conftest import make_lm
from tests.reliability.strategies import fuzz_settings, hostile_token

LMS = {True: make_lm(True, hidden_size=8, seed=21), False: make_lm(False, hidden_size=8, seed=22)}

token = hostile_token(excluded="")
sentence = st.lists(st.tuples(token, st.integers(0, 3)), min_size=1, max_size=6)
options = st.fixed_dictionaries(
    {
        "with_whitespace": st.booleans(),
        "tokenized_lm": st.booleans(),
        "is_lower": st.booleans(),
        "chars_per_chunk": st.sampled_from([1, 3, 7, 64, 512]),
    }
)


def flair_vectors(lm, batch: list[list[tuple[str, int]]], chosen: dict) -> list[torch.Tensor]:
    sentences = [Sentence([Token(text, whitespace_after=spaces) for text, spaces in s]) for s in batch]
    FlairEmbeddings(lm, **chosen).embed(sentences)
    return [t.get_embedding().clone() for s in sentences for t in s]


def split(batch: list[list[tuple[str, int]]]) -> tuple[list[list[str]], list[list[int]]]:
    """Tokens and spaces; the last token of each sentence gets 0 spaces, as Flair sets it."""
    tokens = [[text for text, _ in s] for s in batch]
    spaces = [[n for _, n in s[:-1]] + [0] for s in batch]
    return tokens, spaces


def flair_strips_a_token(batch: list[list[tuple[str, int]]], tokenized_lm: bool) -> bool:
    """Whether Flair's plain text loses characters: its ``rstrip`` eats a last token's whitespace."""
    return not tokenized_lm and any(s[-1][0][-1].isspace() for s in batch)


@fuzz_settings(150)
@given(batch=st.lists(sentence, min_size=1, max_size=4), forward=st.booleans(), chosen=options)
def test_vectors_equal_flairs_on_hostile_tokens(batch, forward, chosen):
    lm = LMS[forward]
    tokens, spaces = split(batch)
    encoder = ec.CharLMEncoder(lm, **chosen)
    vectors = encoder.embed_batch(tokens, spaces).vectors  # (n_tokens, H)
    padded, lengths = encoder.embed_padded(tokens, spaces)  # (B, T, H)
    assert torch.equal(
        padded[torch.arange(len(tokens)).repeat_interleave(lengths), _positions(lengths)], vectors
    )
    if flair_strips_a_token(batch, chosen["tokenized_lm"]):  # Flair reads past the text or crashes there
        assert vectors.shape == (sum(map(len, tokens)), 8) and torch.isfinite(vectors).all()
        event("Flair would strip a token: shapes only")
        return
    expected = torch.stack(flair_vectors(lm, batch, chosen))
    assert torch.equal(vectors, expected)
    face = [Sentence([Token(text, whitespace_after=n) for text, n in s]) for s in batch]
    with ec.storage_mode("cpu"):
        ec.CharLMEmbeddings(lm, **chosen).embed(face)
    assert torch.equal(torch.stack([t.get_embedding() for s in face for t in s]), expected)
    event(f"equal to Flair, {'forward' if forward else 'backward'}")
    event(f"longest LM text {'>' if max(map(len, map(' '.join, tokens))) > 40 else '<='} 40 characters")


def test_found_by_fuzzing_whitespace_at_the_end_of_a_plain_text_sentence():
    """Flair's ``rstrip`` ate a last token's whitespace, and both Flair and embedcache then indexed past the
    LM states (IndexError) or read a padding state; now the token keeps its characters and a forward LM
    gives the tokens before it the vectors Flair gives them without it."""
    lm = LMS[True]
    encoder = ec.CharLMEncoder(lm, tokenized_lm=False)
    vectors = encoder.embed_batch([["a", "\u3000"], ["b\t"]], [[1, 0], [0]]).vectors
    assert vectors.shape == (3, 8) and not torch.equal(vectors[1], vectors[0])
    alone = encoder.embed_batch([["a"]], [[1]]).vectors
    assert torch.equal(vectors[0], alone[0])
    assert torch.equal(alone, torch.stack(flair_vectors(lm, [[("a", 0)]], {"tokenized_lm": False})))


def _positions(lengths: torch.Tensor) -> torch.Tensor:
    """``[0, 1, ..., l0 - 1, 0, 1, ..., l1 - 1, ...]``: each token's position in its sentence."""
    return torch.cat([torch.arange(int(n)) for n in lengths])


@fuzz_settings(8)
@given(
    long_token=st.text(st.sampled_from("a😀\u0301 \x00\u200b"), min_size=500, max_size=3000),
    many=st.integers(200, 600),
    forward=st.booleans(),
)
def test_extremely_long_tokens_and_sentences_equal_flairs(long_token, many, forward):
    lm = LMS[forward]
    batch = [[(long_token, 1), ("x", 0)], [("w", 1)] * many]
    chosen = {"chars_per_chunk": 256}
    tokens, spaces = split(batch)
    vectors = ec.CharLMEncoder(lm, **chosen).embed_batch(tokens, spaces).vectors
    assert vectors.shape == (2 + many, 8)
    assert torch.equal(vectors, torch.stack(flair_vectors(lm, batch, chosen)))


@fuzz_settings(100)
@given(
    batch=st.lists(st.lists(token, max_size=4), max_size=5),
    forward=st.booleans(),
    mode=st.sampled_from(["none", "cpu", "gpu"]),
)
def test_empty_sentences_and_batches_give_shapes_not_crashes(batch, forward, mode):
    encoder = ec.CharLMEncoder(LMS[forward], chars_per_chunk=5)
    n_tokens = sum(map(len, batch))
    with ec.storage_mode(mode):
        vectors = encoder.embed_batch(batch)
        tensors = encoder.token_tensors(batch)
    padded, lengths = encoder.embed_padded(batch)
    assert vectors.vectors.shape == (n_tokens, 8) and torch.isfinite(vectors.vectors).all()
    assert vectors.lengths.tolist() == lengths.tolist() == [len(s) for s in batch]
    assert padded.shape == (len(batch), max(map(len, batch), default=0), 8)
    assert len(tensors) == n_tokens and all(
        torch.equal(a, b) for a, b in zip(tensors, vectors.vectors, strict=True)
    )
    for i, sentence_tokens in enumerate(batch):
        assert not padded[i, len(sentence_tokens) :].any()
    event("with an empty sentence" if any(not s for s in batch) else "no empty sentence")


@fuzz_settings(30)
@given(batch=st.lists(st.lists(token, max_size=3), min_size=1, max_size=3), where=st.data())
def test_an_empty_token_is_refused_naming_its_place(batch, where):
    i = where.draw(st.integers(0, len(batch) - 1))
    j = where.draw(st.integers(0, len(batch[i])))
    batch[i].insert(j, "")
    with pytest.raises(ValueError, match=rf"sentence {i}, token {j}: empty token"):
        ec.CharLMEncoder(LMS[True]).embed_batch(batch)
