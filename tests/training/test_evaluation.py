"""Scores of plain tags: accuracy, per-tag precision/recall/F1 and the most frequent confusions, exactly."""

from __future__ import annotations

import pytest

from embedcache.training.evaluation import evaluate_tags

GOLD = [["DET", "NOUN", "VERB", "ADV"], ["PROPN", "VERB", "ADJ", "NOUN", "PUNCT"]]
PREDICTED = [["DET", "NOUN", "NOUN", "ADJ"], ["NOUN", "VERB", "ADJ", "NOUN", "PUNCT"]]


def test_plain_tags_get_per_tag_scores_and_confusions():
    scores = evaluate_tags(GOLD, PREDICTED, "plain")
    assert scores.accuracy == pytest.approx(6 / 9) and scores.main_score == scores.accuracy
    noun = scores.per_type["NOUN"]  # gold 2, predicted 4 (2 right): precision 0.5, recall 1
    assert (noun["precision"], noun["recall"], noun["support"]) == (0.5, 1.0, 2)
    assert noun["f1-score"] == pytest.approx(2 / 3)
    assert scores.per_type["PROPN"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
    assert scores.per_type["ADJ"]["precision"] == 0.5 and scores.per_type["ADJ"]["recall"] == 1.0
    assert scores.confusions == [
        {"gold": "ADV", "predicted": "ADJ", "count": 1},
        {"gold": "PROPN", "predicted": "NOUN", "count": 1},
        {"gold": "VERB", "predicted": "NOUN", "count": 1},
    ]
    table = scores.table()
    assert "most frequent confusions" in table and "  VERB -> NOUN: 1" in table
    assert scores.to_json()["confusions"] == scores.confusions


def test_only_the_ten_most_frequent_confusions_are_kept():
    gold = [[f"T{i}" for i in range(12) for _ in range(i + 1)]]
    predicted = [["X"] * len(gold[0])]
    confusions = evaluate_tags(gold, predicted, "plain").confusions
    assert [c["gold"] for c in confusions] == [f"T{i}" for i in range(11, 1, -1)]
    assert [c["count"] for c in confusions] == list(range(12, 2, -1))


def test_span_tasks_have_no_tag_confusions():
    scores = evaluate_tags([["B-PER", "O"]], [["B-PER", "O"]], "BIO")
    assert scores.micro_f1 == 1.0 and scores.confusions == [] and list(scores.per_type) == ["PER"]
