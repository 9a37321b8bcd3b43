"""Runs one of the package's writers, optionally stopping it inside its atomic write to be SIGKILLed.

    python writer_worker.py KIND FOLDER VERSION [--stop-at created|writing|publishing --ready FILE]

``KIND`` is one of :data:`WRITERS`: each writes version ``VERSION`` of its output into ``FOLDER`` through the
package's own code (the ``embedcache predict`` command line, ``save_checkpoint``, ``SequenceTagger.save``,
``EmbeddingCache.build``, ``save_trained_lm``, ``train_word_vectors``, ``ensure_files``). With ``--stop-at``
the writer stops, touches ``FILE`` and sleeps until killed:

- ``created``: right after its temporary file or staging directory was created, before any data;
- ``writing``: in the middle of its data: an output stream after its first write reached the file, other
  writers when they open a second file under a temporary name (not ``save_checkpoint``, whose one file is
  written by ``torch.save`` in C++);
- ``publishing``: with everything written under the temporary name, before the rename that publishes it.

The test (``test_killed_writers.py``) imports :data:`WRITERS` to run the writers before and after the kill in
its own process.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.conftest

import torch

import embedcache.atomic as atomic
from tests.conftest import make_lm

if TYPE_CHECKING:
    from embedcache.models.tagger import SequenceTagger

STOP_POINTS = ("created", "writing", "publishing")


def predict(folder: Path, version: int) -> None:
    """``embedcache predict --output FOLDER/tags.conll`` over a two-line input that depends on ``version``."""
    from embedcache.cli import main

    model = folder.parent / "predict-model"
    if not model.exists():
        tiny_tagger(0).save(model)
    text = folder.parent / f"input-{version}.txt"
    text.write_text(f"Anna lives in Rome {version} .\nBob too .\n", encoding="utf-8")
    code = main(
        ["predict", "--model", str(model), str(text), "--output", str(folder / "tags.conll"), "--quiet"]
    )
    if code != 0:
        raise RuntimeError(f"embedcache predict exited with {code}")


def tiny_tagger(seed: int) -> SequenceTagger:
    import embedcache as ec

    torch.manual_seed(seed)
    return ec.SequenceTagger(
        ec.CharLMEmbeddings(make_lm(True, 8, seed=seed)), ["O", "X"], "pos", hidden_size=4
    )


def checkpoint(folder: Path, version: int) -> None:
    from embedcache.training.checkpoint import save_checkpoint

    save_checkpoint(folder, {"epochs_done": version, "weights": torch.full((4096,), float(version))})


def model(folder: Path, version: int) -> None:
    import embedcache as ec

    torch.manual_seed(version)
    ec.SequenceTagger(
        ec.CharLMEmbeddings(make_lm(True, 8, seed=version)), ["O", "X"], "pos", hidden_size=4
    ).save(folder / "model")


def cache(folder: Path, version: int) -> None:
    """A disk cache of a corpus that depends on ``version`` (so each version is a new fingerprint)."""
    from embedcache.cache import EmbeddingCache
    from embedcache.embeddings.charlm import CharLMEncoder

    sentences = [["Anna", "lives", "in", "Rome", str(version)], ["Bob", "too"]]
    encoder = CharLMEncoder(make_lm(True, 8, seed=3))
    EmbeddingCache.build(sentences, encoder, "disk", torch.float32, folder, progress=False)


def char_lm(folder: Path, version: int) -> None:
    """``save_trained_lm``: ``lm.safetensors``, ``.json``, ``.pt``, ``lm-training.json``, ``lm-resume.pt``."""
    from embedcache.training.char_lm import CharLMConfig, CharLMResult, save_trained_lm

    out = folder / "lm"
    result = CharLMResult(make_lm(True, 8, seed=version), out, version, 100 * version, 1.0, 4.0, 3.0)
    config = CharLMConfig(text_path="unused.txt", out_path=str(out), max_steps=version)
    save_trained_lm(result, config, {"step": torch.tensor(version)})


def word_vectors(folder: Path, version: int) -> None:
    from embedcache.embeddings.train_words import train_word_vectors

    text = folder.parent / f"words-{version}.txt"
    text.write_text(f"a b c {version}\nb c d {version}\n" * 20, encoding="utf-8")
    train_word_vectors(text, folder / "vectors.bin", vector_size=4, min_count=1, epochs=1, seed=version)


def download(folder: Path, version: int) -> None:
    """``ensure_files`` fetching a ``file://`` URL (it fetches only missing files: there is no old one)."""
    from embedcache.data.datasets import ensure_files

    source = folder.parent / f"download-{version}.conll"
    source.write_text(f"Anna\tB-PER\n{version}\tO\n\n" * 1000, encoding="utf-8")
    ensure_files(folder, {"train.conll": source.as_uri()}, download=True)


