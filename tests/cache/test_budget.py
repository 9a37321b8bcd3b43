"""Tests for ``embedcache.cache.budget``: the exact estimate, and both over-budget policies."""

from __future__ import annotations

import logging

import pytest
import torch

from embedcache.cache.budget import OverBudgetError, as_embedders, choose_placement, estimate
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings.charlm import CharLMEncoder
from tests.conftest import make_lm


def test_estimate_is_tokens_plus_padding_row_times_d_times_itemsize(
    small_corpus: list[TaggedSentence], encoder: CharLMEncoder, backward_encoder: CharLMEncoder
) -> None:
    n_tokens = sum(len(s) for s in small_corpus)
    assert n_tokens == 695
    assert estimate(small_corpus, encoder, torch.float32) == (695 + 1) * 16 * 4 == 44_544
    assert estimate(small_corpus, [encoder, backward_encoder], "bfloat16") == (695 + 1) * 32 * 2 == 44_544
    assert estimate(small_corpus, encoder, torch.float16) * 2 == estimate(
        small_corpus, encoder, torch.float32
    )


def test_within_budget_keeps_the_requested_placement() -> None:
    assert choose_placement("gpu", 1000, None) == "gpu"
    assert choose_placement("gpu", 1000, 1000) == "gpu"
    assert choose_placement("cpu", 1000, {"gpu": 1}) == "cpu"  # no budget for cpu: unlimited


def test_over_budget_error_names_the_numbers_and_the_ways_out() -> None:
    with pytest.raises(OverBudgetError) as error:
        choose_placement("gpu", 123_456, 100_000)
    message = str(error.value)
    assert "123,456 bytes" in message
    assert "'gpu': 100,000 bytes" in message
    assert "float16" in message and "on_over_budget='fallback'" in message


def test_fallback_takes_the_next_placement_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="embedcache.cache.budget"):
        assert choose_placement("gpu", 5000, 4000, "fallback") == "cpu"
    assert "over the 'gpu' budget of 4,000 bytes; using placement 'cpu'" in caplog.text


def test_fallback_follows_per_placement_budgets_down_to_disk() -> None:
    assert choose_placement("gpu", 5000, {"gpu": 10, "cpu": 4999}, "fallback") == "disk"
    assert choose_placement("cpu", 5000, {"gpu": 10_000, "cpu": 10}, "fallback") == "disk"  # never upwards


def test_fallback_with_no_placement_left_fails() -> None:
    with pytest.raises(OverBudgetError, match="'gpu': 1 bytes, 'cpu': 2 bytes, 'disk': 3 bytes"):
        choose_placement("gpu", 5000, {"gpu": 1, "cpu": 2, "disk": 3}, "fallback")


@pytest.mark.parametrize(
    ("budget", "policy", "message"),
    [(-1, "error", "non-negative int"), (1.5, "error", "non-negative int"), (10, "ask", "on_over_budget")],
)
def test_bad_budget_arguments(budget: object, policy: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_placement("gpu", 5, budget, policy)  # type: ignore[arg-type]


def test_embedders_must_follow_the_protocol(encoder: CharLMEncoder) -> None:
    assert as_embedders(encoder) == [encoder]
    assert as_embedders([encoder, encoder]) == [encoder, encoder]
    with pytest.raises(ValueError, match="at least one embedder"):
        as_embedders([])
    with pytest.raises(TypeError, match=r"embeddings\[1\] is a str, not a TokenEmbedder"):
        as_embedders([encoder, "glove"])  # type: ignore[list-item]


def test_fine_tuned_embedders_are_never_cached(encoder: CharLMEncoder) -> None:
    tuned = CharLMEncoder(make_lm(True, hidden_size=16), fine_tune=True)
    with pytest.raises(ValueError, match=r"embeddings\[1\] \(CharLMEncoder\) is fine-tuned"):
        as_embedders([encoder, tuned])
