"""Training's cache built with int8 LMs on ONNX Runtime: its own cache keys, torch again afterwards."""

from __future__ import annotations

import pytest
import torch

from embedcache.data.datasets import WNUT17
from embedcache.embeddings.char_language_model import CharacterDictionary, CharLanguageModel
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.training.trainer import Trainer
from tests.conftest import CHARACTERS

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDCACHE_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    return tmp_path / "onnx-cache"


def native_tagger(corpus) -> SequenceTagger:
    torch.manual_seed(0)
    dictionary = CharacterDictionary(["<unk>", *CHARACTERS])
    encoders = [
        CharLMEncoder(CharLanguageModel(dictionary, forward, 16, 1, 16).eval()) for forward in (True, False)
    ]
    tags = TagDictionary.from_sentences([s.tags for s in corpus.train], scheme="BIOES")
    return SequenceTagger(encoders, tags, "ner", hidden_size=8)


def test_an_int8_cache_has_its_own_keys_and_the_lms_run_in_torch_again(data_dir, tmp_path, onnx_cache):
    corpus = WNUT17(data_dir / "wnut17").subset(60, 20)
    caches = tmp_path / "caches"
    for int8 in (False, True):
        tagger = native_tagger(corpus)
        Trainer(tagger, corpus).train(tmp_path / f"out-{int8}", storage_mode="cpu", max_epochs=1,
                                      cache_dir=caches, cache_int8=int8, progress=False)  # fmt: skip
        assert [e.runner for e in tagger.embeddings.embedders] == [None, None]
    # train and dev, each once with torch's vectors and once with int8's: four caches, none reused.
    assert len([p for p in caches.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 4
    # Only the two LMs were exported: the head (untrained, and not what builds a cache) was not.
    assert sorted(p.suffix for p in onnx_cache.iterdir()) == [".json", ".json", ".onnx", ".onnx"]


def test_training_drops_an_onnx_head_so_dev_scores_are_the_trained_weights(data_dir, tmp_path):
    from embedcache.models.backends import use_backend

    corpus = WNUT17(data_dir / "wnut17").subset(30, 10)
    tagger = use_backend(native_tagger(corpus), "onnx")
    assert tagger.head_runner is not None
    Trainer(tagger, corpus).train(tmp_path / "out", storage_mode="none", max_epochs=1, progress=False)
    assert tagger.head_runner is None


def test_int8_without_a_cache_is_refused(data_dir, tmp_path):
    corpus = WNUT17(data_dir / "wnut17").subset(10, 5)
    with pytest.raises(ValueError, match="cache_int8 builds the embedding cache"):
        Trainer(native_tagger(corpus), corpus).train(tmp_path, storage_mode="none", cache_int8=True)
