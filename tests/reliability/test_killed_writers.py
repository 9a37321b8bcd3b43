"""Every writer of the package, SIGKILLed inside its atomic write, leaves its old output intact, and the next
writer into that folder leaves no temporary behind; on a full disk, a writer fails without leaving one.

The writers run in ``writer_worker.py``; a killed one stops at a point of its write (see its docstring) and
is killed there, so every kill lands.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import embedcache.atomic as atomic
from tests.reliability.writer_worker import REPLACES_AN_OLD_OUTPUT, STOP_POINTS, WRITERS

WORKER = Path(__file__).with_name("writer_worker.py")
TEMPORARY = re.compile(r"\..+\.(?:tmp|old)-\d+(?:-.*)?")
KILLS = [
    (kind, point) for kind in WRITERS for point in STOP_POINTS if (kind, point) != ("checkpoint", "writing")
]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMPORARY.fullmatch(p.name))


def outputs(folder: Path) -> dict[str, bytes]:
    """Every published file under ``folder`` (not temporaries, not the cache's lock files) and its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        hidden = any(TEMPORARY.fullmatch(part) or part.endswith(".lock") for part in relative.parts)
        if path.is_file() and not hidden:
            found[str(relative)] = path.read_bytes()
    return found


def kill_while_writing(kind: str, point: str, folder: Path, version: int) -> None:
    """Start the writer, wait until it stops at ``point``, SIGKILL it."""
    ready = folder.parent / f"{kind}-{point}.ready"
    command = [sys.executable, str(WORKER), kind, str(folder), str(version), "--stop-at", point]
    worker = subprocess.Popen(
        [*command, "--ready", str(ready)], env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not ready.exists():
        if worker.poll() is not None:
            error = worker.communicate()[1]
            pytest.fail(f"{kind} ended (exit code {worker.returncode}) before {point}: {error}")
        assert time.monotonic() < deadline, f"{kind} did not reach {point}"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=60) == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "point"), KILLS, ids=[f"{kind}-{point}" for kind, point in KILLS])
def test_a_killed_writer_leaves_the_old_output_and_the_next_one_no_temporary(
    tmp_path: Path, kind: str, point: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    writer = WRITERS[kind]
    if kind in REPLACES_AN_OLD_OUTPUT:
        writer(folder, 1)
        assert outputs(folder)
    before = outputs(folder)

    kill_while_writing(kind, point, folder, 2)
    assert temporaries(folder), "the kill landed inside the write: its temporary is there"
    assert outputs(folder) == before  # the old output intact, or still none

    writer(folder, 3)
    assert temporaries(folder) == []
    assert outputs(folder) != before


def full_disk_after_some_data(function: Callable[..., object]) -> Callable[..., object]:
    """``function`` writing into a temporary fails with ENOSPC, as on a full disk, once it has begun."""

    def failing(*args: object, **kwargs: object) -> object:
        if not any(".tmp-" in str(arg) for arg in args):
            return function(*args, **kwargs)
        for arg in args:
            if isinstance(arg, (str, Path)) and ".tmp-" in str(arg):
                with open(arg, "wb") as file:  # not Path.open, which may be this very function
                    file.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return failing


def on_a_full_disk(monkeypatch: pytest.MonkeyPatch, full: int) -> None:
    """Make the writers' data writes fail with ENOSPC: their streams (pointed at ``full``, ``/dev/full``),
    and the functions that write into a temporary (safetensors, ``torch.save``, ``np.save``, gensim, the
    download).
    """
    import gensim.models.keyedvectors
    import numpy as np
    import safetensors.torch
    import torch

    real_stream = atomic.named_text_stream

    def stream_on_a_full_disk(descriptor: int, target: Path, consequence: str) -> object:
        os.dup2(full, descriptor)
        return real_stream(descriptor, target, consequence)

    monkeypatch.setattr(atomic, "named_text_stream", stream_on_a_full_disk)
    import embedcache.embeddings.language_model as language_model
    import embedcache.models.serialization as serialization

    for module, name in [
        (safetensors.torch, "save_file"), (serialization, "save_file"), (language_model, "save_file"),
        (torch, "save"), (np, "save"), (gensim.models.keyedvectors.KeyedVectors, "save_word2vec_format"),
        (Path, "open"),
    ]:  # fmt: skip
        monkeypatch.setattr(module, name, full_disk_after_some_data(getattr(module, name)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_writer_on_a_full_disk_leaves_the_old_output_and_no_temporary(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    folder = tmp_path / "out"
    folder.mkdir()
    writer = WRITERS[kind]
    if kind in REPLACES_AN_OLD_OUTPUT:
        writer(folder, 1)
    before = outputs(folder)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        with monkeypatch.context() as patches:
            on_a_full_disk(patches, full)
            with pytest.raises((OSError, RuntimeError)) as raised:
                writer(folder, 2)
    finally:
        os.close(full)
    assert "No space left on device" in str(raised.value) + capfd.readouterr().err  # predict: in its message
    assert temporaries(folder) == []
    assert outputs(folder) == before
