"""Suite ``train``: BiLSTM-CRF training on WNUT-17, embedcache's ``Trainer`` against Flair 0.15.1's.

Epoch times per storage mode on the first 1,000 train sentences, with peak memory and the *floor*: the
tagger's own forward, backward and optimiser step on padded tensors assembled beforehand. The runners here are
also those of the ``parity`` suite (test F1 of both libraries trained the same way on the whole corpus).

Every configuration runs in a fresh process (spawned), so its peak RSS is its own and no run warms another's
caches or allocator.
"""

from __future__ import annotations

import logging
import resource
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import flair
import torch
from flair.data import Corpus as FlairCorpus
from flair.datasets import ColumnCorpus
from flair.datasets.base import SentenceDataset
from flair.embeddings import FlairEmbeddings, StackedEmbeddings, WordEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger
from flair.trainers import ModelTrainer
from flair.trainers.plugins.base import TrainerPlugin

import embedcache as ec
from bench.harness import REPO_ROOT, BenchConfig
from bench.inputs import BATCH_SIZE
from bench.report import SuiteResult
from bench.suites.train_results import RunResult, TrainSpec, suite_result
from embedcache.data.datasets import WNUT17
from embedcache.training.batches import GoldTags, length_sorted_batches, shuffled_batches
from embedcache.training.distributed import epoch_seeds

log = logging.getLogger(__name__)

LM_DIR = REPO_ROOT / "out" / "charlm"
WORD_VECTORS = REPO_ROOT / "out" / "words" / "social_media_w2v.bin"
HIDDEN_SIZE = 256
LEARNING_RATE = 0.1
EVAL_BATCH_SIZE = 64  # both libraries' default


@dataclass(frozen=True)
class Plan:
    """The slices and epochs of the runs."""

    epoch_train: int | None  # leading train sentences for the epoch times (None: all)
    epoch_dev: int | None
    epoch_epochs: int


FULL = Plan(1000, 200, 2)
QUICK = Plan(100, 20, 1)
EPOCH_MODES = {"embedcache": ("none", "cpu", "gpu", "disk"), "flair": ("none", "cpu", "gpu")}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _head(items: Sequence, n: int | None) -> list:
    return list(items[:n]) if n is not None else list(items)


def embedcache_embeddings(spec: TrainSpec) -> list[ec.TokenEmbedder]:
    """The char LMs in our own format (same weights as the ``.pt`` files Flair reads), then the words."""
    embeddings: list[ec.TokenEmbedder] = [
        ec.CharLMEmbeddings(LM_DIR / "forward"),
        ec.CharLMEmbeddings(LM_DIR / "backward"),
    ]
    if spec.word_vectors:
        embeddings.append(ec.WordEmbeddings(WORD_VECTORS))
    return embeddings


def flair_embeddings(spec: TrainSpec) -> StackedEmbeddings:
    embeddings = [FlairEmbeddings(str(LM_DIR / "forward.pt")), FlairEmbeddings(str(LM_DIR / "backward.pt"))]
    if spec.word_vectors:
        embeddings.append(WordEmbeddings(str(WORD_VECTORS)))
    return StackedEmbeddings(embeddings)


def train_embedcache(spec: TrainSpec, out_dir: Path) -> RunResult:
    """embedcache's ``Trainer`` on the spec's slice; epoch times are its own ``history`` seconds."""
    full = WNUT17(spec.data_dir / "wnut17")
    corpus = ec.Corpus(
        _head(full.train, spec.n_train), _head(full.dev, spec.n_dev), _head(full.test, spec.n_test)
    )
    tags = ec.TagDictionary.from_sentences([s.tags for s in corpus.train], scheme="BIOES")
    embeddings = embedcache_embeddings(spec)
    torch.manual_seed(spec.seed)
    tagger = ec.SequenceTagger(embeddings, tags, "ner", hidden_size=HIDDEN_SIZE)
    started = time.perf_counter()
    result = ec.Trainer(tagger, corpus).train(
        out_dir, storage_mode=spec.storage, max_epochs=spec.epochs, mini_batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE, seed=spec.seed, device=spec.device, progress=False,
    )  # fmt: skip
    cache_nbytes = sum(ec.estimate(split, embeddings, torch.float32) for split in (corpus.train, corpus.dev))
    test_f1 = result.test.micro_f1 if result.test is not None else None
    seconds = [r["seconds"] for r in result.history]
    return RunResult(spec, seconds, time.perf_counter() - started, test_f1, peak_rss_bytes(), cache_nbytes)


