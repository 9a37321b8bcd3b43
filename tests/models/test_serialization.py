"""Model directories: safetensors + JSON round trips; damaged, foreign and pickled files are refused."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from gensim.models import KeyedVectors

import embedcache as ec
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.models.serialization import ModelFormatError
from tests.conftest import make_lm


@pytest.fixture
def tagger():
    torch.manual_seed(0)
    words = KeyedVectors(4)
    words.add_vectors(["anna", "rome"], [[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    embedders = [
        ec.CharLMEmbeddings(make_lm(True, 12)),
        ec.CharLMEmbeddings(make_lm(False, 8)),
        ec.WordEmbeddings(words),
    ]
    return SequenceTagger(embedders, TagDictionary.for_labels(["PER", "LOC"], "BIOES"), "ner", hidden_size=6)


def test_round_trip_gives_the_same_predictions_and_no_pickle(tagger, tmp_path):
    tagger.model_card = {"trained_on": "nothing"}
    tagger.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert all(name.endswith((".json", ".safetensors")) for name in files)
    loaded = SequenceTagger.load(tmp_path / "model")
    texts = ["Anna lives in Rome .", "Nothing here"]
    assert [p.to_json() for p in loaded.predict(texts)] == [p.to_json() for p in tagger.predict(texts)]
    assert loaded.model_card == {"trained_on": "nothing"}
    assert loaded.hyperparameters() == tagger.hyperparameters()


def test_half_storage_halves_the_weights_and_loads_them_as_float32(tagger, tmp_path):
    tagger.save(tmp_path / "full")
    tagger.save(tmp_path / "half", half=True)
    for name in ("tagger", "embedding-0", "embedding-1", "embedding-2"):
        full, half = (tmp_path / d / f"{name}.safetensors" for d in ("full", "half"))
        header = 8 + int.from_bytes(full.read_bytes()[:8], "little")  # the JSON header is about the same
        assert half.stat().st_size - header < (full.stat().st_size - header) / 2 + 64, name
    loaded = SequenceTagger.load(tmp_path / "half")
    expected = SequenceTagger.load(tmp_path / "full").state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for name, weights in loaded.state_dict().items():
        assert weights.dtype == expected[name].dtype, name
        if weights.is_floating_point():
            assert torch.equal(weights, expected[name].half().float()), name  # rounded once, cast back
    assert SequenceTagger.load(tmp_path / "half").predict(["Anna lives in Rome ."])[0].tags  # it runs


def test_saving_over_an_existing_model_replaces_it_whole(tagger, tmp_path):
    tagger.save(tmp_path / "model")
    (tmp_path / "model" / "stale.json").write_text("{}")
    tagger.save(tmp_path / "model")
    assert not (tmp_path / "model" / "stale.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary directory left behind


def test_missing_model_and_file_instead_of_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SequenceTagger.load(tmp_path / "nowhere")
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFormatError, match=r"model\.pt: a model is a directory"):
        SequenceTagger.load(tmp_path / "model.pt")


def test_a_pickle_in_place_of_weights_is_refused(tagger, tmp_path):
    tagger.save(tmp_path / "model")
    (tmp_path / "model" / "tagger.safetensors").write_bytes(pickle.dumps(torch.zeros(3)))
    with pytest.raises(ModelFormatError, match="damaged or incomplete model"):
        SequenceTagger.load(tmp_path / "model")


def test_truncated_weights_are_refused(tagger, tmp_path):
    tagger.save(tmp_path / "model")
    weights = tmp_path / "model" / "embedding-0.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="damaged"):
        SequenceTagger.load(tmp_path / "model")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(format_version=0), "model format version 0"),
        (lambda c: c.update(format="something else"), "not an embedcache sequence tagger"),
        (lambda c: c["tagger"].update(hidden_size=10**12), "hidden_size=1000000000000"),
        (lambda c: c["tagger"].update(hidden_size="8"), "hidden_size"),
        (lambda c: c["embeddings"][0].update(file="../../etc/passwd"), "bad embedding file name"),
    ],
)
def test_configs_with_bad_values_are_refused_before_allocating(tagger, tmp_path, change, message):
    tagger.save(tmp_path / "model")
    path = tmp_path / "model" / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=message):
        SequenceTagger.load(tmp_path / "model")


def test_invalid_json_names_the_file(tagger, tmp_path):
    tagger.save(tmp_path / "model")
    (tmp_path / "model" / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match=r"config\.json: not valid JSON"):
        SequenceTagger.load(tmp_path / "model")
