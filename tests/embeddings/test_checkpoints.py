"""Flair LM checkpoints load with weights_only=True; anything that would run code is refused."""

from __future__ import annotations

import pickle
import pickletools

import pytest
import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings
from flair.models import LanguageModel

import embedcache as ec
from embedcache.embeddings.checkpoints import UnsafeCheckpointError, load_checkpoint, to_protocol_2
from embedcache.embeddings.language_model import load_language_model, save_language_model
from tests.conftest import make_lm


class Exploit:
    """Unpickling this runs a shell command."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


@pytest.fixture
def flair_checkpoint(tmp_path):
    lm = make_lm(False, hidden_size=24, seed=5, document_delimiter="\n")
    lm.dictionary.get_idx_for_items(["a"])  # Flair caches a defaultdict in the dictionary; it gets pickled
    path = tmp_path / "best-lm.pt"
    lm.save(path)  # Flair's own writer: torch.save(..., pickle_protocol=4)
    return lm, path


def test_flair_checkpoint_loads_safely_and_gives_flairs_vectors(flair_checkpoint):
    _, path = flair_checkpoint
    with pytest.raises(pickle.UnpicklingError, match="Unsupported operand"):
        torch.load(path, weights_only=True)  # why the protocol-2 rewrite exists
    embeddings = ec.CharLMEmbeddings(path)
    assert embeddings.name == str(path) and not embeddings.lm.is_forward_lm
    expected, got = Sentence("Safe loading works ."), Sentence("Safe loading works .")
    FlairEmbeddings(LanguageModel.load_language_model(path, has_decoder=False)).embed(expected)
    with ec.storage_mode("none"):
        embeddings.embed(got)
    assert all(torch.equal(a.get_embedding(), b.get_embedding()) for a, b in zip(expected, got, strict=True))


def test_loaded_dictionary_still_maps_unknown_characters_like_flair(flair_checkpoint):
    _, path = flair_checkpoint
    dictionary = ec.CharLMEmbeddings(path).lm.dictionary
    assert dictionary.get_idx_for_items(["😀", "a"]) == [0, dictionary.get_idx_for_item("a")]


def test_protocol_2_rewrite_is_equivalent_for_plain_data():
    data = {"a": [1, 2.5, None, True], "b": (b"\x00\xff", "é"), "c": {"a": "a"}, "big": 2**70}
    rewritten = to_protocol_2(pickle.dumps(data, protocol=4))
    assert {op.name for op, _, _ in pickletools.genops(rewritten)}.isdisjoint(
        {"FRAME", "STACK_GLOBAL", "MEMOIZE"}
    )
    assert pickle.loads(rewritten) == data


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"dictionary": Exploit(), "state_dict": {}}, path, pickle_protocol=4)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt.*refused"):
        load_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pt"):
        ec.CharLMEmbeddings(path)


def test_a_raw_pickle_file_is_refused(tmp_path):
    path = tmp_path / "raw.pt"
    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(UnsafeCheckpointError, match=r"raw\.pt"):
        ec.CharLMEmbeddings(path)


def test_trust_remote_pickle_is_an_explicit_opt_in(flair_checkpoint, tmp_path, monkeypatch):
    lm, _ = flair_checkpoint
    state = {k: getattr(lm, k) for k in ("is_forward_lm", "hidden_size", "nlayers", "embedding_size", "nout")}
    state |= {"dictionary": lm.dictionary, "dropout": 0.1, "state_dict": lm.state_dict(), "extra": Sentence}
    path = tmp_path / "needs-more.pt"
    torch.save(state, path)
    with pytest.raises(UnsafeCheckpointError):
        ec.CharLMEmbeddings(path)
    assert ec.CharLMEmbeddings(path, trust_remote_pickle=True).embedding_length == 24


@pytest.mark.parametrize(
    ("broken", "message"),
    [({"hidden_size": 10**12}, "hidden_size=1000000000000"), ({"nlayers": "2"}, "'nlayers' has type str")],
)
def test_absurd_or_mistyped_configs_are_refused_before_allocating(
    flair_checkpoint, tmp_path, broken, message
):
    lm, _ = flair_checkpoint
    state = {"dictionary": lm.dictionary, "is_forward_lm": True, "hidden_size": 8, "nlayers": 1}
    state |= {"embedding_size": 4, "nout": None, "dropout": 0.1, "state_dict": {}} | broken
    path = tmp_path / "absurd.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=message):
        ec.CharLMEmbeddings(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        ec.CharLMEmbeddings(tmp_path / "nope.pt")


def test_safetensors_round_trip_keeps_vectors_and_options(tmp_path):
    lm = make_lm(True, hidden_size=24, seed=6, document_delimiter="\t")
    save_language_model(lm, tmp_path / "lm")
    assert {p.name for p in tmp_path.iterdir()} == {"lm.safetensors", "lm.json"}
    loaded = load_language_model(tmp_path / "lm")
    assert loaded.document_delimiter == "\t" and loaded.dictionary.get_items() == lm.dictionary.get_items()
    tokens = [["same", "vectors", "😀"]]
    assert torch.equal(
        ec.CharLMEncoder(lm).embed_batch(tokens).vectors, ec.CharLMEncoder(loaded).embed_batch(tokens).vectors
    )
    assert ec.CharLMEmbeddings(tmp_path / "lm.safetensors").embedding_length == 24


def test_safetensors_config_with_a_wrong_version_is_refused(tmp_path):
    save_language_model(make_lm(True, hidden_size=8), tmp_path / "lm")
    config = tmp_path / "lm.json"
    config.write_text(config.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ValueError, match="unsupported LM format version 99"):
        load_language_model(tmp_path / "lm")