class EpochTimer(TrainerPlugin):
    """Times Flair's epochs from their start to the end of their dev evaluation, like embedcache."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.started = 0.0

    @TrainerPlugin.hook
    def before_training_epoch(self, **_: object) -> None:
        self.started = time.perf_counter()

    @TrainerPlugin.hook
    def after_evaluation(self, **_: object) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def train_flair(spec: TrainSpec, out_dir: Path) -> RunResult:
    """Flair's ``ModelTrainer`` with the same slice and settings; a plugin times its epochs (dev eval in)."""
    flair.device = torch.device(spec.device)
    full = ColumnCorpus(
        spec.data_dir / "wnut17", {0: "text", 1: "ner"}, train_file="train.conll", dev_file="dev.conll",
        test_file="test.conll",
    )  # fmt: skip
    splits = [
        SentenceDataset(_head(list(split), n)) if n != 0 else None
        for split, n in ((full.train, spec.n_train), (full.dev, spec.n_dev), (full.test, spec.n_test))
    ]
    corpus = FlairCorpus(*splits, sample_missing_splits=False)
    flair.set_seed(spec.seed)
    embeddings = flair_embeddings(spec)
    tags = corpus.make_label_dictionary("ner", add_unk=False)
    tagger = FlairSequenceTagger(
        embeddings, tags, "ner", tag_format="BIOES", hidden_size=HIDDEN_SIZE, use_crf=True
    )
    timer = EpochTimer()
    started = time.perf_counter()
    scores = ModelTrainer(tagger, corpus).train(
        out_dir, learning_rate=LEARNING_RATE, mini_batch_size=BATCH_SIZE, eval_batch_size=EVAL_BATCH_SIZE,
        max_epochs=spec.epochs, embeddings_storage_mode=spec.storage, plugins=[timer], create_file_logs=False,
    )  # fmt: skip
    test_f1 = scores["test_score"] if spec.n_test != 0 else None
    return RunResult(spec, timer.seconds, time.perf_counter() - started, test_f1, peak_rss_bytes(), None)


def floor(spec: TrainSpec, out_dir: Path) -> RunResult:
    """The tagger alone: each epoch's steps and dev decoding on batches assembled before the clock starts.

    The batches are those of embedcache's ``Trainer`` with the same seed (its shuffle generator's orders), so
    the floor differs from a training epoch only by what fetching batches and scoring costs.
    """
    full = WNUT17(spec.data_dir / "wnut17")
    train, dev = _head(full.train, spec.n_train), _head(full.dev, spec.n_dev)
    tags = ec.TagDictionary.from_sentences([s.tags for s in train], scheme="BIOES")
    embeddings = embedcache_embeddings(spec)
    torch.manual_seed(spec.seed)
    tagger = ec.SequenceTagger(embeddings, tags, "ner", hidden_size=HIDDEN_SIZE).to(spec.device)
    caches = [
        ec.EmbeddingCache.build(s, embeddings, "gpu", torch.float32, progress=False) for s in (train, dev)
    ]
    gold = GoldTags(train, tags)
    optimizer = torch.optim.SGD(tagger.parameters(), lr=LEARNING_RATE)
    dev_batches = [caches[1].batch(ids) for ids in length_sorted_batches(dev, EVAL_BATCH_SIZE)]
    seconds = []
    for epoch in range(spec.epochs):
        shuffle_seed, _ = epoch_seeds(spec.seed, epoch, rank=0)
        shuffle = torch.Generator().manual_seed(shuffle_seed)
        batches = [
            (*caches[0].batch(ids), gold.batch(ids))
            for ids in shuffled_batches(len(train), BATCH_SIZE, shuffle)
        ]
        started = time.perf_counter()
        tagger.train()
        for padded, lengths, tag_ids in batches:
            loss = tagger.loss(padded, lengths, tag_ids)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tagger.parameters(), 5.0)
            optimizer.step()
            loss.item()
        tagger.eval()
        with torch.no_grad():
            for padded, lengths in dev_batches:
                tagger.decode(padded, lengths)
        seconds.append(time.perf_counter() - started)
    return RunResult(spec, seconds, sum(seconds), None, peak_rss_bytes(), None)


RUNNERS = {"embedcache": train_embedcache, "flair": train_flair, "floor": floor}


def run_spec(spec: TrainSpec) -> RunResult:
    """One configuration, inside its own process."""
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(spec.threads)
    with tempfile.TemporaryDirectory(prefix=f"bench-train-{spec.library}-") as out_dir:
        return RUNNERS[spec.library](spec, Path(out_dir))


def run_in_fresh_process(spec: TrainSpec) -> RunResult:
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        result = pool.submit(run_spec, spec).result()
    log.info(
        "%s %s: epochs %s, %.0f s in all",
        spec.library,
        spec.storage,
        result.seconds,
        time.perf_counter() - started,
    )
    return result


def run(config: BenchConfig) -> SuiteResult:
    plan = QUICK if config.quick else FULL
    base = TrainSpec(
        "embedcache", "none", config.data_dir, str(config.device), torch.get_num_threads(),
        plan.epoch_train, plan.epoch_dev, 0, plan.epoch_epochs,
    )  # fmt: skip
    epoch_specs = [
        replace(base, library=lib, storage=mode) for lib, modes in EPOCH_MODES.items() for mode in modes
    ]
    epoch_specs.append(replace(base, library="floor", storage="gpu"))
    results = [run_in_fresh_process(spec) for spec in epoch_specs]
    return suite_result(results, plan_json=asdict(plan), quick=config.quick)
