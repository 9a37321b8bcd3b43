"""Trained Flair taggers, saved by Flair, converted to embedcache models: the same tags and scores as Flair.

Each configuration is trained with Flair's own ``ModelTrainer`` on a subset of WNUT-17 or LinES, saved with
``SequenceTagger.save``, converted from the file, reloaded from the embedcache model directory, and both run
on 500 held-out sentences.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import flair
import numpy as np
import pytest
import torch
from flair.data import Dictionary, Sentence, Span
from flair.datasets import ColumnCorpus
from flair.embeddings import FlairEmbeddings, OneHotEmbeddings, StackedEmbeddings
from flair.embeddings import WordEmbeddings as FlairWordEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger
from flair.trainers import ModelTrainer
from gensim.models import KeyedVectors

import embedcache as ec
from embedcache.data import TaggedSentence, read_column_file, read_conllu
from embedcache.embeddings.checkpoints import UnsafeCheckpointError
from embedcache.models.flair_conversion import (
    FlairConversionError,
    convert_flair_tagger_file,
    load_flair_tagger,
)
from tests.conftest import make_lm
from tests.models.flair_taggers import Exploit, small_flair_tagger_file, write_columns

HELD_OUT = 500
TRAIN = 150


def corpus_files(data_dir: Path, task: str, folder: Path) -> list[TaggedSentence]:
    """train/dev/test column files of a small subset in ``folder``; returns the held-out sentences."""
    if task == "ner":
        train = list(read_column_file(data_dir / "wnut17" / "train.conll"))
        held_out = list(read_column_file(data_dir / "wnut17" / "dev.conll"))
    else:
        train = list(read_conllu(data_dir / "ud_english_lines" / "train.conllu"))
        held_out = list(read_conllu(data_dir / "ud_english_lines" / "dev.conllu"))
    folder.mkdir()
    write_columns(folder / "train.txt", train[:TRAIN])
    write_columns(folder / "dev.txt", train[TRAIN : TRAIN + 30])
    write_columns(folder / "test.txt", train[TRAIN + 30 : TRAIN + 60])
    return held_out[:HELD_OUT]


def word_vectors(folder: Path, sentences: list[TaggedSentence]) -> Path:
    words = sorted({t.lower() for s in sentences for t in s.tokens})[:2000]
    kv = KeyedVectors(8)
    kv.add_vectors(words, np.random.default_rng(0).standard_normal((len(words), 8)).astype(np.float32))
    path = folder / "words.bin"
    kv.save_word2vec_format(str(path), binary=True)
    return path


def lively_lm(is_forward: bool, seed: int):
    """A random LM whose states differ from token to token (the default init gives near-constant ones)."""
    lm = make_lm(is_forward, hidden_size=32, seed=seed)
    with torch.no_grad():
        for parameter in lm.parameters():
            parameter.normal_(0.0, 0.5)
    return lm


CONFIGURATIONS = {
    # task, embeddings, tagger options
    "ner-crf-bioes-fwd-bwd-words": ("ner", "fwd bwd words", dict(tag_format="BIOES")),
    "ner-softmax-bio-2-layers-no-reprojection-fwd-words": (
        "ner",
        "fwd words",
        dict(use_crf=False, tag_format="BIO", rnn_layers=2, reproject_embeddings=False),
    ),
    "upos-crf-2-layers-bwd-words": ("upos", "bwd words", dict(rnn_layers=2, reproject_embeddings=False)),
    "upos-softmax-fwd-bwd-words": ("upos", "fwd bwd words", dict(use_crf=False)),
    "upos-crf-no-rnn": ("upos", "fwd", dict(use_rnn=False)),
}


def train_flair_tagger(tmp_path: Path, data_dir: Path, name: str) -> tuple[Path, list[TaggedSentence]]:
    task, embedding_names, options = CONFIGURATIONS[name]
    held_out = corpus_files(data_dir, task, tmp_path / "corpus")
    corpus = ColumnCorpus(tmp_path / "corpus", {0: "text", 1: task})
    parts = {
        "fwd": lambda: FlairEmbeddings(lively_lm(True, seed=1)),
        "bwd": lambda: FlairEmbeddings(lively_lm(False, seed=2), with_whitespace=False),
        "words": lambda: FlairWordEmbeddings(str(word_vectors(tmp_path, held_out))),
    }
    flair.set_seed(0)
    embeddings = StackedEmbeddings([parts[part]() for part in embedding_names.split()])
    dictionary = corpus.make_label_dictionary(task, add_unk=False)
    tagger = FlairSequenceTagger(embeddings, dictionary, task, hidden_size=16, **options)
    ModelTrainer(tagger, corpus).train(
        tmp_path / "flair", max_epochs=2, mini_batch_size=16, learning_rate=0.1, save_final_model=False
    )
    # Two epochs on 150 sentences tag nearly everything O (NER) or NOUN (UPOS): spread the emission scores
    # so that the comparison meets many tags, close calls and ill-formed span sequences.
    with torch.no_grad():
        tagger.linear.weight.add_(torch.randn_like(tagger.linear.weight) * 2.0)
        tagger.linear.bias.copy_(torch.randn_like(tagger.linear.bias))
    tagger.save(tmp_path / "flair" / "final-model.pt")
    return tmp_path / "flair" / "final-model.pt", held_out


def flair_labels(sentences: list[Sentence], label_type: str) -> list[list[tuple[int, int, str, float]]]:
    """Each sentence's labels as (first token, end token, value, score): spans or token labels alike."""
    labels = []
    for sentence in sentences:
        found = []
        for label in sentence.get_labels(label_type):
            point = label.data_point
            tokens = point.tokens if isinstance(point, Span) else [point]
            found.append((tokens[0].idx - 1, tokens[-1].idx, label.value, label.score))
        labels.append(found)
    return labels


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_converted_tagger_predicts_what_flair_predicts_on_500_held_out_sentences(tmp_path, data_dir, name):
    torch.set_num_threads(1)
    model_file, held_out = train_flair_tagger(tmp_path, data_dir, name)
    flair_tagger = FlairSequenceTagger.load(model_file)
    convert_flair_tagger_file(model_file, tmp_path / "converted")
    ours = ec.SequenceTagger.load(tmp_path / "converted")
    task = flair_tagger.tag_type

    by_flair = [Sentence(s.tokens) for s in held_out]
    by_us = [Sentence(s.tokens) for s in held_out]
    for sentence in by_us:  # labels of the tag type are replaced, as Flair replaces them
        sentence[0].add_label(task, "STALE")
    flair_tagger.predict(by_flair, mini_batch_size=32)
    ours.predict(by_us, batch_size=32)
    expected, got = flair_labels(by_flair, task), flair_labels(by_us, task)
    assert sum(len(s) for s in held_out) > 5000 and len(held_out) == HELD_OUT
    assert [[label[:3] for label in s] for s in got] == [[label[:3] for label in s] for s in expected]
    assert sum(len(s) for s in expected) >= 200  # many labels (spans or tokens) compared
    differences = [
        abs(a[3] - b[3]) for x, y in zip(got, expected, strict=True) for a, b in zip(x, y, strict=True)
    ]
    assert max(differences) < 1e-5

    # Token level too (Flair's spans hide the O tokens and the tags inside spans).
    flair_tagger.predict(by_flair, label_name="token", force_token_predictions=True)
    predictions = ours.predict([s.tokens for s in held_out])
    flair_tags = [[t.get_label("token").value for t in sentence] for sentence in by_flair]
    assert flair_tags == [[tag if tag not in ("O", "_") else "O" for tag in p.tags] for p in predictions]
    assert len({tag for tags in flair_tags for tag in tags}) >= 2  # not one tag everywhere


