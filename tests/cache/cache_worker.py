"""Builds or reuses a persisted cache in a process of its own, for the cross-process tests.

As a script (``python cache_worker.py DATA_DIR ROOT N_SENTENCES OUT [--start FILE] [--gate FILE]``) or as
the target of a ``multiprocessing`` process (:func:`run`), it embeds the first ``N_SENTENCES`` of WNUT-17
train with the same tiny forward LM as the ``encoder`` fixture, so its fingerprint equals the test
process's, and saves every sentence's padded vectors, the lengths and whether the cache was reused to
``OUT`` (``torch.save``). With ``start``, it waits until that file exists before building, so a test can
order the builds of several workers. With ``gate``, the embedder embeds one batch, then waits until that
file exists before each further batch: the test decides when (and whether) the build may finish.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.conftest

from embedcache.cache import EmbeddingCache
from embedcache.data.conll import read_column_file
from embedcache.embeddings.base import TokenVectors, WhitespaceAfter
from embedcache.embeddings.charlm import CharLMEncoder
from tests.conftest import make_lm

CHARS_PER_BATCH = 2000


def wait_for_file(path: Path) -> None:
    while not path.exists():
        time.sleep(0.02)


class CountingEmbedder:
    """Delegates to ``inner`` and counts the batches it embeds (same fingerprint)."""

    def __init__(self, inner: CharLMEncoder) -> None:
        self.inner = inner
        self.batches = 0

    @property
    def embedding_length(self) -> int:
        return self.inner.embedding_length

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def embed_batch(
        self, sentences: list[list[str]], whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        self.batches += 1
        return self.inner.embed_batch(sentences, whitespace_after)


class GatedEmbedder(CountingEmbedder):
    """A :class:`CountingEmbedder` that, before every batch after the first, waits for ``gate`` to exist."""

    def __init__(self, inner: CharLMEncoder, gate: Path) -> None:
        super().__init__(inner)
        self.gate = gate

    def embed_batch(
        self, sentences: list[list[str]], whitespace_after: WhitespaceAfter | None = None
    ) -> TokenVectors:
        if self.batches:
            wait_for_file(self.gate)
        return super().embed_batch(sentences, whitespace_after)


def run(
    data_dir: Path,
    root: Path,
    n_sentences: int,
    out: Path,
    log: Path | None = None,
    start: Path | None = None,
    gate: Path | None = None,
) -> None:
    """Build (or reuse) the fp32 disk cache of the first ``n_sentences`` under ``root``; save the result."""
    handler = logging.FileHandler(log) if log else logging.StreamHandler(sys.stderr)
    logging.basicConfig(level=logging.INFO, handlers=[handler], format="%(name)s: %(message)s", force=True)
    torch.set_num_threads(1)
    encoder = CharLMEncoder(make_lm(True, hidden_size=16, seed=3))
    embedder = GatedEmbedder(encoder, gate) if gate else encoder
    sentences = list(read_column_file(data_dir / "wnut17" / "train.conll"))[:n_sentences]
    if start:
        wait_for_file(start)
    cache = EmbeddingCache.build(
        sentences,
        embedder,
        placement="disk",
        dtype=torch.float32,
        path=root,
        chars_per_batch=CHARS_PER_BATCH,
        progress=False,
    )
    padded, lengths = cache.batch(range(len(cache)))
    torch.save({"padded": padded, "lengths": lengths, "reused": cache.reused}, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("root", type=Path)
    parser.add_argument("n_sentences", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--start", type=Path)
    parser.add_argument("--gate", type=Path)
    args = parser.parse_args()
    run(args.data_dir, args.root, args.n_sentences, args.out, start=args.start, gate=args.gate)


if __name__ == "__main__":
    main()
