"""Tests for ``embedcache.embeddings.words``: file formats, the Flair lookup chain, both faces, save/load."""

from __future__ import annotations

from pathlib import Path

import flair
import numpy as np
import pytest
import torch
from flair.data import Dictionary, Sentence
from flair.embeddings import StackedEmbeddings
from flair.embeddings.base import load_embeddings
from flair.models import SequenceTagger
from gensim.models import FastText, KeyedVectors
from gensim.models.fasttext import load_facebook_vectors, save_facebook_model

from embedcache.embeddings.base import TokenEmbedder
from embedcache.embeddings.words import WordEmbeddings
from embedcache.settings import storage_mode

WORDS = ["apple", "eats", "Eats", "####", "x00"]
# (5, 4) multiples of 1/4: exact in binary and in any decimal text rendering.
VECTORS = (torch.arange(1, 21, dtype=torch.float32).reshape(5, 4) - 8.0) / 4.0
ZERO = torch.zeros(4)


@pytest.fixture
def keyed_vectors() -> KeyedVectors:
    kv = KeyedVectors(4)
    kv.add_vectors(WORDS, VECTORS.numpy())
    return kv


@pytest.fixture
def embeddings(keyed_vectors: KeyedVectors) -> WordEmbeddings:
    return WordEmbeddings(keyed_vectors)


def write_glove(path: Path) -> Path:
    """GloVe text: ``word v1 v2 ...`` lines and no ``count dim`` header."""
    lines = (
        " ".join([word, *(repr(float(v)) for v in row)]) for word, row in zip(WORDS, VECTORS, strict=True)
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def vectors_of(emb: WordEmbeddings, words: list[str]) -> torch.Tensor:
    return emb.embed_batch([words]).vectors


@pytest.mark.parametrize(
    ("file_name", "binary"), [("vectors.bin", True), ("vectors.txt", False), ("vectors.vec", False)]
)
def test_word2vec_files_load_exact_vectors(tmp_path, keyed_vectors, file_name, binary):
    path = tmp_path / file_name
    keyed_vectors.save_word2vec_format(str(path), binary=binary)
    emb = WordEmbeddings(path)
    assert torch.equal(vectors_of(emb, WORDS), VECTORS)
    assert emb.name == str(path)


@pytest.mark.parametrize("format", ["auto", "glove"])
def test_glove_file_without_header_loads_exact_vectors(tmp_path, format):
    emb = WordEmbeddings(write_glove(tmp_path / "glove.txt"), format=format)
    assert emb.vocabulary == WORDS
    assert torch.equal(vectors_of(emb, WORDS), VECTORS)


@pytest.mark.parametrize(
    ("word", "row"),
    [
        ("Eats", 2),  # exact case wins over the lower-case form
        ("eats", 1),
        ("EATS", 1),  # lower-case fallback
        ("Apple", 0),
        ("2024", 3),  # digits -> '#'
        ("X12", 4),  # digits -> '0'
        ("pies", None),  # found nowhere -> zero vector
    ],
)
def test_lookup_follows_flair_fallback_chain(embeddings, word, row):
    expected = ZERO if row is None else VECTORS[row]
    assert torch.equal(vectors_of(embeddings, [word])[0], expected)


def test_without_lowercase_fallback_only_exact_words_are_found(keyed_vectors):
    emb = WordEmbeddings(keyed_vectors, lowercase_fallback=False)
    got = vectors_of(emb, ["Apple", "2024", "X12", "Eats"])
    assert torch.equal(got, torch.stack([ZERO, ZERO, ZERO, VECTORS[2]]))


def test_repeated_words_give_the_same_rows(embeddings):
    got = vectors_of(embeddings, ["Apple", "pies", "Apple", "pies"])
    assert torch.equal(got, torch.stack([VECTORS[0], ZERO, VECTORS[0], ZERO]))


def test_embed_batch_offsets_with_an_empty_sentence(embeddings):
    assert isinstance(embeddings, TokenEmbedder)
    batch = embeddings.embed_batch([["apple", "eats"], [], ["x00"]], whitespace_after=[[0, 1], [], [1]])
    assert batch.vectors.shape == (3, 4)
    assert batch.vectors.dtype == torch.float32
    assert batch.sentence_offsets.tolist() == [0, 2, 2, 3]
    assert batch.sentence(1).shape == (0, 4)
    assert torch.equal(batch.sentence(2), VECTORS[4:5])


def test_embed_batch_of_no_sentences(embeddings):
    batch = embeddings.embed_batch([])
    assert batch.vectors.shape == (0, 4)
    assert batch.sentence_offsets.tolist() == [0]


def test_storage_mode_cpu_returns_cpu_vectors(embeddings):
    with storage_mode("cpu"):
        assert embeddings.embed_batch([["apple"]]).vectors.device.type == "cpu"


def test_non_string_token_raises_type_error(embeddings):
    with pytest.raises(TypeError, match="token 1"):
        embeddings.embed_batch([["apple", 3]])


def test_gensim_native_file_needs_allow_pickle(tmp_path, keyed_vectors):
    path = tmp_path / "vectors.kv"
    keyed_vectors.save(str(path))
    with pytest.raises(ValueError, match="pickle") as error:
        WordEmbeddings(path)
    assert str(path) in str(error.value)
    assert "save_word2vec_format" in str(error.value)
    assert torch.equal(vectors_of(WordEmbeddings(path, allow_pickle=True), WORDS), VECTORS)


def test_missing_file_error_names_the_path(tmp_path):
    path = tmp_path / "nowhere.bin"
    with pytest.raises(FileNotFoundError, match=str(path)):
        WordEmbeddings(path)


@pytest.mark.parametrize(
    ("file_name", "content"),
    [("garbage.txt", b"hello world\nfoo\n"), ("garbage.bin", bytes(range(256))), ("empty.txt", b"")],
)
def test_unparseable_file_gives_value_error_naming_the_path(tmp_path, file_name, content):
    path = tmp_path / file_name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)) as error:
        WordEmbeddings(path)
    assert error.value.__cause__ is not None


