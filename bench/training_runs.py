"""Training runs of both libraries on WNUT-17, each in a fresh spawned process: the runners of the ``train``
suite (epoch times, peak memory, the floor) and of the ``parity`` suite (test F1).

A :class:`TrainSpec` says what one run trains; :func:`run_in_fresh_process` runs it in its own process, so its
peak RSS is its own and no run warms another's caches or allocator.
"""

from __future__ import annotations

import logging
import resource
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
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

import embedcache as ec
from bench.flair_reference import EpochTimer
from bench.lms import DIRECTIONS, CharLMFiles
from bench.specs import BATCH_SIZE, EVAL_BATCH_SIZE, NER_TAGGER, WNUT17
from embedcache.training.batches import GoldTags, length_sorted_batches, shuffled_batches
from embedcache.training.distributed import epoch_seeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSpec:
    """One configuration, run in its own process.

    Attributes:
        library: ``embedcache``, ``flair`` or ``floor`` (the tagger alone on pre-assembled batches).
        storage: the storage mode (``none``/``cpu``/``gpu``/``disk``).
        lm_dir: the forward and backward char LMs in both formats (:func:`bench.lms.write_char_lms`).
        n_train, n_dev, n_test: leading sentences of each split (``None``: all; 0: none).
        word_vectors: word2vec vectors to stack after the LMs (both libraries), or ``None``.
    """

    library: str
    storage: str
    data_dir: Path
    lm_dir: Path
    device: str
    threads: int
    n_train: int | None
    n_dev: int | None
    n_test: int | None
    epochs: int
    word_vectors: Path | None = None
    seed: int = 0


@dataclass(frozen=True)
class RunResult:
    """What one configuration measured."""

    spec: TrainSpec
    seconds: list[float]  # per epoch
    train_call_s: float  # the whole training call: epochs, cache build, saving, final test
    test_f1: float | None
    peak_rss_bytes: int
    cache_nbytes: int | None  # embedcache: exact bytes of the train + dev stores in float32

    def to_json(self) -> dict[str, object]:
        spec = {k: v for k, v in asdict(self.spec).items() if k not in ("data_dir", "lm_dir", "word_vectors")}
        spec["word_vectors"] = self.spec.word_vectors is not None
        measured = {"seconds": self.seconds, "train_call_s": self.train_call_s, "test_f1": self.test_f1}
        measured["peak_rss_bytes"] = self.peak_rss_bytes
        return {**spec, **measured, "cache_nbytes": self.cache_nbytes}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _head(items: Sequence, n: int | None) -> list:
    return list(items[:n]) if n is not None else list(items)


def embedcache_embeddings(spec: TrainSpec) -> list[ec.TokenEmbedder]:
    """The char LMs in our own format (same weights as the ``.pt`` files Flair reads), then the words."""
    lms = CharLMFiles(spec.lm_dir, "random")  # the weights' source does not matter to reading the files
    embeddings: list[ec.TokenEmbedder] = [ec.CharLMEmbeddings(lms.embedcache_path(d)) for d in DIRECTIONS]
    if spec.word_vectors is not None:
        embeddings.append(ec.WordEmbeddings(spec.word_vectors))
    return embeddings


def flair_embeddings(spec: TrainSpec) -> StackedEmbeddings:
    lms = CharLMFiles(spec.lm_dir, "random")
    embeddings = [FlairEmbeddings(lms.flair_path(direction)) for direction in DIRECTIONS]
    if spec.word_vectors is not None:
        embeddings.append(WordEmbeddings(str(spec.word_vectors)))
    return StackedEmbeddings(embeddings)


def train_embedcache(spec: TrainSpec, out_dir: Path) -> RunResult:
    """embedcache's ``Trainer`` on the spec's slice; epoch times are its own ``history`` seconds."""
    full = ec.datasets.WNUT17(spec.data_dir / WNUT17)
    corpus = ec.Corpus(
        _head(full.train, spec.n_train), _head(full.dev, spec.n_dev), _head(full.test, spec.n_test)
    )
    tags = ec.TagDictionary.from_sentences([s.tags for s in corpus.train], scheme=NER_TAGGER.tag_scheme)
    embeddings = embedcache_embeddings(spec)
    torch.manual_seed(spec.seed)
    tagger = ec.SequenceTagger(embeddings, tags, "ner", hidden_size=NER_TAGGER.hidden_size)
    started = time.perf_counter()
    result = ec.Trainer(tagger, corpus).train(
        out_dir, storage_mode=spec.storage, max_epochs=spec.epochs, mini_batch_size=BATCH_SIZE,
        learning_rate=NER_TAGGER.learning_rate, seed=spec.seed, device=spec.device, progress=False,
    )  # fmt: skip
    cache_nbytes = sum(ec.estimate(split, embeddings, torch.float32) for split in (corpus.train, corpus.dev))
    test_f1 = result.test.micro_f1 if result.test is not None else None
    seconds = [r["seconds"] for r in result.history]
    return RunResult(spec, seconds, time.perf_counter() - started, test_f1, peak_rss_bytes(), cache_nbytes)


def train_flair(spec: TrainSpec, out_dir: Path) -> RunResult:
    """Flair's ``ModelTrainer`` with the same slice and settings; a plugin times its epochs (dev eval in)."""
    flair.device = torch.device(spec.device)
    full = ColumnCorpus(
        spec.data_dir / WNUT17, {0: "text", 1: "ner"}, train_file="train.conll", dev_file="dev.conll",
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
        embeddings,
        tags,
        "ner",
        tag_format=NER_TAGGER.tag_scheme,
        hidden_size=NER_TAGGER.hidden_size,
        use_crf=True,
    )
    timer = EpochTimer()
    started = time.perf_counter()
    scores = ModelTrainer(tagger, corpus).train(
        out_dir, learning_rate=NER_TAGGER.learning_rate, mini_batch_size=BATCH_SIZE,
        eval_batch_size=EVAL_BATCH_SIZE, max_epochs=spec.epochs, embeddings_storage_mode=spec.storage,
        plugins=[timer], create_file_logs=False,
    )  # fmt: skip
    test_f1 = scores["test_score"] if spec.n_test != 0 else None
    return RunResult(spec, timer.seconds, time.perf_counter() - started, test_f1, peak_rss_bytes(), None)


def floor(spec: TrainSpec, out_dir: Path) -> RunResult:
    """The tagger alone: each epoch's steps and dev decoding on batches assembled before the clock starts.

    The batches are those of embedcache's ``Trainer`` with the same seed (its shuffle generator's orders), so
    the floor differs from a training epoch only by what fetching batches and scoring costs.
    """
    full = ec.datasets.WNUT17(spec.data_dir / WNUT17)
    train, dev = _head(full.train, spec.n_train), _head(full.dev, spec.n_dev)
    tags = ec.TagDictionary.from_sentences([s.tags for s in train], scheme=NER_TAGGER.tag_scheme)
    embeddings = embedcache_embeddings(spec)
    torch.manual_seed(spec.seed)
    tagger = ec.SequenceTagger(embeddings, tags, "ner", hidden_size=NER_TAGGER.hidden_size).to(spec.device)
    caches = [
        ec.EmbeddingCache.build(s, embeddings, "gpu", torch.float32, progress=False) for s in (train, dev)
    ]
    gold = GoldTags(train, tags)
    optimizer = torch.optim.SGD(tagger.parameters(), lr=NER_TAGGER.learning_rate)
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
