"""Suite ``cache``: assembling one epoch's mini-batches from the embedding cache against Flair's ``cpu`` path.

Issue #3 asks how long it takes to get every padded mini-batch of one epoch of WNUT-17 train once the token
vectors are stored: from an :class:`~embedcache.EmbeddingCache` in each placement (``gpu``: the compute
device, ``cpu``, ``disk``: a memory-mapped file, warm in the page cache after the warm-up round) and dtype,
against Flair 0.15.1 with ``embeddings_storage_mode="cpu"``, whose ``SequenceTagger`` builds the padded tensor
from every token's stored embedding (``_make_padded_tensor_for_batch``). Every case gets the same shuffled
batches of 32 sentences; the vectors come from a random forward char LM of the recipe's size
(:func:`bench.lms.write_char_lms`: assembling batches depends on the store's shape, not on its values).
Issue #16 adds what verifying a persisted store's block checksums costs (once per store opened).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from flair.data import Dictionary, Sentence
from flair.embeddings import FlairEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger
from flair.training_utils import store_embeddings

from bench.harness import BenchConfig, Case, Suite, time_cases
from bench.lms import write_char_lms
from bench.specs import BATCH_SIZE, WNUT17
from bench.suites.cache_results import PLACEMENTS, CachePlan, CacheRun, case_name, render, verify_case_name
from embedcache import CharLMEmbeddings, EmbeddingCache
from embedcache.accounting import retained_nbytes, token_embeddings
from embedcache.cache.integrity import BlockVerifier
from embedcache.cache.persist import open_cache
from embedcache.data.datasets import WNUT17 as WNUT17Corpus
from embedcache.training.batches import shuffled_batches

log = logging.getLogger(__name__)

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SHUFFLE_SEED = 0
QUICK_SENTENCES = 100


def flair_sentences_with_cpu_storage(
    tokens: Sequence[list[str]], embeddings: FlairEmbeddings
) -> list[Sentence]:
    """Flair sentences embedded batch by batch and kept as Flair's trainer keeps them in ``cpu`` storage."""
    sentences = [Sentence(t) for t in tokens]
    for start in range(0, len(sentences), BATCH_SIZE):
        batch = sentences[start : start + BATCH_SIZE]
        embeddings.embed(batch)
        store_embeddings(batch, "cpu")
    return sentences


def build_caches(
    sentences: Sequence[object], embeddings: CharLMEmbeddings, root: str, device: torch.device
) -> dict[str, EmbeddingCache]:
    """A cache per placement and dtype; the LM runs once per dtype, the other placements reopen its files."""
    caches = {}
    for dtype in DTYPES:
        for placement in PLACEMENTS:
            caches[case_name(placement, dtype)] = EmbeddingCache.build(
                sentences, embeddings, placement, dtype, root, device=device, progress=False
            )
    return caches


def check_same_batch(
    flair_tagger: FlairSequenceTagger, flair_sentences: list[Sentence], cache: EmbeddingCache
) -> None:
    """Refuse to time a store whose float32 batch differs from Flair's padded tensor of the same batch."""
    ids = list(range(min(BATCH_SIZE, len(flair_sentences))))
    flair_lengths, flair_padded = flair_tagger._make_padded_tensor_for_batch(
        [flair_sentences[i] for i in ids]
    )
    padded, lengths = cache.batch(ids)  # on the compute device, as Flair's padded tensor (lengths may not be)
    same = torch.equal(lengths.cpu(), flair_lengths.cpu()) and torch.allclose(
        padded.cpu(), flair_padded.cpu(), rtol=1e-5, atol=1e-5
    )
    if not same:
        raise RuntimeError("cache suite: the float32 cpu store's batch differs from Flair's; not timing it")


class FreshVerifier:
    """Verifying every block checksum of one persisted store, from a fresh open each round (``prepare``):
    what opening a ``cpu`` or ``gpu`` store adds, and what a ``disk`` store's first epoch spreads over its
    batches."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.directory = cache.directory
        self.verifier: BlockVerifier | None = None

    def prepare(self, _: int) -> None:
        self.verifier = open_cache(self.directory).verifier

    def run(self, _: int) -> None:
        self.verifier.verify_all()  # type: ignore[union-attr]


def verification_cases(caches: dict[str, EmbeddingCache]) -> list[Case]:
    """One case per dtype, on the store persisted for it (the placements share one directory)."""
    cases = []
    for dtype in DTYPES:
        fresh = FreshVerifier(caches[case_name("disk", dtype)])
        cases.append(Case(verify_case_name(dtype), fresh.run, fresh.prepare))
    return cases


def plan(config: BenchConfig) -> CachePlan:
    return CachePlan(QUICK_SENTENCES if config.quick else None, config.quick)


def measure(plan: CachePlan, config: BenchConfig) -> CacheRun:
    train = WNUT17Corpus(config.data_dir / WNUT17).train[: plan.sentences]
    batches = shuffled_batches(len(train), BATCH_SIZE, torch.Generator().manual_seed(SHUFFLE_SEED))
    with torch.no_grad(), tempfile.TemporaryDirectory(prefix="bench-cache-") as root:
        lms = write_char_lms(Path(root) / "lms", "random")
        embeddings = CharLMEmbeddings(lms.embedcache_path("forward"))
        flair_embeddings = FlairEmbeddings(lms.flair_path("forward"))
        tags = Dictionary(add_unk=False)
        tags.add_item("O")  # the tagger is only asked for its padded batches; its tags do not matter
        flair_tagger = FlairSequenceTagger(flair_embeddings, tags, "ner", hidden_size=8, use_crf=False)
        started = time.perf_counter()
        flair_sentences = flair_sentences_with_cpu_storage([s.tokens for s in train], flair_embeddings)
        caches = build_caches(train, embeddings, root, config.device)
        log.info(
            "embedded %d sentences for Flair and the stores in %.0f s",
            len(train),
            time.perf_counter() - started,
        )
        check_same_batch(flair_tagger, flair_sentences, caches[case_name("cpu", torch.float32)])

        def flair_batch(ids: list[int]) -> object:
            return flair_tagger._make_padded_tensor_for_batch([flair_sentences[i] for i in ids])

        cases = [Case("flair_cpu", flair_batch)]
        cases += [Case(name, cache.batch) for name, cache in caches.items()]
        timings = time_cases(
            cases, batches, warmup=config.warmup, repeats=config.repeats, device=config.device
        )
        whole_store = [0]  # one item: each case verifies its whole store
        timings |= time_cases(
            verification_cases(caches), whole_store, warmup=config.warmup, repeats=config.repeats,
            device=config.device,
        )  # fmt: skip
        flair_nbytes = retained_nbytes(token_embeddings(flair_sentences))
        cache_nbytes = {name: cache.nbytes for name, cache in caches.items()}
        del caches  # closes the memory maps before the directory goes
    n_tokens = sum(len(s) for s in train)
    return CacheRun(len(train), n_tokens, len(batches), timings, cache_nbytes, flair_nbytes)


SUITE = Suite("cache", ("random",), plan, measure, render)