def test_unknown_suffix_asks_for_an_explicit_format(tmp_path, keyed_vectors):
    path = tmp_path / "vectors.w2v"
    keyed_vectors.save_word2vec_format(str(path), binary=True)
    with pytest.raises(ValueError, match="format="):
        WordEmbeddings(path)
    assert torch.equal(vectors_of(WordEmbeddings(path, format="word2vec-binary"), WORDS), VECTORS)


def test_flair_face_in_stacked_embeddings_shares_one_storage(embeddings):
    stacked = StackedEmbeddings([embeddings])
    sentence = Sentence("Apple eats 2024 pies")
    stacked.embed(sentence)
    expected = [VECTORS[0], VECTORS[1], VECTORS[3], ZERO]
    got = [token.get_embedding([embeddings.name]) for token in sentence]
    for vector, want in zip(got, expected, strict=True):
        assert torch.equal(vector, want)
    assert len({vector.untyped_storage().data_ptr() for vector in got}) == 1
    assert torch.equal(sentence[0].get_embedding(), VECTORS[0])
    assert stacked.embedding_length == 4


def test_flair_face_embeds_a_batch_of_sentences(embeddings):
    sentences = [Sentence("Apple eats"), Sentence("x00")]
    embeddings.embed(sentences)
    tokens = [token for sentence in sentences for token in sentence]
    assert torch.equal(torch.stack([t.get_embedding([embeddings.name]) for t in tokens]), VECTORS[[0, 1, 4]])
    assert len({t.get_embedding([embeddings.name]).untyped_storage().data_ptr() for t in tokens}) == 1


def test_params_round_trip(embeddings):
    rebuilt = WordEmbeddings.from_params(embeddings.to_params())
    rebuilt.load_state_dict(embeddings.state_dict())
    assert rebuilt.fingerprint() == embeddings.fingerprint()
    via_flair = load_embeddings(embeddings.save_embeddings(use_state_dict=True))
    assert isinstance(via_flair, WordEmbeddings)
    assert torch.equal(
        vectors_of(via_flair, ["Apple", "2024", "pies"]), torch.stack([VECTORS[0], VECTORS[3], ZERO])
    )


