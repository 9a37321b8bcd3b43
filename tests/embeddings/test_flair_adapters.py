"""Flair embedding objects wherever embedcache takes embedders: same vectors, exact memory, clear refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from flair.data import Dictionary, Sentence
from flair.embeddings import FlairEmbeddings, HashEmbeddings, OneHotEmbeddings, StackedEmbeddings
from flair.embeddings import WordEmbeddings as FlairWordEmbeddings
from gensim.models import KeyedVectors

import embedcache as ec
from embedcache.accounting import retained_nbytes
from embedcache.data import read_column_file
from embedcache.embeddings.flair_adapters import FlairTokenEmbedder, UnsupportedFlairEmbeddings
from embedcache.embeddings.stack import as_embedders
from tests.conftest import make_lm

RAW_TEXTS = ["Hello  world, ok!", "No-space:here;and  there   .", "x"]


def wnut_dev(data_dir: Path, limit: int = 160) -> list[Sentence]:
    sentences = [Sentence(s.tokens) for s in read_column_file(data_dir / "wnut17" / "dev.conll")][:limit]
    return sentences + [Sentence(text) for text in RAW_TEXTS]


def batches(items: list, size: int = 32) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def flair_vectors(embeddings, batch: list[Sentence]) -> torch.Tensor:
    """Flair's own vectors of a batch, ``(n_tokens, D)``, with the sentences cleared again."""
    embeddings.embed(batch)
    vectors = torch.stack([t.get_embedding(embeddings.get_names()).clone() for s in batch for t in s])
    for sentence in batch:
        sentence.clear_embeddings()
    return vectors


def our_vectors(embedders, batch: list[Sentence]) -> torch.Tensor:
    stack = ec.EmbeddingStack(embedders)
    tokens = [[t.text for t in s] for s in batch]
    spaces = [[t.whitespace_after for t in s] for s in batch]
    return stack.embed_batch(tokens, spaces).vectors


def word_vectors_file(tmp_path: Path) -> Path:
    """word2vec binary with a lower-case word, a ``#``-digit and a ``0``-digit word (Flair's fallbacks)."""
    words = ["the", "apple", "####", "x00", ",", "."]
    kv = KeyedVectors(6)
    kv.add_vectors(words, np.random.default_rng(0).standard_normal((len(words), 6)).astype(np.float32))
    path = tmp_path / "words.bin"
    kv.save_word2vec_format(str(path), binary=True)
    return path


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"with_whitespace": False, "tokenized_lm": False},
        {"is_lower": True, "chars_per_chunk": 16},
    ],
)
def test_flair_embeddings_give_flairs_vectors_bit_for_bit(data_dir, options):
    sentences = wnut_dev(data_dir)
    for is_forward in (True, False):
        flair = FlairEmbeddings(make_lm(is_forward, hidden_size=64, seed=5), **options)
        [adapted] = as_embedders(flair)
        assert isinstance(adapted, ec.CharLMEncoder) and adapted.lm is flair.lm
        for batch in batches(sentences):
            assert torch.equal(our_vectors([flair], batch), flair_vectors(flair, batch)), (
                is_forward,
                options,
            )


def test_nested_stacks_flatten_in_order_and_concatenate_like_flair(tmp_path, data_dir):
    fwd = FlairEmbeddings(make_lm(True, hidden_size=16, seed=1))
    bwd = FlairEmbeddings(make_lm(False, hidden_size=16, seed=2))
    words = FlairWordEmbeddings(str(word_vectors_file(tmp_path)))
    stack = StackedEmbeddings([StackedEmbeddings([fwd, words]), bwd])
    adapted = as_embedders(stack)
    assert [type(e).__name__ for e in adapted] == ["CharLMEncoder", "WordVectors", "CharLMEncoder"]
    assert [e.embedding_length for e in adapted] == [16, 6, 16]
    for batch in batches(wnut_dev(data_dir, 64)):
        assert torch.equal(our_vectors([stack], batch), flair_vectors(stack, batch))


def test_word_embeddings_keep_flairs_table_fallbacks_and_unknown_row(tmp_path):
    flair = FlairWordEmbeddings(str(word_vectors_file(tmp_path)))
    with torch.no_grad():
        flair.embedding.weight[-1] = 0.5  # an unknown-word row that is not zero must be kept too
    words = ["The", "APPLE", "1234", "X99", "unseen", ",", "."]
    [adapted] = as_embedders(flair)
    batch = [Sentence(words)]
    got = our_vectors([adapted], batch)
    assert torch.equal(got, flair_vectors(flair, batch))
    assert torch.equal(got[4], torch.full((6,), 0.5))  # "unseen": Flair's unknown row


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A random one-layer BERT saved locally: TransformerWordEmbeddings without a download."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = tmp_path_factory.mktemp("bert")
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'@#:-"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt"), do_lower_case=True).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(directory)
    return directory


