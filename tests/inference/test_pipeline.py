"""Pipeline: identical LMs loaded once and run once per batch; each tagger's tags as its own predict gives."""

from __future__ import annotations

import pytest
import torch

import embedcache as ec
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.inference.pipeline import Pipeline
from embedcache.inference.tagger import SequenceTagger
from embedcache.inference.tagger_group import tagger_columns
from embedcache.models.labels import TagDictionary
from tests.conftest import make_lm

TEXTS = ["Anna lives in Rome. She likes it.", "", "Bob met Carol at the U.N. in New York on Monday !", "x"]


def lms(*seeds: int) -> list[CharLMEncoder]:
    """Fresh copies of random LMs (forward for even seeds): equal seeds give equal weights."""
    return [CharLMEncoder(make_lm(seed % 2 == 0, 16, seed=seed)) for seed in seeds]


def tagger(embedders: list[CharLMEncoder], tags: list[str], tag_type: str, seed: int) -> SequenceTagger:
    torch.manual_seed(seed)
    model = SequenceTagger(embedders, TagDictionary(tags, "BIO" if "O" in tags else "plain"), tag_type,
                           hidden_size=8, use_crf=seed == 1)  # fmt: skip
    for name, weight in model.named_parameters():  # LM vectors differ little from token to token: amplify
        if not name.startswith("embeddings"):
            torch.nn.init.normal_(weight, std=30.0) if "weight" in name else torch.nn.init.zeros_(weight)
    return model.eval()


@pytest.fixture
def taggers() -> list[SequenceTagger]:
    """Two taggers on equal copies of the same two LMs, one on them in the other order plus a third LM."""
    return [
        tagger(lms(0, 1), ["ADJ", "NOUN", "PUNCT", "VERB"], "upos", seed=0),
        tagger(lms(0, 1), ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "ner", seed=1),
        tagger(lms(1, 2, 0), ["A", "B", "C"], "other", seed=2),
    ]


def test_each_tagger_gets_what_its_own_predict_gives(taggers):
    alone = [model.predict(TEXTS) for model in taggers]
    together = Pipeline(taggers).predict(TEXTS, batch_size=2)
    assert len(together) == len(TEXTS)
    for k, own in enumerate(alone):
        assert len({tag for p in own for tag in p.tags}) >= 2
        for mine, theirs in zip([row[k] for row in together], own, strict=True):
            assert mine.tokens == theirs.tokens and mine.tags == theirs.tags and mine.spans == theirs.spans
            assert mine.confidences == pytest.approx(theirs.confidences, abs=1e-6)


def test_equal_lms_are_kept_once_and_the_copies_released(taggers):
    first_lms = list(taggers[0].embeddings.embedders)
    pipeline = Pipeline(taggers)
    assert pipeline.embedders[:2] == first_lms and len(pipeline.embedders) == 3
    assert all(a is b for a, b in zip(taggers[1].embeddings.embedders, first_lms, strict=True))
    assert taggers[2].embeddings.embedders[0] is first_lms[1]
    assert taggers[2].embeddings.embedders[2] is first_lms[0]
    lm_nbytes = [sum(p.numel() * 4 for p in e.parameters()) + sum(b.numel() * 4 for b in e.buffers())
                 for e in pipeline.embedders]  # fmt: skip
    nbytes = pipeline.weight_nbytes()
    assert nbytes.shared_embedders == sum(lm_nbytes)
    own = [sum(p.numel() * 4 for n, p in t.named_parameters() if "embeddings" not in n) for t in taggers]
    assert nbytes.taggers == dict(zip(["upos", "ner", "other"], own, strict=True))
    assert nbytes.total == sum(lm_nbytes) + sum(own)
    assert nbytes.separately == 2 * (lm_nbytes[0] + lm_nbytes[1]) + sum(lm_nbytes) + sum(own)


def test_contiguous_runs_read_a_view_others_a_column_selection():
    assert tagger_columns([0, 1], [4, 6, 5]) == slice(0, 10)
    assert tagger_columns([1, 2], [4, 6, 5]) == slice(4, 15)
    assert tagger_columns([1, 0], [2, 3]).tolist() == [2, 3, 4, 0, 1]


def test_names_must_be_one_distinct_name_per_tagger(taggers):
    with pytest.raises(ValueError, match="one distinct name per tagger"):
        Pipeline(taggers[:2], names=["a", "a"])
    assert Pipeline(taggers[:2], names=["pos", "ner"]).names == ["pos", "ner"]
    assert ec.Pipeline is Pipeline