def test_sequence_tagger_save_and_load(tmp_path, embeddings):
    tags = Dictionary(add_unk=False)
    for tag in ("O", "B-X"):
        tags.add_item(tag)
    tagger = SequenceTagger(
        embeddings=embeddings,
        tag_dictionary=tags,
        tag_type="ner",
        hidden_size=8,
        use_crf=False,
        use_rnn=False,
    )
    tagger.save(tmp_path / "tagger.pt")
    loaded = SequenceTagger.load(tmp_path / "tagger.pt")
    assert isinstance(loaded.embeddings, WordEmbeddings)
    assert loaded.embeddings.fingerprint() == embeddings.fingerprint()


def test_fingerprint_depends_on_vectors_vocabulary_and_options(keyed_vectors):
    base = WordEmbeddings(keyed_vectors).fingerprint()
    assert len(base) == 64
    assert WordEmbeddings(keyed_vectors, name="other").fingerprint() == base
    assert WordEmbeddings(keyed_vectors, lowercase_fallback=False).fingerprint() != base
    renamed = KeyedVectors(4)
    renamed.add_vectors(["pear", *WORDS[1:]], VECTORS.numpy())
    assert WordEmbeddings(renamed).fingerprint() != base
    changed = KeyedVectors(4)
    changed.add_vectors(WORDS, VECTORS.numpy() + 1)
    assert WordEmbeddings(changed).fingerprint() != base


@pytest.fixture
def fasttext_file(tmp_path) -> Path:
    model = FastText(
        [["apple", "eats", "pies"], ["the", "pie", "eats"]],
        vector_size=4,
        min_count=1,
        epochs=1,
        bucket=64,
        seed=1,
        workers=1,
    )
    path = tmp_path / "model.bin"
    save_facebook_model(model, str(path))
    return path


def test_fasttext_bin_gives_subword_vectors_to_oov_words(fasttext_file):
    reference = load_facebook_vectors(str(fasttext_file))
    emb = WordEmbeddings(fasttext_file)
    assert emb.subword == (reference.min_n, reference.max_n, reference.bucket)
    words = ["pies", "Apple", "pineapples", "x"]
    got = vectors_of(emb, words)
    assert torch.equal(got[0], torch.tensor(reference["pies"]))
    assert torch.equal(got[1], torch.tensor(reference["apple"]))  # fallback chain before subwords
    assert got[2].abs().sum() > 0
    assert torch.allclose(got[2], torch.tensor(reference["pineapples"]), atol=1e-6)
    assert torch.allclose(got[3], torch.tensor(reference["x"]), atol=1e-6)
    assert not np.array_equal(reference["pineapples"], np.zeros(4))


def test_fasttext_subwords_survive_params_round_trip(fasttext_file):
    emb = WordEmbeddings(fasttext_file)
    rebuilt = load_embeddings(emb.save_embeddings(use_state_dict=True))
    assert rebuilt.fingerprint() == emb.fingerprint()
    assert torch.equal(vectors_of(rebuilt, ["pineapples"]), vectors_of(emb, ["pineapples"]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vectors_follow_the_module_device(embeddings):
    embeddings.to(torch.device("cuda"))
    batch = embeddings.embed_batch([["Apple", "pies"]])
    assert batch.vectors.device.type == "cuda"
    assert torch.equal(batch.vectors.cpu(), torch.stack([VECTORS[0], ZERO]))
    with storage_mode("cpu"):
        assert embeddings.embed_batch([["Apple"]]).vectors.device.type == "cpu"
    previous = flair.device
    try:
        flair.device = torch.device("cuda")
        sentence = Sentence("Apple")
        embeddings.embed(sentence)
        assert sentence[0].get_embedding([embeddings.name]).device.type == "cuda"
    finally:
        flair.device = previous
