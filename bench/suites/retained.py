"""Suite ``retained``: the bytes that kept token embeddings hold on to, per storage mode, embedcache against
Flair 0.15.1.

Both libraries embed WNUT-17 train batch by batch, as a trainer's first epoch does, with random char LMs of
the recipe's size (:func:`bench.lms.write_char_lms`: the bytes depend on the sizes, not on the weights), and
keep what each storage mode keeps: embedcache's ``CharLMEncoder.token_tensors`` under ``storage_mode(mode)``;
Flair's ``embed`` followed by ``store_embeddings(batch, mode)``. :func:`embedcache.accounting.retained_nbytes`
counts the distinct storages behind the kept vectors (through :mod:`embedcache.profiling`). Bytes do not
depend on timing, so each mode runs once, without repeats; the pass's time and peak memory are printed beside
the bytes for orientation.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from flair.data import Sentence
from flair.embeddings import FlairEmbeddings, StackedEmbeddings

import embedcache as ec
from bench.harness import BenchConfig, Suite
from bench.lms import DIRECTIONS, CharLMFiles, write_char_lms
from bench.specs import BATCH_SIZE, WNUT17
from bench.suites.retained_results import LIBRARIES, RetainedPlan, RetainedRun, render
from embedcache.profiling import EmbeddingProfile, profile_charlm_storage, profile_flair_storage
from embedcache.settings import STORAGE_MODES

log = logging.getLogger(__name__)

QUICK_SENTENCES = 100


def plan(config: BenchConfig) -> RetainedPlan:
    return RetainedPlan(QUICK_SENTENCES if config.quick else None, config.quick)


def measure(plan: RetainedPlan, config: BenchConfig) -> RetainedRun:
    with tempfile.TemporaryDirectory(prefix="bench-retained-") as folder:
        return profiles(plan, config, write_char_lms(Path(folder), "random"))


def profiles(plan: RetainedPlan, config: BenchConfig, lms: CharLMFiles) -> RetainedRun:
    """Embed the corpus once per library and mode."""
    train = ec.datasets.WNUT17(config.data_dir / WNUT17).train[: plan.sentences]
    embedders = [ec.CharLMEmbeddings(lms.embedcache_path(d)).to(config.device) for d in DIRECTIONS]
    flair_embeddings = StackedEmbeddings([FlairEmbeddings(lms.flair_path(d)) for d in DIRECTIONS])
    measured: dict[str, dict[str, EmbeddingProfile]] = {library: {} for library in LIBRARIES}
    for mode in STORAGE_MODES:  # the libraries alternate, so load from other processes falls on both
        measured["embedcache"][mode] = profile_charlm_storage(embedders, train, mode, BATCH_SIZE)
        sentences = [Sentence(s.tokens) for s in train]
        measured["flair"][mode] = profile_flair_storage(
            flair_embeddings, sentences, mode, BATCH_SIZE, config.device
        )
        del sentences  # frees what Flair kept before the next mode
        kept = [f"{measured[library][mode].retained_bytes:,}" for library in LIBRARIES]
        log.info("storage %s: embedcache %s, Flair %s bytes", mode, *kept)
    dim = sum(embedder.embedding_length for embedder in embedders)
    return RetainedRun(sum(len(s) for s in train), dim, measured)


SUITE = Suite("retained", ("random",), plan, measure, render)
