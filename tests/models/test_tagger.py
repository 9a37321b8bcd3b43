"""The tagger network: shapes, masking, decoding, and that it learns."""

from __future__ import annotations

import pytest
import torch

import embedcache as ec
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from tests.conftest import make_lm


@pytest.fixture
def tagger():
    torch.manual_seed(0)
    tags = TagDictionary.for_labels(["PER", "LOC"], "BIOES")
    return SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 16)), tags, "ner", hidden_size=8)


def test_padding_does_not_change_a_sentences_emissions(tagger):
    tagger.eval()
    padded, lengths = tagger.embed([["Anna", "lives", "in", "Rome"], ["Hi"]])
    alone, _ = tagger.embed([["Hi"]])
    assert padded.shape == (2, 4, 16) and lengths.tolist() == [4, 1]
    assert torch.allclose(
        tagger.emissions(padded, lengths)[1, :1], tagger.emissions(alone, torch.tensor([1]))
    )


def test_decode_masks_pads_and_confidences_are_probabilities(tagger):
    tagger.eval()
    padded, lengths = tagger.embed([["a", "b", "c"], ["d"], []])
    tag_ids, confidences = tagger.decode(padded, lengths)
    assert tag_ids.shape == confidences.shape == (3, 3)
    assert tag_ids[1, 1:].eq(0).all() and tag_ids[2].eq(0).all() and confidences[2].eq(0).all()
    assert ((confidences[0] > 0) & (confidences[0] <= 1)).all()


@pytest.mark.parametrize("use_crf", [True, False])
def test_the_tagger_fits_a_small_pattern(use_crf):
    torch.manual_seed(0)
    tags = TagDictionary(["O", "NUM"], "plain")
    embeddings = ec.CharLMEmbeddings(make_lm(True, 16))
    tagger = SequenceTagger(
        embeddings, tags, "pos", hidden_size=16, use_crf=use_crf, word_dropout=0.0, locked_dropout=0.0
    )
    sentences = [["one", "2", "three", "4"], ["5", "six"], ["7", "8", "nine"]]
    gold = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    padded, lengths = tagger.embed(sentences)
    optimizer = torch.optim.Adam(tagger.parameters(), lr=0.05)
    first = tagger.loss(padded, lengths, gold).item()
    for _ in range(60):
        optimizer.zero_grad()
        tagger.loss(padded, lengths, gold).backward()
        optimizer.step()
    assert tagger.loss(padded, lengths, gold).item() < first / 10
    tagger.eval()
    tag_ids, _ = tagger.decode(padded, lengths)
    mask = torch.arange(4) < lengths.unsqueeze(1)
    assert torch.equal(tag_ids[mask], gold[mask])


def test_flair_dictionary_and_lists_are_accepted_as_tags():
    from flair.data import Dictionary

    flair_tags = Dictionary(add_unk=True)
    for tag in ("NOUN", "VERB"):
        flair_tags.add_item(tag)
    embeddings = ec.CharLMEmbeddings(make_lm(True, 8))
    assert SequenceTagger(embeddings, flair_tags, "upos", hidden_size=4).tags.tags == ["NOUN", "VERB"]
    assert len(SequenceTagger(embeddings, ["O", "B-X", "I-X"], "ner", hidden_size=4).tags) == 3
    with pytest.raises(TypeError, match="string"):
        SequenceTagger(embeddings, "NOUN", "upos")


@pytest.mark.parametrize("bad", [{"hidden_size": 0}, {"dropout": 1.0}, {"locked_dropout": -0.1}])
def test_bad_hyperparameters_are_refused(bad):
    with pytest.raises(ValueError):
        SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8)), ["O", "X"], "pos", **bad)
