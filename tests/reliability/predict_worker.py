"""One predicting process for the concurrency tests: a saved model, a shared disk cache, tags out.

:func:`run` loads the tagger from a model directory, embeds a CoNLL file through the persistent disk cache
under a cache root (building it, or waiting for another process's build and reusing it), decodes every
sentence from the cache and writes ``{"tags": [...], "reused": bool}`` as JSON. It is the target of
``multiprocessing`` processes forked from a server that imported it (torch and flair) once. With ``start``,
it waits for that file before touching the cache; with ``gate``, the build embeds one batch and then waits
for that file before each further batch, so a test holds a build half-way for as long as it likes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from embedcache.cache import EmbeddingCache
from embedcache.data.conll import read_column_file
from embedcache.inference.tagger import SequenceTagger
from tests.cache.cache_worker import GatedEmbedder, wait_for_file

CHARS_PER_BATCH = 1500


def run(
    model: Path,
    cache_root: Path,
    corpus: Path,
    out: Path,
    log: Path,
    start: Path | None = None,
    gate: Path | None = None,
) -> None:
    logging.basicConfig(
        level=logging.INFO, handlers=[logging.FileHandler(log)], format="%(name)s: %(message)s", force=True
    )
    torch.set_num_threads(1)
    tagger = SequenceTagger.load(model).eval()
    sentences = list(read_column_file(corpus))
    embedders = list(tagger.embeddings.embedders)  # a loaded model holds the tensor-level CharLMEncoders
    if gate is not None:
        embedders[0] = GatedEmbedder(embedders[0], gate)
    if start is not None:
        wait_for_file(start)
    cache = EmbeddingCache.build(
        sentences,
        embedders,
        placement="disk",
        dtype=torch.float32,
        path=cache_root,
        chars_per_batch=CHARS_PER_BATCH,
        progress=False,
    )
    tags = []
    with torch.no_grad():
        for first in range(0, len(cache), 16):
            ids = list(range(first, min(first + 16, len(cache))))
            tag_ids, _ = tagger.decode(*cache.batch(ids))
            tags += [
                tagger.tags.decode(tag_ids[row, : len(sentences[i])].tolist()) for row, i in enumerate(ids)
            ]
    out.write_text(json.dumps({"tags": tags, "reused": cache.reused}), encoding="utf-8")
