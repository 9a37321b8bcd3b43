"""The native character LM: Flair's LanguageModel network without Flair, exactly equal on the same weights."""

from __future__ import annotations

import pytest
import torch

from embedcache.data.conll import read_column_file
from embedcache.embeddings.char_language_model import CharacterDictionary, CharLanguageModel
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.language_model import load_language_model, save_language_model
from tests.conftest import make_lm

BATCH_SIZE = 64


@pytest.fixture(scope="module")
def wnut17_dev(data_dir) -> list[list[str]]:
    sentences = [s.tokens for s in read_column_file(data_dir / "wnut17" / "dev.conll")]
    assert len(sentences) == 1009
    return sentences


def native_copy(lm: torch.nn.Module, folder) -> CharLanguageModel:
    """The native LM of ``lm``'s weights, through embedcache's LM files."""
    save_language_model(lm, folder / "lm")
    native = load_language_model(folder / "lm")
    assert isinstance(native, CharLanguageModel)
    return native


@pytest.mark.parametrize("nout", [None, 24], ids=["no-projection", "projection"])
@pytest.mark.parametrize("is_forward", [True, False], ids=["forward", "backward"])
def test_vectors_equal_flairs_on_wnut17_dev(wnut17_dev, tmp_path, is_forward, nout):
    flair_lm = make_lm(is_forward, hidden_size=32, seed=5, nout=nout)
    native = native_copy(flair_lm, tmp_path)
    # 96 characters per pass: long tweets run in several chunks, the state carried from one to the next.
    ours, theirs = (CharLMEncoder(lm, chars_per_chunk=96) for lm in (native, flair_lm))
    assert ours.embedding_length == theirs.embedding_length == (nout or 32)
    for start in range(0, len(wnut17_dev), BATCH_SIZE):
        batch = wnut17_dev[start : start + BATCH_SIZE]
        assert torch.equal(ours.embed_batch(batch).vectors, theirs.embed_batch(batch).vectors)
    assert ours.fingerprint() == theirs.fingerprint()  # caches built with either LM are shared


def test_a_gru_lm_and_its_states_equal_flairs():
    flair_lm = make_lm(False, hidden_size=16, seed=6, recurrent_type="GRU")
    native = CharLanguageModel(CharacterDictionary(flair_lm.dictionary.get_items()), False, 16, 1, 32,
                               recurrent_type="GRU")  # fmt: skip
    native.load_state_dict({k: v for k, v in flair_lm.state_dict().items() if not k.startswith("decoder.")})
    ids = torch.randint(0, len(flair_lm.dictionary), (40, 3))  # (chars, batch)
    expected, expected_hidden = flair_lm.forward(ids, flair_lm.init_hidden(3), decode=False)
    output, hidden = native.eval().forward(ids, native.init_hidden(3))
    assert torch.equal(output, expected) and torch.equal(hidden[0], expected_hidden[0])


def test_fine_tuning_gives_the_native_lm_flairs_gradients(tmp_path):
    flair_lm = make_lm(True, hidden_size=16, seed=7)
    native = native_copy(flair_lm, tmp_path)
    tokens = [["Fine", "tuning", "works", "."], ["Here", "too"]]
    for lm in (native, flair_lm):
        CharLMEncoder(lm, fine_tune=True).embed_batch(tokens).vectors.sum().backward()
    assert native.encoder.weight.grad is not None
    assert torch.equal(native.encoder.weight.grad, flair_lm.encoder.weight.grad)
    assert torch.equal(native.rnn.weight_hh_l0.grad, flair_lm.rnn.weight_hh_l0.grad)


def test_the_character_dictionary_maps_unknown_characters_as_flair_does():
    with_unk = CharacterDictionary(["<unk>", "a", "b", "a"])  # a repeated item keeps its first id
    assert (len(with_unk), with_unk.get_idx_for_item("b"), with_unk.get_idx_for_item("é")) == (3, 2, 0)
    assert with_unk.get_items() == ["<unk>", "a", "b"] and with_unk.idx2item[1] == b"a"
    with pytest.raises(KeyError, match="'é' is not in the character dictionary, which has no <unk>"):
        CharacterDictionary(["a"], add_unk=False).get_idx_for_item("é")


def test_the_native_lm_has_no_decoder():
    lm = CharLanguageModel(CharacterDictionary("ab"), True, 4, 1, 3)
    with pytest.raises(ValueError, match="no decoder"):
        lm.forward(torch.zeros(2, 1, dtype=torch.long), lm.init_hidden(1), decode=True)
