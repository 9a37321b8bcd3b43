"""Measuring storage modes: exact retained bytes batch by batch, and per-step peak memory."""

from __future__ import annotations

import sys

import pytest
import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings

from embedcache import CharLMEmbeddings, TaggedSentence
from embedcache.accounting import retained_nbytes, token_embeddings
from embedcache.profiling import PeakMemoryTracker, profile_charlm_storage, profile_flair_storage
from tests.conftest import make_lm

TEXTS = ["I love Berlin .", "George Washington went to Washington", "ok", "The cat sat on the mat ."]
BATCH_SIZE = 3  # two batches: 3 sentences, then 1


@pytest.fixture(scope="module")
def sentences() -> list[TaggedSentence]:
    return [TaggedSentence(text.split()) for text in TEXTS]


@pytest.fixture(scope="module")
def embedders() -> list[CharLMEmbeddings]:
    return [CharLMEmbeddings(make_lm(True, 16, seed=1)), CharLMEmbeddings(make_lm(False, 24, seed=2))]


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_embedcache_retains_exactly_n_tokens_by_d_by_4_after_every_batch(embedders, sentences, mode):
    profile = profile_charlm_storage(embedders, sentences, mode, BATCH_SIZE)
    dim = 16 + 24
    tokens_after_batch = [sum(len(s) for s in sentences[:3]), sum(len(s) for s in sentences)]
    assert profile.retained_bytes_after_batch == [n * dim * 4 for n in tokens_after_batch]
    assert profile.retained_bytes == tokens_after_batch[-1] * dim * 4
    assert profile.seconds > 0


@pytest.mark.parametrize("mode", ["cpu", "gpu"])
def test_a_flair_stack_is_profiled_through_the_same_extractor(embedders, sentences, mode):
    flair_stack = StackedEmbeddings([FlairEmbeddings(e.encoder.lm) for e in embedders])
    profile = profile_charlm_storage(flair_stack, sentences, mode, BATCH_SIZE)
    assert profile.retained_bytes == sum(len(s) for s in sentences) * (16 + 24) * 4


def test_none_mode_retains_nothing_in_either_library(embedders, sentences):
    assert profile_charlm_storage(embedders, sentences, "none", BATCH_SIZE).retained_bytes_after_batch == [
        0,
        0,
    ]
    flair_sentences = [Sentence(s.tokens) for s in sentences]
    lm = embedders[0].encoder.lm
    profile = profile_flair_storage(
        FlairEmbeddings(lm), flair_sentences, "none", BATCH_SIZE, torch.device("cpu")
    )
    assert profile.retained_bytes_after_batch == [0, 0]
    assert list(token_embeddings(flair_sentences)) == []


def test_flair_gpu_mode_retains_whole_lm_states_and_the_running_sum_is_exact(embedders, sentences):
    flair_sentences = [Sentence(s.tokens) for s in sentences]
    lm = embedders[0].encoder.lm
    profile = profile_flair_storage(
        FlairEmbeddings(lm), flair_sentences, "gpu", BATCH_SIZE, torch.device("cpu")
    )
    n_tokens = sum(len(s) for s in sentences)
    # the sum over batches equals the count over every kept tensor at once: batches share no storage
    assert profile.retained_bytes == retained_nbytes(token_embeddings(flair_sentences))
    assert profile.retained_bytes > n_tokens * lm.hidden_size * 4  # views of (chars, batch, hidden) states


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="resets the peak through /proc/self/clear_refs"
)
def test_peak_memory_tracker_sees_what_the_step_allocates():
    with PeakMemoryTracker(torch.device("cpu")) as tracker:
        block = torch.ones(16 * 2**20)  # 64 MiB, every page written
        del block
    assert tracker.peaks is not None and tracker.peaks.rss_is_per_step
    growth = tracker.peaks.rss_growth_bytes
    # Linux counts RSS per thread or per CPU and folds the counts into the process total in batches, so a
    # reading may lag by some pages (a CI run saw 63.875 MiB here): allow a few MiB, never the block
    assert growth is not None and 60 * 2**20 <= growth < 96 * 2**20
    assert tracker.peaks.peak_device_bytes is None  # no device memory off CUDA
