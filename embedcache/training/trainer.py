"""The training loop: storage modes, optimiser and annealing, evaluation, checkpoints and resume.

With static embeddings and ``cpu``/``gpu``/``disk`` storage, every token of train and dev is embedded once
into an :class:`~embedcache.cache.EmbeddingCache`; later epochs never run the LMs and only gather
mini-batches from the store. ``none`` storage runs the embedders for every batch of every epoch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from flair.data import Corpus as FlairCorpus
from tqdm.auto import tqdm

from embedcache.cache import EmbeddingCache
from embedcache.data.corpus import Corpus
from embedcache.data.sentence import TaggedSentence
from embedcache.models.tagger import SequenceTagger
from embedcache.settings import storage_mode
from embedcache.training.batches import (
    BatchSource,
    GoldTags,
    LiveEmbeddings,
    length_sorted_batches,
    shuffled_batches,
)
from embedcache.training.checkpoint import load_checkpoint, save_checkpoint
from embedcache.training.evaluation import Scores, evaluate_tags

log = logging.getLogger(__name__)

TrainingStorage = Literal["none", "cpu", "gpu", "disk"]


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides how a run trains (saved in ``out_dir/training.json``)."""

    storage_mode: TrainingStorage = "cpu"
    max_epochs: int = 10
    mini_batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 0.1
    optimizer: Literal["sgd", "adamw"] = "sgd"
    weight_decay: float = 0.0
    anneal_factor: float = 0.5
    patience: int = 3
    min_learning_rate: float = 1e-4
    clip: float | None = 5.0
    seed: int = 0
    shuffle: bool = True
    cache_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    cache_dir: str | None = None
    memory_budget_bytes: int | None = None
    on_over_budget: Literal["error", "fallback"] = "error"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.storage_mode not in ("none", "cpu", "gpu", "disk"):
            raise ValueError(
                f"storage_mode must be 'none', 'cpu', 'gpu' or 'disk', got {self.storage_mode!r}"
            )
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.max_epochs < 1 or self.mini_batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("max_epochs, mini_batch_size and eval_batch_size must be at least 1")


@dataclass
class TrainingResult:
    best_dev_score: float
    test: Scores | None
    epochs_run: int
    history: list[dict[str, float]]


