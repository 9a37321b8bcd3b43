"""Fixtures for the cache tests: WNUT-17 slices and tiny char-LM encoders (hidden size 16)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from flair.models import LanguageModel

from embedcache.data.conll import read_column_file
from embedcache.data.sentence import TaggedSentence
from embedcache.embeddings.charlm import CharLMEncoder
from tests.conftest import make_lm


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run the cache tests (module-scoped fixtures included) on one intra-op thread, then restore.

    On a 2-core machine shared with other jobs, the LSTM's OpenMP barriers make a tiny LM up to 100x
    slower with 2 threads than with 1; the cache's results do not depend on the thread count.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def wnut_train(data_dir: Path) -> list[TaggedSentence]:
    """All 3,394 sentences of the WNUT-17 training split."""
    return list(read_column_file(data_dir / "wnut17" / "train.conll"))


@pytest.fixture(scope="session")
def small_corpus(wnut_train: list[TaggedSentence]) -> list[TaggedSentence]:
    """40 sentences, 695 tokens."""
    return wnut_train[:40]


@pytest.fixture(scope="session")
def encoder(tiny_lm: LanguageModel) -> CharLMEncoder:
    """Forward LM, D = 16 (the worker script of the cross-process tests builds the same one)."""
    return CharLMEncoder(tiny_lm)


@pytest.fixture(scope="session")
def backward_encoder() -> CharLMEncoder:
    """Backward LM, D = 16."""
    return CharLMEncoder(make_lm(False, hidden_size=16, seed=4))


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every disk reservation fails with ENOSPC, as on a full filesystem."""

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
