"""Suite ``embed``: contextual string embeddings from a Flair char LM, embedcache against Flair 0.15.1.

Issue #2 asks for two numbers on WNUT-17 train:

1. the **extraction stage** (LM hidden states → per-token tensors): Flair walks every token in Python and
   indexes ``states[offset, i, :]``; embedcache computes every token's row of a batch arithmetically and takes
   them with one ``tensor_split`` (views, storage ``none``) or one ``index_select`` (an owning copy, storage
   ``gpu``). All cases read the same precomputed states, so the LM is out of the picture;
2. the **whole embed call**, ``FlairEmbeddings.embed`` against ``CharLMEmbeddings.embed``, with the LM forward
   alone as the floor that no extraction can beat.

Before timing, one batch is checked: every case must produce Flair's vectors, or the suite stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Literal

import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings
from flair.models import LanguageModel

from bench.flair_reference import flair_token_loop
from bench.harness import BenchConfig, Case, Suite, time_cases
from bench.inputs import character_dictionary, load_wnut17_train, random_char_lm
from bench.specs import BATCH_SIZE
from bench.suites.embed_results import EmbedPlan, EmbedRun, Slice, Workload, WorkloadResult, render
from embedcache import CharLMEmbeddings, CharLMEncoder, storage_mode
from embedcache.embeddings import positions
from embedcache.embeddings.gather import gather_rows, row_views

log = logging.getLogger(__name__)


FULL = EmbedPlan((Workload(512, None, 640), Workload(2048, 320, 64)), quick=False)
QUICK = EmbedPlan((Workload(256, 320, 320),), quick=True)


@dataclass(frozen=True)
class Batch:
    """One mini-batch in the forms the cases take, built before any clock starts."""

    tokens: list[list[str]]
    sentences: list[Sentence]  # shared by all cases; embeddings cleared between them
    lm_strings: list[str]  # the LM input with its markers, for the floor


@dataclass(frozen=True)
class LocatedBatch:
    """A batch with its LM states computed once, read by every extraction case."""

    batch: Batch
    states: torch.Tensor  # (chars, batch, hidden)
    rows: torch.Tensor  # (n_tokens,) rows of states viewed as (chars * batch, hidden)


class ReplayEncoder(CharLMEncoder):
    """A ``CharLMEncoder`` whose LM pass returns states given beforehand.

    Its ``locate_tokens`` then costs exactly embedcache's bookkeeping around the LM (checking the tokens,
    building the texts, computing every token's row): the part of extraction that Flair does inside its loop.
    """

    def __init__(self, lm: LanguageModel) -> None:
        super().__init__(lm)
        self.next_states: torch.Tensor | None = None

    def hidden_states(self, strings: Sequence[str]) -> torch.Tensor:
        if self.next_states is None:
            raise RuntimeError("ReplayEncoder.hidden_states: set next_states before locate_tokens")
        return self.next_states


def make_batches(corpus: Sequence[list[str]], encoder: CharLMEncoder) -> list[Batch]:
    batches = []
    for start in range(0, len(corpus), BATCH_SIZE):
        tokens = list(corpus[start : start + BATCH_SIZE])
        texts = [positions.sentence_text(t, [1] * len(t), encoder.options.tokenized_lm) for t in tokens]
        lm_strings = positions.lm_input_strings(texts, encoder.options)
        batches.append(Batch(tokens, [Sentence(t) for t in tokens], lm_strings))
    return batches


def slice_of(batches: Sequence[Batch]) -> Slice:
    return Slice(
        sentences=sum(len(b.tokens) for b in batches),
        tokens=sum(len(t) for b in batches for t in b.tokens),
        batches=len(batches),
    )


def locate(batches: Sequence[Batch], encoder: CharLMEncoder) -> list[LocatedBatch]:
    located = []
    for batch in batches:
        states, rows, _ = encoder.locate_tokens(batch.tokens)
        if states is None:
            raise ValueError("a mini-batch without tokens; the corpus reader should never yield one")
        located.append(LocatedBatch(batch, states, rows))
    return located


def clear_embeddings(sentences: Sequence[Sentence]) -> None:
    for sentence in sentences:
        sentence.clear_embeddings()


def token_vectors(sentences: Sequence[Sentence], name: str) -> torch.Tensor:
    """``(n_tokens, D)``: the ``name`` embedding of every token, stacked, to compare cases."""
    return torch.stack([token.get_embedding([name]) for sentence in sentences for token in sentence])


def set_token_embeddings(sentences: Sequence[Sentence], name: str, vectors: Sequence[torch.Tensor]) -> None:
    """embedcache's per-token step, as in ``CharLMEmbeddings._add_embeddings_internal``."""
    for token, vector in zip(chain.from_iterable(s.tokens for s in sentences), vectors, strict=True):
        token.set_embedding(name, vector)


def extraction_cases(flair_embeddings: FlairEmbeddings, replay: ReplayEncoder) -> list[Case[LocatedBatch]]:
    """Flair's loop (views; clone per token) and embedcache's extraction, all on the same states."""
    name = flair_embeddings.name

    def clear(item: LocatedBatch) -> None:
        clear_embeddings(item.batch.sentences)

    def flair_loop(clone: bool) -> Case[LocatedBatch]:
        def run(item: LocatedBatch) -> None:
            flair_token_loop(flair_embeddings, item.batch.sentences, item.states, clone)

        return Case("flair_clone" if clone else "flair_views", run, clear)

    def replay_states(item: LocatedBatch) -> None:
        replay.next_states = item.states

    def views(item: LocatedBatch) -> None:
        set_token_embeddings(item.batch.sentences, name, row_views(item.states, item.rows))

    def gather_unbind(item: LocatedBatch) -> None:
        set_token_embeddings(item.batch.sentences, name, gather_rows(item.states, item.rows, "gpu").unbind(0))

    return [
        flair_loop(clone=False),
        flair_loop(clone=True),
        Case("ec_rows", lambda item: replay.locate_tokens(item.batch.tokens), replay_states),
        Case("ec_views", views, clear),
        Case("ec_gather_unbind", gather_unbind, clear),
        Case("ec_gather", lambda item: gather_rows(item.states, item.rows, "gpu")),
    ]