def test_static_transformer_embeddings_run_through_the_generic_adapter(tiny_bert, data_dir, monkeypatch):
    monkeypatch.setitem(os.environ, "HF_HUB_OFFLINE", "1")
    from flair.embeddings import TransformerWordEmbeddings

    flair = TransformerWordEmbeddings(str(tiny_bert), fine_tune=False, layers="-1")
    [adapted] = as_embedders(flair)
    assert isinstance(adapted, FlairTokenEmbedder) and adapted.embedding_length == 16
    sentences = wnut_dev(data_dir, 60)
    for batch in batches(sentences):
        assert torch.equal(our_vectors([adapted], batch), flair_vectors(flair, batch))
    # The generic adapter's vectors are one compact block per batch: kept, they cost exactly n × D × 4.
    n_tokens = sum(len(s) for s in sentences)
    for mode in ("gpu", "cpu"):
        with ec.storage_mode(mode):
            kept = [our_vectors([adapted], batch) for batch in batches(sentences)]
        assert retained_nbytes(kept) == n_tokens * 16 * 4


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: OneHotEmbeddings(Dictionary(), embedding_length=4),
        lambda tmp: HashEmbeddings(num_embeddings=8, embedding_length=4),
        lambda tmp: FlairWordEmbeddings(str(word_vectors_file(tmp)), fine_tune=True),
    ],
    ids=["OneHotEmbeddings", "HashEmbeddings", "WordEmbeddings-fine-tuned"],
)
def test_trainable_flair_embeddings_are_refused_naming_the_class(tmp_path, make, request):
    embeddings = make(tmp_path)
    with pytest.raises(UnsupportedFlairEmbeddings, match=type(embeddings).__name__) as error:
        ec.SequenceTagger(StackedEmbeddings([embeddings]), ["A", "B"], "pos", hidden_size=4)
    assert "trainable" in str(error.value) and "fine_tune" in str(error.value)


def test_word_embeddings_of_a_label_field_are_refused(tmp_path):
    flair = FlairWordEmbeddings(str(word_vectors_file(tmp_path)), field="lemma")
    with pytest.raises(UnsupportedFlairEmbeddings, match="field='lemma'"):
        as_embedders(flair)


def test_a_non_embedding_object_is_refused_with_its_position():
    with pytest.raises(TypeError, match=r"embeddings\[1\] is a str"):
        ec.EmbeddingStack([FlairEmbeddings(make_lm(True, hidden_size=8)), "news-forward"])


def test_cache_and_estimate_take_a_flair_stack_with_exact_bytes(data_dir):
    lm_f, lm_b = make_lm(True, hidden_size=16, seed=1), make_lm(False, hidden_size=16, seed=2)
    stack = StackedEmbeddings([FlairEmbeddings(lm_f), FlairEmbeddings(lm_b)])
    sentences = [s.tokens for s in read_column_file(data_dir / "wnut17" / "dev.conll")][:100]
    n_tokens = sum(len(s) for s in sentences)
    assert ec.estimate(sentences, stack, torch.float32) == (n_tokens + 1) * 32 * 4
    for placement in ("gpu", "cpu"):
        cache = ec.EmbeddingCache.build(
            sentences, stack, placement=placement, dtype=torch.float32, progress=False
        )
        assert cache.nbytes == (n_tokens + 1) * 32 * 4
        native = ec.EmbeddingCache.build(
            sentences,
            [ec.CharLMEmbeddings(lm_f), ec.CharLMEmbeddings(lm_b)],
            placement,
            torch.float32,
            progress=False,
        )
        assert torch.equal(cache.batch(list(range(10)))[0], native.batch(list(range(10)))[0])


def test_a_generic_adapter_tags_in_memory_but_training_refuses_it_before_any_work(tiny_bert, monkeypatch):
    monkeypatch.setitem(os.environ, "HF_HUB_OFFLINE", "1")
    from flair.embeddings import TransformerWordEmbeddings

    embeddings = TransformerWordEmbeddings(str(tiny_bert), fine_tune=False, layers="-1")
    tagger = ec.SequenceTagger(embeddings, ["NOUN", "VERB"], "upos", hidden_size=4)
    assert len(tagger.predict([["dogs", "bark"]])[0].tags) == 2
    corpus = ec.Corpus([ec.TaggedSentence(["dogs", "bark"], ["NOUN", "VERB"])], [], [])
    with pytest.raises(
        TypeError, match=r"cannot save a tagger over FlairTokenEmbedder\(TransformerWordEmbeddings\)"
    ):
        ec.Trainer(tagger, corpus)
