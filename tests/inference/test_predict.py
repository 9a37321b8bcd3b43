"""predict(): every input kind, input order kept whatever the batching, offsets that index the input."""

from __future__ import annotations

import random

import pytest
import torch
from flair.data import Sentence

import embedcache as ec
from embedcache.data import read_column_file
from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from tests.conftest import make_lm


@pytest.fixture(scope="module")
def tagger():
    torch.manual_seed(0)
    tags = TagDictionary(["O", "X", "Y", "Z"], "plain")  # non-O plain tags are one-token spans
    model = SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 16)), tags, "ner", hidden_size=8, use_crf=False)
    torch.nn.init.normal_(model.emission.weight, std=30.0)  # varied tags, so that order mistakes show
    torch.nn.init.zeros_(model.emission.bias)
    return model.eval()


@pytest.mark.slow
def test_same_tags_in_any_batch_size_and_order_on_1000_raw_sentences(tagger, data_dir):
    texts = [" ".join(s.tokens) for s in read_column_file(data_dir / "wnut17" / "train.conll")][:1000]

    def check_same(predictions, reference):
        assert [p.tags for p in predictions] == [p.tags for p in reference]
        for got, expected in zip(predictions, reference, strict=True):  # floats: batch shapes change rounding
            assert got.confidences == pytest.approx(expected.confidences, abs=1e-5)

    reference = tagger.predict(texts, batch_size=32)
    assert len({tag for p in reference for tag in p.tags}) >= 2
    for batch_size in (1, 7, 1000):
        check_same(tagger.predict(texts, batch_size=batch_size), reference)
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    shuffled = tagger.predict([texts[i] for i in order], batch_size=64)
    check_same([shuffled[order.index(i)] for i in range(len(texts))], reference)


def test_raw_text_spans_carry_character_offsets_into_the_input(tagger):
    text = "Anna  Smith visited Rome.  Then Paris!"
    [prediction] = tagger.predict(text)
    assert len(prediction.sentence_starts) == 2
    for token, offset in zip(prediction.tokens, prediction.offsets, strict=True):
        assert text[offset : offset + len(token)] == token
    for span in prediction.to_json()["spans"]:
        assert text[span["start_char"] : span["end_char"]] == span["text"]


def test_every_input_kind_is_accepted(tagger):
    flair_sentence = Sentence("Anna visited Rome")
    tokens = ["Anna", "visited", "Rome"]
    results = tagger.predict(
        ["Anna visited Rome", tokens, TaggedSentence(tokens), flair_sentence, tuple(tokens)]
    )
    assert len(results) == 5 and len({tuple(p.tags) for p in results}) == 1
    assert results[0].offsets == [0, 5, 13] and results[1].offsets is None


def constant_bio_tagger(tag: str) -> SequenceTagger:
    """A BIO tagger over the type PER whose emissions always favour ``tag`` (O, B-PER or I-PER)."""
    torch.manual_seed(0)
    tags = TagDictionary.for_labels(["PER"], "BIO")
    tagger = SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8)), tags, "ner", hidden_size=4).eval()
    torch.nn.init.zeros_(tagger.emission.weight)
    with torch.no_grad():
        tagger.emission.bias.copy_(torch.tensor([5.0 if t == tag else 0.0 for t in tags.tags]))
    return tagger


def test_span_tags_label_flair_spans():
    tagger = constant_bio_tagger("B-PER")  # every token starts a PER span
    sentence = Sentence("Anna Bob")
    [prediction] = tagger.predict(sentence)
    assert prediction.tags == ["B-PER", "B-PER"]
    assert [(s.text, s.tag) for s in sentence.get_spans("ner")] == [("Anna", "PER"), ("Bob", "PER")]


def test_plain_tags_label_flair_tokens():
    tagger = SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8)), ["NOUN", "VERB"], "upos", hidden_size=4)
    sentence = Sentence("dogs bark")
    [prediction] = tagger.predict(sentence)
    assert [t.get_label("upos").value for t in sentence] == prediction.tags
    assert [t.get_label("upos").score for t in sentence] == pytest.approx(prediction.confidences)


def test_gold_labels_of_the_tag_type_are_replaced_as_flair_replaces_them():
    tagger = SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8)), ["NOUN", "VERB"], "upos", hidden_size=4)
    sentence = Sentence("dogs bark loudly")
    for token in sentence:
        token.add_label("upos", "GOLD")
        token.add_label("lemma", "keep")
    [prediction] = tagger.predict(sentence)
    assert [[label.value for label in t.get_labels("upos")] for t in sentence] == [
        [tag] for tag in prediction.tags
    ]
    assert [t.get_label("lemma").value for t in sentence] == ["keep"] * 3  # other label types stay
    tagger.predict(sentence, label_name="predicted")
    assert [t.get_label("predicted").value for t in sentence] == prediction.tags
    assert len(sentence.get_labels("upos")) == 3


def test_span_labels_are_replaced_and_readable_with_get_spans():
    tagger = constant_bio_tagger("O")
    sentence = Sentence("Anna Bob")
    sentence[0:2].add_label("ner", "LOC")
    tagger.predict(sentence)
    assert sentence.get_spans("ner") == []


def test_flair_decoding_reports_flairs_viterbi_confidence_and_span_reading():
    torch.manual_seed(0)
    tags = TagDictionary(["O", "B-PER", "E-PER", "I-PER"], "BIOES")
    embedder = ec.CharLMEmbeddings(make_lm(True, 8))
    ours = SequenceTagger(embedder, tags, "ner", hidden_size=4).eval()
    flair_style = SequenceTagger(embedder, tags, "ner", hidden_size=4, decoding="flair").eval()
    flair_style.load_state_dict(ours.state_dict())
    with torch.no_grad():  # B-PER E-PER I-PER: conlleval reads two spans, Flair one
        for tagger in (ours, flair_style):
            tagger.crf.transitions.fill_(-5.0)
            tagger.crf.transitions[1, 2] = tagger.crf.transitions[2, 3] = 5.0
            tagger.crf.start_transitions.copy_(torch.tensor([-5.0, 5.0, -5.0, -5.0]))
    [a] = ours.predict([["Anna", "Bob", "Carl"]])
    [b] = flair_style.predict([["Anna", "Bob", "Carl"]])
    assert a.tags == b.tags == ["B-PER", "E-PER", "I-PER"]
    assert [(s.start, s.end) for s in a.spans] == [(0, 2), (2, 3)]
    assert [(s.start, s.end) for s in b.spans] == [(0, 3)]
    padded, lengths = flair_style.embed([["Anna", "Bob", "Carl"]])
    scores = flair_style.emissions(padded, lengths)
    mask = torch.ones(1, 3, dtype=torch.bool)
    assert b.confidences == pytest.approx(flair_style.crf.viterbi_confidences(scores, mask)[0].tolist())
    assert a.confidences != pytest.approx(b.confidences)


def test_empty_inputs_give_empty_predictions(tagger):
    assert tagger.predict([]) == []
    [empty] = tagger.predict("   ")
    assert empty.tokens == [] and empty.spans == []


def test_bad_inputs_are_refused(tagger):
    with pytest.raises(TypeError, match="input 1: expected a string"):
        tagger.predict(["fine", 3])
    with pytest.raises(ValueError, match="batch_size"):
        tagger.predict(["fine"], batch_size=0)


def test_predict_restores_training_mode_and_storage_mode(tagger):
    tagger.train()
    tagger.predict(["x"], storage_mode="none")
    assert tagger.training and ec.get_storage_mode() == "gpu"
    tagger.eval()