def embed_cases(flair_embeddings: FlairEmbeddings, embeddings: CharLMEmbeddings) -> list[Case[Batch]]:
    """Whole ``embed`` calls of both libraries, embedcache's tensor-level call, and the LM alone."""
    encoder = embeddings.encoder

    def clear(batch: Batch) -> None:
        clear_embeddings(batch.sentences)

    def embed_in(mode: Literal["none", "gpu"]) -> Case[Batch]:
        def run(batch: Batch) -> list[Sentence]:
            with storage_mode(mode):
                return embeddings.embed(batch.sentences)

        return Case(f"ec_embed_{mode}", run, clear)

    def embed_batch(batch: Batch) -> object:
        with storage_mode("gpu"):
            return encoder.embed_batch(batch.tokens)

    return [
        Case("flair_embed", lambda batch: flair_embeddings.embed(batch.sentences), clear),
        embed_in("none"),
        embed_in("gpu"),
        Case("ec_embed_batch", embed_batch),
        Case("lm_floor", lambda batch: encoder.hidden_states(batch.lm_strings)),
    ]


def _require_equal(what: str, actual: torch.Tensor, expected: torch.Tensor, exact: bool) -> None:
    same = torch.equal(actual, expected) if exact else torch.allclose(actual, expected, rtol=1e-5, atol=1e-5)
    if not same:
        difference = (actual - expected).abs().max().item()
        raise RuntimeError(
            f"embed suite: {what} differs from Flair (max |Δ| {difference:.3g}); not timing it"
        )


def check_same_vectors(
    flair_embeddings: FlairEmbeddings, embeddings: CharLMEmbeddings, replay: ReplayEncoder, item: LocatedBatch
) -> None:
    """Refuse to time cases that do not produce Flair's vectors (checked on one batch, before timing)."""
    sentences, name = item.batch.sentences, flair_embeddings.name
    flair_embeddings.embed(sentences)
    reference = token_vectors(sentences, name)  # (n_tokens, H) from Flair's own embed
    clear_embeddings(sentences)
    # The libraries' LM passes may round differently off the CPU; extraction from one set of states may not.
    flair_token_loop(flair_embeddings, sentences, item.states, clone=False)
    looped = token_vectors(sentences, name)
    _require_equal("the replicated Flair loop", looped, reference, exact=False)
    _require_equal("row_views", torch.stack(row_views(item.states, item.rows)), looped, exact=True)
    _require_equal("gather_rows", gather_rows(item.states, item.rows, "gpu"), looped, exact=True)
    replay.next_states = item.states
    _require_equal("replayed token rows", replay.locate_tokens(item.batch.tokens)[1], item.rows, exact=True)
    clear_embeddings(sentences)
    with storage_mode("none"):
        embeddings.embed(sentences)
    ours = token_vectors(sentences, embeddings.name)
    _require_equal("CharLMEmbeddings.embed", ours, reference, exact=False)
    clear_embeddings(sentences)


def measure_workload(corpus: list[list[str]], workload: Workload, config: BenchConfig) -> WorkloadResult:
    """Both parts of the suite for one LM size."""
    hidden = workload.hidden_size
    lm = random_char_lm(character_dictionary(corpus), hidden, config.device)
    flair_embeddings = FlairEmbeddings(lm)
    embeddings = CharLMEmbeddings(lm)
    replay = ReplayEncoder(lm)
    started = time.perf_counter()

    batches = make_batches(corpus[: workload.extraction_sentences], embeddings.encoder)
    located = locate(batches, embeddings.encoder)
    log.info(
        "hidden %d: LM states of %d batches in %.0f s", hidden, len(located), time.perf_counter() - started
    )
    check_same_vectors(flair_embeddings, embeddings, replay, located[0])
    extraction = time_cases(
        extraction_cases(flair_embeddings, replay),
        located,
        warmup=config.warmup,
        repeats=config.repeats,
        device=config.device,
    )
    extraction_slice = slice_of(batches)
    for batch in batches:
        clear_embeddings(batch.sentences)
    del located, batches  # frees the LM states before the embed part
    log.info("hidden %d: extraction timed, %.0f s so far", hidden, time.perf_counter() - started)

    batches = make_batches(corpus[: workload.embed_sentences], embeddings.encoder)
    embed = time_cases(
        embed_cases(flair_embeddings, embeddings),
        batches,
        warmup=config.warmup,
        repeats=config.repeats,
        device=config.device,
    )
    log.info("hidden %d: whole embed timed, %.0f s in all", hidden, time.perf_counter() - started)
    return WorkloadResult(hidden, extraction_slice, extraction, slice_of(batches), embed)


def plan(config: BenchConfig) -> EmbedPlan:
    return QUICK if config.quick else FULL


def measure(plan: EmbedPlan, config: BenchConfig) -> EmbedRun:
    """Time both parts for every LM size."""
    corpus = load_wnut17_train(config.data_dir)
    with torch.no_grad():  # as inside both libraries' embed; the LM floor needs it said
        results = [measure_workload(corpus, workload, config) for workload in plan.workloads]
    return EmbedRun(results, len(corpus))


SUITE = Suite("embed", ("random",), plan, measure, render)