class Trainer:
    """Trains a :class:`SequenceTagger` on a corpus.

    Args:
        tagger: the model to train (moved to ``device`` at the start of training).
        corpus: an embedcache :class:`Corpus` or a ``flair.data.Corpus`` (labels of ``tagger.tag_type``).

    Example:
        >>> Trainer(tagger, corpus).train("out", storage_mode="gpu", max_epochs=10)  # doctest: +SKIP
    """

    def __init__(self, tagger: SequenceTagger, corpus: Corpus | FlairCorpus) -> None:
        self.tagger = tagger
        self.corpus = (
            Corpus.from_flair(corpus, tagger.tag_type) if isinstance(corpus, FlairCorpus) else corpus
        )
        self.train_sentences = _non_empty(self.corpus.train, "train")
        if not self.train_sentences:
            raise ValueError(
                f"{self.corpus!r}: the train split has no sentence with tokens; nothing to learn"
            )
        self.dev_sentences = _non_empty(self.corpus.dev, "dev")
        self.test_sentences = _non_empty(self.corpus.test, "test")
        for split, sentences in (("dev", self.dev_sentences), ("test", self.test_sentences)):
            _check_tags_known(sentences, tagger, split)

    def train(
        self,
        out_dir: str | Path,
        storage_mode: TrainingStorage = "cpu",
        max_epochs: int = 10,
        mini_batch_size: int = 32,
        learning_rate: float = 0.1,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        patience: int = 3,
        anneal_factor: float = 0.5,
        min_learning_rate: float = 1e-4,
        clip: float | None = 5.0,
        seed: int = 0,
        cache_dtype: Literal["float32", "float16", "bfloat16"] = "float32",
        cache_dir: str | Path | None = None,
        resume: bool = False,
        device: str | torch.device | None = None,
        progress: bool = True,
        memory_budget_bytes: int | None = None,
        on_over_budget: Literal["error", "fallback"] = "error",
    ) -> TrainingResult:
        """Train, keep ``out_dir/best-model`` (by dev score) and ``out_dir/final-model``, test the best.

        Writes ``results.json``, ``results.txt`` (readable tables), ``loss.tsv`` (one row per epoch),
        ``training.log`` and ``checkpoint.pt`` (after every epoch; ``resume=True`` continues from it).
        """
        config = TrainingConfig(
            storage_mode=storage_mode, max_epochs=max_epochs, mini_batch_size=mini_batch_size,
            learning_rate=learning_rate, optimizer=optimizer, patience=patience, anneal_factor=anneal_factor,
            min_learning_rate=min_learning_rate, clip=clip, seed=seed, cache_dtype=cache_dtype,
            cache_dir=None if cache_dir is None else str(cache_dir), progress=progress,
            memory_budget_bytes=memory_budget_bytes, on_over_budget=on_over_budget,
        )  # fmt: skip
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(out / "training.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_log = logging.getLogger("embedcache")
        package_log.addHandler(handler)
        try:
            run = _Run(self, config, out, _resolve_device(device))
            return run.execute(resume)
        finally:
            package_log.removeHandler(handler)
            handler.close()


class _Run:
    """One call of :meth:`Trainer.train`: the state that lives for its duration."""

    def __init__(self, trainer: Trainer, config: TrainingConfig, out: Path, device: torch.device) -> None:
        self.trainer, self.config, self.out, self.device = trainer, config, out, device
        self.tagger = trainer.tagger.to(device)
        self.mode = config.storage_mode
        if self.mode != "none" and not self.tagger.embeddings.is_static:
            log.warning("fine-tuned embeddings change every step and are never cached: using storage 'none'")
            self.mode = "none"
        torch.manual_seed(config.seed)
        self.shuffle = torch.Generator().manual_seed(config.seed) if config.shuffle else None
        self.optimizer = _make_optimizer(self.tagger, config)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.anneal_factor, patience=config.patience
        )
        self.gold = GoldTags(trainer.train_sentences, self.tagger.tags)
        self.history: list[dict[str, float]] = []
        self.best_score = float("-inf")
        self.start_epoch = 0

    def execute(self, resume: bool) -> TrainingResult:
        (self.out / "training.json").write_text(json.dumps(asdict(self.config), indent=1), encoding="utf-8")
        if resume:
            self._restore()
        global_mode = "cpu" if self.mode == "disk" else self.mode
        with storage_mode(global_mode):  # type: ignore[arg-type]
            train_source = self._source(self.trainer.train_sentences, "train")
            dev_source = (
                self._source(self.trainer.dev_sentences, "dev") if self.trainer.dev_sentences else None
            )
            epoch = self.start_epoch
            for epoch in range(self.start_epoch, self.config.max_epochs):
                if self._learning_rate() < self.config.min_learning_rate:
                    log.info("learning rate %.2g below the minimum: stopping", self._learning_rate())
                    break
                self._run_epoch(epoch, train_source, dev_source)
            else:
                epoch = self.config.max_epochs
            self.tagger.save(self.out / "final-model")
            test_scores = self._final_test()
        self._write_results(test_scores)
        return TrainingResult(self.best_score, test_scores, epoch, self.history)

    def _source(self, sentences: Sequence[TaggedSentence], split: str) -> BatchSource:
        if self.mode == "none":
            return LiveEmbeddings(self.tagger, sentences)
        cache_dir = self.config.cache_dir
        log.info(
            "caching the %s split's embeddings (%s storage, %s)", split, self.mode, self.config.cache_dtype
        )
        return EmbeddingCache.build(
            sentences,
            self.tagger.embeddings,
            placement=self.mode,
            dtype=getattr(torch, self.config.cache_dtype),
            path=cache_dir,
            device=self.device,
            progress=self.config.progress,
            memory_budget_bytes=self.config.memory_budget_bytes,
            on_over_budget=self.config.on_over_budget,
        )

    def _run_epoch(self, epoch: int, train: BatchSource, dev: BatchSource | None) -> None:
        started = time.perf_counter()
        self.tagger.train()
        batches = shuffled_batches(
            len(self.trainer.train_sentences), self.config.mini_batch_size, self.shuffle
        )
        total_loss, total_tokens = 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}", unit="batch", disable=not self.config.progress)
        for ids in bar:
            padded, lengths = train.batch(ids)
            loss = self.tagger.loss(padded, lengths, self.gold.batch(ids))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.clip is not None:
                torch.nn.utils.clip_grad_norm_(self.tagger.parameters(), self.config.clip)
            self.optimizer.step()
            total_loss += loss.item()
            total_tokens += int(lengths.sum())
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(
                loss=f"{total_loss / total_tokens:.4f}", tokens_per_s=f"{total_tokens / elapsed:.0f}"
            )
        dev_scores = self.evaluate(self.trainer.dev_sentences, dev) if dev is not None else None
        dev_score = dev_scores.main_score if dev_scores else -total_loss
        learning_rate = self._learning_rate()
        self.scheduler.step(dev_score)
        record = {
            "epoch": epoch + 1,
            "learning_rate": learning_rate,
            "train_loss": total_loss / max(total_tokens, 1),
            "dev_score": dev_scores.main_score if dev_scores else float("nan"),
            "seconds": time.perf_counter() - started,
        }
        self.history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        if dev_score > self.best_score:
            self.best_score = dev_score
            self.tagger.save(self.out / "best-model")
        self._checkpoint(epoch + 1)

    def evaluate(self, sentences: Sequence[TaggedSentence], source: BatchSource) -> Scores:
        """Decode ``sentences`` from ``source`` and score them against their gold tags."""
        was_training = self.tagger.training
        self.tagger.eval()
        predicted: list[list[str]] = [[] for _ in sentences]
        with torch.no_grad():
            for ids in length_sorted_batches(sentences, self.config.eval_batch_size):
                padded, lengths = source.batch(ids)
                tag_ids, _ = self.tagger.decode(padded, lengths)
                for row, index in enumerate(ids):
                    predicted[index] = self.tagger.tags.decode(tag_ids[row, : len(sentences[index])].tolist())
        self.tagger.train(was_training)
        return evaluate_tags([s.tags or [] for s in sentences], predicted, self.tagger.tags.scheme)

    def _final_test(self) -> Scores | None:
        if not self.trainer.test_sentences:
            return None
        best = self.out / "best-model"
        model = SequenceTagger.load(best, device=self.device) if best.is_dir() else self.tagger
        run_model, self.tagger = self.tagger, model
        try:
            with storage_mode("none"):
                scores = self.evaluate(
                    self.trainer.test_sentences, LiveEmbeddings(model, self.trainer.test_sentences)
                )
        finally:
            self.tagger = run_model
        log.info("test:\n%s", scores.table())
        return scores

    def _learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _checkpoint(self, epochs_done: int) -> None:
        save_checkpoint(
            self.out,
            {
                "epochs_done": epochs_done,
                "model": self.tagger.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "shuffle_rng": self.shuffle.get_state() if self.shuffle is not None else None,
                "best_score": self.best_score,
                "history": self.history,
            },
        )

    def _restore(self) -> None:
        state = load_checkpoint(self.out)
        if state is None:
            log.info("no checkpoint in %s: starting from scratch", self.out)
            return
        self.tagger.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if self.shuffle is not None and state["shuffle_rng"] is not None:
            self.shuffle.set_state(state["shuffle_rng"])
        self.best_score = state["best_score"]
        self.history = list(state["history"])
        self.start_epoch = state["epochs_done"]
        log.info("resuming after epoch %d from %s", self.start_epoch, self.out / "checkpoint.pt")

    def _write_results(self, test: Scores | None) -> None:
        results: dict[str, Any] = {
            "best_dev_score": self.best_score,
            "test": test.to_json() if test else None,
            "history": self.history,
        }
        (self.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
        lines = ["epoch\tlearning_rate\ttrain_loss\tdev_score\tseconds"]
        lines += [
            f"{r['epoch']}\t{r['learning_rate']:.6g}\t{r['train_loss']:.6f}\t{r['dev_score']:.6f}\t{r['seconds']:.2f}"
            for r in self.history
        ]
        (self.out / "loss.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.out / "results.txt").write_text(
            f"best dev score {self.best_score:.4f}\n\ntest\n{test.table() if test else '(no test split)'}\n",
            encoding="utf-8",
        )


def _make_optimizer(tagger: SequenceTagger, config: TrainingConfig) -> torch.optim.Optimizer:
    parameters = [p for p in tagger.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _non_empty(sentences: Sequence[TaggedSentence], split: str) -> list[TaggedSentence]:
    kept = [s for s in sentences if len(s)]
    if len(kept) < len(sentences):
        log.warning("%s: skipping %d sentences with no tokens", split, len(sentences) - len(kept))
    return kept


def _check_tags_known(sentences: Sequence[TaggedSentence], tagger: SequenceTagger, split: str) -> None:
    """A gold tag the model cannot output is a data error worth stopping for: name where it is."""
    known = _tag_types(tagger.tags.tags, tagger.tags.scheme)
    for sentence in sentences:
        if sentence.tags is None:
            raise ValueError(f"{sentence.source or split}: sentence without gold tags in the {split} split")
        unknown = _tag_types(sentence.tags, tagger.tags.scheme) - known
        if unknown:
            raise ValueError(
                f"{sentence.source or split}: {split} label {sorted(unknown)[0]!r} never occurs in train, so "
                "the model cannot predict it; fix the data or build the tag dictionary from all splits"
            )


def _tag_types(tags: Sequence[str], scheme: str) -> set[str]:
    """Plain tags as they are; span tags by their type (``B-PER`` and ``E-PER`` are both ``PER``)."""
    if scheme == "plain":
        return set(tags)
    return {tag.partition("-")[2] for tag in tags if tag != "O"}
