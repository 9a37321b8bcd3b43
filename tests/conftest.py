"""Shared fixtures: the data directory and small random-initialised character LMs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from flair.data import Dictionary
from flair.models import LanguageModel

from embedcache.atomic import process_running

REPO_ROOT = Path(__file__).resolve().parent.parent
# Test models are tiny: intra-op threads only add synchronisation, and on a shared 2-core machine they
# spin against other processes (a 20x slowdown seen here). One thread keeps the suite fast and steady.
torch.set_num_threads(1)
# The command line's default backend is auto (ONNX Runtime int8 on a CPU where it is installed); the tests
# compare its output with torch's, so they run torch unless a test asks for another backend. Set here, in the
# environment, so that the commands the tests start as processes see it too.
os.environ["EMBEDCACHE_BACKEND"] = "torch"
# A character set that covers most of WNUT-17; everything else maps to <unk>, as in real LMs.
CHARACTERS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,;:!?'\"-_/\\()[]{}@#$%&*+=<>|~^`"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$EMBEDCACHE_DATA``, defaulting to ``../shared/data`` beside the repository."""
    path = Path(os.environ.get("EMBEDCACHE_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "wnut17" / "train.conll").is_file():
        pytest.fail(f"test data not found in {path}; set EMBEDCACHE_DATA to the shared data directory")
    return path


def make_dictionary(characters: str = CHARACTERS) -> Dictionary:
    dictionary = Dictionary()  # <unk> at id 0, as in Flair's LMs
    for character in characters:
        dictionary.add_item(character)
    return dictionary


def make_lm(is_forward: bool, hidden_size: int = 256, seed: int = 0, **kwargs: object) -> LanguageModel:
    """A random-initialised Flair LM in eval mode (dropout off), reproducible from ``seed``."""
    torch.manual_seed(seed)
    return LanguageModel(make_dictionary(), is_forward, hidden_size, 1, 32, **kwargs).eval()


@pytest.fixture(scope="session")
def forward_lm() -> LanguageModel:
    return make_lm(True, seed=1)


@pytest.fixture(scope="session")
def backward_lm() -> LanguageModel:
    return make_lm(False, seed=2)


@pytest.fixture(scope="session")
def tiny_lm() -> LanguageModel:
    """Hidden size 16: for tests about behaviour, not numbers."""
    return make_lm(True, hidden_size=16, seed=3)


@pytest.fixture
def outputs_on_a_full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output files (atomic files and spools) as on a full disk: every write fails with ENOSPC.

    Their temporary files are created as usual, then their descriptor is pointed at ``/dev/full``.
    """
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    real_mkstemp = tempfile.mkstemp

    def mkstemp_on_a_full_disk(*args: object, **kwargs: object) -> tuple[int, str]:
        descriptor, path = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        full = os.open("/dev/full", os.O_RDWR)
        os.dup2(full, descriptor)
        os.close(full)
        return descriptor, path

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_on_a_full_disk)


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended (a pid reused in the meantime would make the test fail)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    assert not process_running(process.pid)
    return process.pid