def test_model_card_records_source_checksum_and_date(tmp_path, data_dir, monkeypatch):
    model_file = small_flair_tagger_file(tmp_path, data_dir)
    convert_flair_tagger_file(model_file, tmp_path / "converted")
    card = ec.SequenceTagger.load(tmp_path / "converted").model_card["converted_from"]
    assert card["source"] == str(model_file)
    assert card["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert card["flair_version"] == flair.__version__ and card["converted_at"][:2] == "20"


def test_a_flair_language_model_file_is_not_a_tagger(tmp_path):
    make_lm(True, hidden_size=8).save(tmp_path / "lm.pt")
    with pytest.raises(
        FlairConversionError, match=r"lm.pt: not a Flair SequenceTagger \(no Flair model class"
    ):
        load_flair_tagger(tmp_path / "lm.pt")


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"__cls__": "SequenceTagger", "payload": Exploit()}, path)
    with pytest.raises(
        UnsafeCheckpointError,
        match=r"evil.pt: refused .*it needs print, which is not on the allow-list.*--trust-pickle",
    ):
        load_flair_tagger(path)
    assert "pwned" not in capsys.readouterr().out
    assert zipfile.is_zipfile(path) and b"print" in zipfile.ZipFile(path).read("evil/data.pkl")


def test_a_pickle_refused_by_the_allow_list_loads_only_on_explicit_trust(tmp_path, data_dir, capsys):
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump(Exploit(), f)
    with pytest.raises(UnsafeCheckpointError):
        load_flair_tagger(path)
    assert "pwned" not in capsys.readouterr().out
    with pytest.raises(FlairConversionError, match="not a Flair SequenceTagger"):
        load_flair_tagger(path, trust_pickle=True)  # the opt-in unpickles: the code ran
    assert "pwned" in capsys.readouterr().out


def test_an_embedding_that_cannot_be_converted_is_named(tmp_path, data_dir):
    vocabulary = Dictionary()
    for word in ("a", "b"):
        vocabulary.add_item(word)
    trainable = OneHotEmbeddings(vocabulary, embedding_length=4)
    model_file = small_flair_tagger_file(tmp_path, data_dir, StackedEmbeddings([trainable]))
    with pytest.raises(FlairConversionError, match="OneHotEmbeddings has trainable parameters"):
        convert_flair_tagger_file(model_file, tmp_path / "converted")
    assert not (tmp_path / "converted").exists()
