"""Flair's ModelTrainer with CharLMEmbeddings and the StorageModePlugin: exact memory, mode scoped."""

from __future__ import annotations

import pytest
from flair.data import Corpus, Sentence
from flair.models import SequenceTagger
from flair.trainers import ModelTrainer

import embedcache as ec
from embedcache.accounting import retained_nbytes, token_embeddings
from embedcache.interop import StorageModePlugin
from tests.conftest import make_lm


def tagged(text: str, tags: str) -> Sentence:
    sentence = Sentence(text.split())
    for token, tag in zip(sentence, tags.split(), strict=True):
        token.add_label("pos", tag)
    return sentence


class ModeSpy(StorageModePlugin.__bases__[0]):  # a TrainerPlugin that records the mode while training
    def __init__(self):
        super().__init__()
        self.modes = set()

    @StorageModePlugin.hook
    def after_training_batch(self, **_):
        self.modes.add(ec.get_storage_mode())


@pytest.mark.parametrize("mode", ["gpu", "cpu", "none"])
def test_flair_trainer_keeps_exact_bytes_and_restores_the_mode(tmp_path, mode):
    train = [tagged("Anna lives in Paris", "PROPN VERB ADP PROPN") for _ in range(6)]
    train += [tagged("Bob sings", "PROPN VERB") for _ in range(4)]
    corpus = Corpus(train=train, dev=[tagged("Bob sings", "PROPN VERB")], test=[tagged("Anna", "PROPN")])
    embeddings = ec.CharLMEmbeddings(make_lm(True, hidden_size=16))
    tagger = SequenceTagger(embeddings, corpus.make_label_dictionary("pos"), "pos", hidden_size=16)
    spy = ModeSpy()
    ModelTrainer(tagger, corpus).train(
        tmp_path,
        max_epochs=2,
        mini_batch_size=4,
        embeddings_storage_mode=mode,
        plugins=[StorageModePlugin(), spy],
        save_final_model=False,
    )
    assert spy.modes == {mode}
    assert ec.get_storage_mode() == "gpu"  # the default is back after training
    n_tokens = sum(len(s) for s in train)
    assert retained_nbytes(token_embeddings(train)) == (0 if mode == "none" else n_tokens * 16 * 4)


def test_mode_is_restored_when_training_fails(tmp_path):
    corpus = Corpus(train=[tagged("a b", "X X")], dev=[tagged("a", "X")], test=[tagged("a", "X")])
    tagger = SequenceTagger(
        ec.CharLMEmbeddings(make_lm(True, hidden_size=8)),
        corpus.make_label_dictionary("pos"),
        "pos",
        hidden_size=8,
    )

    class Boom(StorageModePlugin.__bases__[0]):
        @StorageModePlugin.hook
        def after_training_batch(self, **_):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        ModelTrainer(tagger, corpus).train(
            tmp_path, max_epochs=1, embeddings_storage_mode="none", plugins=[StorageModePlugin(), Boom()]
        )
    assert ec.get_storage_mode() == "gpu"
