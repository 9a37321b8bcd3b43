"""word2vec training: a binary file that WordEmbeddings reads, the same on every run, OOV words zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import embedcache as ec
from embedcache.embeddings.train_words import tokenized_lines, train_word_vectors


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("words") / "w2v.bin"
    text = data_dir / "text" / "social_media_en.txt"
    vectors = train_word_vectors(text, out, vector_size=16, min_count=3, epochs=2, max_lines=2000)
    return text, out, vectors


def test_vectors_file_loads_with_word_embeddings(trained):
    _, out, vectors = trained
    assert [p.name for p in out.parent.iterdir()] == ["w2v.bin"]  # nothing staged is left behind
    embeddings = ec.WordEmbeddings(out)
    assert embeddings.embedding_length == 16
    assert embeddings.vocabulary == list(vectors.index_to_key)
    assert "the" in embeddings.vocabulary and "The" not in embeddings.vocabulary  # lower-cased
    got = embeddings.embed_batch([["The", "the", "qzxqzxqzx"]]).vectors
    # The binary file holds float32 as is: the vector read back is the trained one, bit for bit.
    assert torch.equal(got[0], torch.tensor(vectors["the"]))
    assert torch.equal(got[1], got[0])  # "The" falls back to the lower-cased "the"
    assert torch.equal(got[2], torch.zeros(16))  # out of vocabulary


def test_same_seed_gives_the_same_file(trained, tmp_path):
    text, out, _ = trained
    again = tmp_path / "again.bin"
    train_word_vectors(text, again, vector_size=16, min_count=3, epochs=2, max_lines=2000)
    assert again.read_bytes() == out.read_bytes()


def test_lines_are_segtok_tokens_lower_cased(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("Don't STOP me now!\n\n   \nI love NYC\n", encoding="utf-8")
    assert tokenized_lines(text) == [["do", "n't", "stop", "me", "now", "!"], ["i", "love", "nyc"]]
    assert tokenized_lines(text, max_lines=1) == [["do", "n't", "stop", "me", "now", "!"]]


def test_text_without_tokens_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no tokens"):
        train_word_vectors(empty, tmp_path / "w.bin")
    assert not (tmp_path / "w.bin").exists()


def test_vectors_are_finite(trained):
    assert np.isfinite(trained[2].vectors).all()


def test_fasttext_vectors_give_unseen_words_their_subword_vector(data_dir, tmp_path):
    text = data_dir / "text" / "social_media_en.txt"
    treebank = data_dir / "ud_english_eslspok" / "train.conllu"
    out = tmp_path / "ft.bin"
    model = train_word_vectors(
        text, out, vector_size=16, min_count=3, epochs=1, max_lines=2000, extra_texts=[treebank],
        subwords=(3, 5, 2000),
    )  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["ft.bin"]
    embeddings = ec.WordEmbeddings(out)  # Facebook's .bin, read without pickle
    assert embeddings.subword == (3, 5, 2000)
    unseen = "qzxwordiness"
    assert unseen not in embeddings.vocabulary
    got = embeddings.embed_batch([["the", unseen]]).vectors
    assert torch.allclose(got[0], torch.tensor(model["the"]), atol=1e-6)
    assert torch.allclose(got[1], torch.tensor(model[unseen]), atol=1e-6)  # gensim's n-gram mean
    assert got[1].abs().sum() > 0


def test_conllu_files_give_their_gold_tokens(tmp_path):
    conllu = tmp_path / "t.conllu"
    conllu.write_text(
        "# text = Don't go\n1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\n1\tDo\tdo\tAUX\t_\t_\t3\taux\t_\t_\n"
        "2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_\n3\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_\n\n"
        "1\tYes\tyes\tINTJ\t_\t_\t0\troot\t_\t_\n\n",
        encoding="utf-8",
    )
    assert tokenized_lines(conllu) == [["do", "n't", "go"], ["yes"]]
    assert tokenized_lines(conllu, max_lines=1) == [["do", "n't", "go"]]
