"""The bundled default model: small enough for the wheel, and as accurate as its model card says."""

from __future__ import annotations

import pytest

import embedcache as ec
from embedcache.data.conll import read_conllu
from embedcache.models.catalog import bundled_model_path
from embedcache.training.evaluation import evaluate_tags

MAX_BUNDLED_BYTES = 25 * 1024 * 1024


def test_the_bundled_model_fits_the_size_limit():
    files = list(bundled_model_path("en-upos").iterdir())
    assert sum(p.stat().st_size for p in files) <= MAX_BUNDLED_BYTES


@pytest.mark.slow  # tags the 1,121 sentences of LinES test with the char LMs on the CPU
def test_the_bundled_model_scores_its_model_card_figure_on_lines_test(data_dir):
    tagger = ec.SequenceTagger.load("en-upos")
    card = tagger.model_card["scores_of_the_bundled_float16_weights"]["lines_test"]
    sentences = list(read_conllu(data_dir / "ud_english_lines" / "test.conllu"))
    predictions = tagger.predict(sentences, batch_size=64)
    scores = evaluate_tags([s.tags or [] for s in sentences], [p.tags for p in predictions], "plain")
    assert scores.n_tokens == card["n_tokens"] == 19984
    # Other batch sizes may round differently; at most two of the 19,984 tokens may change their tag.
    assert abs(scores.accuracy - card["accuracy"]) * scores.n_tokens <= 2