WRITERS: dict[str, Callable[[Path, int], None]] = {
    "predict": predict,
    "checkpoint": checkpoint,
    "model": model,
    "cache": cache,
    "char_lm": char_lm,
    "word_vectors": word_vectors,
    "download": download,
}
REPLACES_AN_OLD_OUTPUT = {"predict", "checkpoint", "model", "char_lm", "word_vectors"}  # else: a new one


def stop_at(point: str, ready: Path) -> None:
    """Make the atomic writer of this process stop at ``point``: touch ``ready``, then sleep until killed."""

    def stop() -> None:
        ready.touch()
        while True:
            time.sleep(60)

    def after(function: Callable[..., Any]) -> Callable[..., Any]:
        def stopping(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            stop()
            return result

        return stopping

    if point == "created":
        atomic.tempfile = _StoppingTempfile(stop)  # type: ignore[assignment]
    elif point == "writing":
        stream_write = atomic._ErrorsNameTheTarget.write
        atomic._ErrorsNameTheTarget.write = after(_flushed(stream_write))  # type: ignore[method-assign]
        sys.addaudithook(_second_open_of_a_temporary(stop))
    else:
        atomic._rename_into_place = _stop_before(stop)  # type: ignore[assignment]
        atomic._exchange = _stop_before(stop)  # type: ignore[assignment]


def _second_open_of_a_temporary(stop: Callable[[], None]) -> Callable[[str, tuple[Any, ...]], None]:
    """An audit hook that stops at the second file opened under a temporary name: the first is written (or,
    for a single file, created) and the writer goes on to its data. Opens by C++ and Rust code (``torch.save``
    of a path, safetensors) raise no audit event."""
    opened = []

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(args[0], (str, Path)) and ".tmp-" in str(args[0]):
            opened.append(args[0])
            if len(opened) == 2:
                stop()

    return hook


def _stop_before(stop: Callable[[], None]) -> Callable[..., None]:
    def stopping(*args: Any, **kwargs: Any) -> None:
        stop()

    return stopping


def _flushed(write: Callable[..., int]) -> Callable[..., int]:
    def write_then_sync(self: Any, data: Any) -> int:
        written = write(self, data)
        self.flush()
        return written

    return write_then_sync


class _StoppingTempfile:
    """``tempfile`` whose ``mkstemp``/``mkdtemp`` stop once they have created the temporary."""

    def __init__(self, stop: Callable[[], None]) -> None:
        import tempfile

        self.real, self.stop = tempfile, stop

    def mkstemp(self, *args: Any, **kwargs: Any) -> tuple[int, str]:
        created = self.real.mkstemp(*args, **kwargs)
        self.stop()
        return created

    def mkdtemp(self, *args: Any, **kwargs: Any) -> str:
        created = self.real.mkdtemp(*args, **kwargs)
        self.stop()
        return created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(WRITERS))
    parser.add_argument("folder", type=Path)
    parser.add_argument("version", type=int)
    parser.add_argument("--stop-at", choices=STOP_POINTS)
    parser.add_argument("--ready", type=Path)
    args = parser.parse_args()
    if args.stop_at:
        stop_at(args.stop_at, args.ready)
    WRITERS[args.kind](args.folder, args.version)


if __name__ == "__main__":
    main()
