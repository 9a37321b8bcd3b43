"""The training loop: storage modes, optimiser and annealing, evaluation, checkpoints and resume.

With static embeddings and ``cpu``/``gpu``/``disk`` storage, every token of train and dev is embedded once
into an :class:`~embedcache.cache.EmbeddingCache`; later epochs never run the LMs and only gather
mini-batches from the store. ``none`` storage runs the embedders for every batch of every epoch.

Under ``torchrun`` the same loop runs on every rank, each on its own shard of the train split; see
:mod:`embedcache.training.distributed` for what is shared, what is rank 0's alone, and how failures surface.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from embedcache.data.corpus import Corpus
from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.serialization import check_saveable
from embedcache.settings import storage_mode
from embedcache.training.batches import (
    Batch,
    BatchSource,
    GoldTags,
    LiveEmbeddings,
    optimizer_steps,
    shuffled_batches,
)
from embedcache.training.checkpoint import (
    CHECKPOINT_NAME,
    check_same_settings,
    load_checkpoint,
    resume_failure,
    save_checkpoint,
)
from embedcache.training.config import TrainingConfig, gather_mode
from embedcache.training.data_parallel import TaggerLoss, gradient_sync, static_state_names
from embedcache.training.distributed import (
    RankInfo,
    epoch_seeds,
    from_main,
    largest_shard_size,
    process_group,
    rank_device,
    reporting_lost_ranks,
    shard_ids,
    sum_across_ranks,
    wrap_for_data_parallel,
)
from embedcache.training.evaluation import Scores, evaluate_tagger
from embedcache.training.outputs import run_log, write_results, write_settings
from embedcache.training.sources import batch_source, fitted_storage
from embedcache.training.splits import check_tags_known, non_empty

if TYPE_CHECKING:  # a Flair corpus exists only where Flair is imported already
    from flair.data import Corpus as FlairCorpus

log = logging.getLogger(__name__)

# Tagger settings that change the shapes of its weights (the others, such as dropout, may change on resume).
_STATE_SHAPING_SETTINGS = ("hidden_size", "rnn_layers", "use_rnn", "use_crf", "reproject_embeddings")


@dataclass
class TrainingResult:
    best_dev_score: float
    test: Scores | None
    epochs_run: int
    history: list[dict[str, float]]


class Trainer:
    """Trains a :class:`SequenceTagger` on a corpus.

    Args:
        tagger: the model to train (moved to the training device at the start of training).
        corpus: an embedcache :class:`Corpus` or a ``flair.data.Corpus`` (labels of ``tagger.tag_type``).

    Example:
        >>> Trainer(tagger, corpus).train("out", storage_mode="gpu", max_epochs=10)  # doctest: +SKIP
    """

    def __init__(self, tagger: SequenceTagger, corpus: Corpus | FlairCorpus) -> None:
        check_saveable(tagger)  # training saves best-model and final-model: refuse now, not after an epoch
        self.tagger = tagger
        self.corpus = corpus if isinstance(corpus, Corpus) else Corpus.from_flair(corpus, tagger.tag_type)
        self.train_sentences = non_empty(self.corpus.train, "train")
        if not self.train_sentences:
            raise ValueError(
                f"{self.corpus!r}: the train split has no sentence with tokens; nothing to learn"
            )
        self.dev_sentences = non_empty(self.corpus.dev, "dev")
        self.test_sentences = non_empty(self.corpus.test, "test")
        for split, sentences in (("dev", self.dev_sentences), ("test", self.test_sentences)):
            check_tags_known(sentences, tagger, split)

    def train(
        self, out_dir: str | Path, config: TrainingConfig | None = None, **settings: Any
    ) -> TrainingResult:
        """Train, keep ``out_dir/best-model`` (by dev score) and ``out_dir/final-model``, test the best.

        The settings are the fields of :class:`TrainingConfig`: a whole ``config``, keywords
        (``storage_mode="gpu", max_epochs=10``), or both (the keywords replace the config's fields).

        Writes ``training.json`` (every setting), ``results.json``, ``results.txt`` (readable tables),
        ``loss.tsv`` (one row per epoch), ``training.log`` and ``checkpoint.pt`` (after every epoch;
        ``resume=True`` continues from it). A tagger built under ``torch.manual_seed`` and a fixed ``seed``
        give a run that repeats bit for bit (a recipe, :func:`embedcache.recipes.train_tagger`, does both).

        Launched by ``torchrun`` with more than one process, each rank trains on its shard of the train split
        (``distributed_backend``: ``auto`` is ``nccl`` on CUDA, ``gloo`` on the CPU); rank 0 evaluates and
        writes the files above (other ranks log to ``training-rankR.log``). A collective that fails or waits
        longer than ``distributed_timeout_s`` raises
        :class:`~embedcache.training.distributed.LostRankError`.

        Raises:
            TypeError: a keyword that is not a field of :class:`TrainingConfig`.
            CheckpointError: ``resume=True`` and ``checkpoint.pt`` is damaged or was written with another
                network shape, tag set or optimizer (the message lists the settings that differ).
        """
        config = dataclasses.replace(config or TrainingConfig(), **settings)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        compute_device = config.compute_device()
        group = process_group(compute_device, config.distributed_backend, config.distributed_timeout_s)
        with group as ranks, run_log(out, ranks):
            run = _Run(self, config, out, rank_device(compute_device, ranks.local_rank), ranks)
            try:
                with reporting_lost_ranks(ranks, str(out / CHECKPOINT_NAME)):
                    return run.execute()
            finally:
                run.drop_data_parallel()


class _Run:
    """One call of :meth:`Trainer.train`: the state that lives for its duration."""

    def __init__(
        self, trainer: Trainer, config: TrainingConfig, out: Path, device: torch.device, ranks: RankInfo
    ) -> None:
        self.trainer, self.config, self.out, self.device, self.ranks = trainer, config, out, device, ranks
        self.progress = config.progress and ranks.is_main
        self.tagger = trainer.tagger.to(device)
        self.storage = config.storage_mode
        if self.storage != "none" and not self.tagger.embeddings.is_static:
            log.warning("fine-tuned embeddings change every step and are never cached: using storage 'none'")
            self.storage = "none"
        self.shard = shard_ids(len(trainer.train_sentences), ranks)  # positions in the train split
        self.train_sentences = [trainer.train_sentences[i] for i in self.shard]
        self.optimizer = _make_optimizer(self.tagger, config)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.anneal_factor, patience=config.patience
        )
        self.gold = GoldTags(self.train_sentences, self.tagger.tags)
        self.model: torch.nn.Module = TaggerLoss(self.tagger)
        self.history: list[dict[str, float]] = []
        self.best_score = float("-inf")
        self.start_epoch = 0

    def execute(self) -> TrainingResult:
        self.tagger.head_runner = None  # an ONNX export of the head's weights, which training changes
        if self.ranks.is_main:
            write_settings(self.out, self.config)
        if self.config.resume:
            self._restore()
        if self.ranks.is_distributed:
            log.info("%s: training on %d of %d sentences", self.ranks, len(self.shard),
                     len(self.trainer.train_sentences))  # fmt: skip
            self.model = wrap_for_data_parallel(
                self.model, static_state_names(self.tagger), some_unused=not self.tagger.embeddings.is_static
            )
        evaluates = bool(self.trainer.dev_sentences) and self.ranks.is_main
        cached_splits = [self.train_sentences, *([self.trainer.dev_sentences] if evaluates else [])]
        self.storage = fitted_storage(self.storage, cached_splits, self.tagger, self.config)
        with storage_mode(gather_mode(self.storage)):
            train_source = self._source(self.train_sentences, "train")
            dev_source = self._source(self.trainer.dev_sentences, "dev") if evaluates else None
            epochs_run = self._run_epochs(train_source, dev_source)
            if self.ranks.is_main:
                self.tagger.save(self.out / "final-model")
            test_scores = from_main(self._final_test() if self.ranks.is_main else None, self.ranks)
        if self.ranks.is_main:
            write_results(self.out, self.best_score, test_scores, self.history)
        return TrainingResult(self.best_score, test_scores, epochs_run, self.history)

    def _run_epochs(self, train: BatchSource, dev: BatchSource | None) -> int:
        """Epochs from ``start_epoch`` until ``max_epochs`` or the minimum learning rate; the last epoch."""
        for epoch in range(self.start_epoch, self.config.max_epochs):
            if self._learning_rate() < self.config.min_learning_rate:
                log.info("learning rate %.2g below the minimum: stopping", self._learning_rate())
                return epoch
            self._run_epoch(epoch, train, dev)
        return self.config.max_epochs

    def drop_data_parallel(self) -> None:
        """Free the DDP wrapper now: its reducer holds the process group, and a group destroyed while still
        held is torn down later by a destructor that can wait forever on a peer that has already exited."""
        self.model = TaggerLoss(self.tagger)

    def _source(self, sentences: list[TaggedSentence], split: str) -> BatchSource:
        return batch_source(
            self.storage, sentences, split, self.tagger, self.config, self.device, self.progress
        )

    def _run_epoch(self, epoch: int, train: BatchSource, dev: BatchSource | None) -> None:
        started = time.perf_counter()
        self.tagger.train()
        shuffle_seed, dropout_seed = epoch_seeds(self.config.seed, epoch, self.ranks.rank)
        torch.manual_seed(dropout_seed)
        order = torch.Generator().manual_seed(shuffle_seed) if self.config.shuffle else None
        batch_size = self.config.mini_batch_size
        batches = shuffled_batches(len(self.train_sentences), batch_size, order)  # positions in the shard
        batches_everywhere = -(
            -largest_shard_size(len(self.trainer.train_sentences), self.ranks.world_size) // batch_size
        )
        steps = optimizer_steps(batches, batches_everywhere, self.config.accumulate_steps)
        # One stream of batches for the whole epoch: a cache assembles the next batch while this one trains.
        stream = train.batches([ids for step in steps for ids, _ in step])
        total_loss, total_tokens = 0.0, 0
        bar = tqdm(steps, desc=f"epoch {epoch + 1}", unit="step", disable=not self.progress)
        for step in bar:
            loss, tokens = self._optimizer_step(stream, step)
            total_loss += loss
            total_tokens += tokens
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(
                loss=f"{total_loss / max(total_tokens, 1):.4f}", tokens_per_s=f"{total_tokens / elapsed:.0f}"
            )
        if next(stream, None) is not None:  # also ends the stream, which joins its prefetching thread
            raise RuntimeError("the epoch's batch stream holds more batches than its optimiser steps")
        loss_sum, token_count = sum_across_ranks([total_loss, total_tokens], self.ranks)
        # Rank 0 evaluates; every rank then steps its scheduler and keeps its best score with rank 0's
        # numbers, so all agree on annealing and on stopping (the other ranks' placeholder is replaced).
        outcome = (
            self._epoch_outcome(epoch, loss_sum, token_count, dev, started)
            if self.ranks.is_main
            else ({}, 0.0)
        )
        record, score = from_main(outcome, self.ranks)
        self._end_epoch(epoch, record, score)

    def _end_epoch(self, epoch: int, record: dict[str, float], score: float) -> None:
        """Anneal, record, keep the best model and write the checkpoint."""
        self.scheduler.step(score)
        self.history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        if score > self.best_score:
            self.best_score = score
            if self.ranks.is_main:
                self.tagger.save(self.out / "best-model")
        self._checkpoint(epoch + 1)

    def _optimizer_step(
        self, stream: Iterator[Batch], step: list[tuple[list[int], float]]
    ) -> tuple[float, int]:
        """Accumulate the gradients of ``step``'s mini-batches (the next ones of ``stream``), all-reduce them
        once, and update. Returns the step's summed loss and its number of tokens on this rank."""
        self.optimizer.zero_grad(set_to_none=True)
        step_loss, step_tokens = 0.0, 0
        for index, (ids, weight) in enumerate(step):
            padded, lengths = next(stream)
            with gradient_sync(self.model, last=index == len(step) - 1):
                loss = self.model(padded, lengths, self.gold.batch(ids))
                # DDP averages gradients over ranks: scaling by their number makes that average a sum.
                (loss * (weight * self.ranks.world_size)).backward()
            step_loss += weight * loss.item()
            step_tokens += int(lengths.sum()) if weight else 0
        if self.config.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.tagger.parameters(), self.config.clip)
        self.optimizer.step()
        return step_loss, step_tokens

    def _epoch_outcome(
        self, epoch: int, total_loss: float, total_tokens: float, dev: BatchSource | None, started: float
    ) -> tuple[dict[str, float], float]:
        """The epoch's record and the score that anneals and selects (dev score, else minus train loss)."""
        dev_scores = (
            evaluate_tagger(self.tagger, self.trainer.dev_sentences, dev, self.config.eval_batch_size)
            if dev is not None
            else None
        )
        record = {
            "epoch": epoch + 1,
            "learning_rate": self._learning_rate(),
            "train_loss": total_loss / max(total_tokens, 1),
            "dev_score": dev_scores.main_score if dev_scores else float("nan"),
            "seconds": time.perf_counter() - started,
        }
        return record, dev_scores.main_score if dev_scores else -total_loss

    def _final_test(self) -> Scores | None:
        """The best model's (else the last one's) scores on the test split, its LMs run live."""
        test = self.trainer.test_sentences
        if not test:
            return None
        best = self.out / "best-model"
        model = SequenceTagger.load(best, device=self.device) if best.is_dir() else self.tagger
        with storage_mode("none"):
            scores = evaluate_tagger(model, test, LiveEmbeddings(model, test), self.config.eval_batch_size)
        log.info("test:\n%s", scores.table())
        return scores

    def _learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _checkpoint(self, epochs_done: int) -> None:
        """Rank 0 writes it, atomically; no random state: every epoch reseeds from its own number."""
        if not self.ranks.is_main:
            return
        save_checkpoint(
            self.out,
            {
                "epochs_done": epochs_done,
                "model": self.tagger.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "best_score": self.best_score,
                "history": self.history,
                "world_size": self.ranks.world_size,
                "settings": self._resume_settings(),
            },
        )

    def _resume_settings(self) -> dict[str, Any]:
        """What shapes the saved state: resuming with other values cannot load it."""
        shape = {k: v for k, v in self.tagger.hyperparameters().items() if k in _STATE_SHAPING_SETTINGS}
        return {**shape, "embedding_length": self.tagger.embeddings.embedding_length,
                "tags": list(self.tagger.tags.tags), "optimizer": self.config.optimizer}  # fmt: skip

    def _restore(self) -> None:
        """Rank 0 reads the checkpoint and hands it to the others, so only its disk needs to hold it."""
        state = from_main(load_checkpoint(self.out) if self.ranks.is_main else None, self.ranks)
        if state is None:
            log.info("no checkpoint in %s: starting from scratch", self.out)
            return
        path = self.out / CHECKPOINT_NAME
        check_same_settings(path, state.get("settings"), self._resume_settings())
        try:
            self.tagger.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            raise resume_failure(path, error) from error
        self.best_score = state["best_score"]
        self.history = list(state["history"])
        self.start_epoch = state["epochs_done"]
        saved_ranks = state.get("world_size", 1)
        if saved_ranks != self.ranks.world_size:
            log.info(
                "the checkpoint was written by %d ranks, this run has %d: the train split is re-split and "
                "each rank caches its new shard",
                saved_ranks,
                self.ranks.world_size,
            )
        log.info("resuming after epoch %d from %s", self.start_epoch, self.out / CHECKPOINT_NAME)


def _make_optimizer(tagger: SequenceTagger, config: TrainingConfig) -> torch.optim.Optimizer:
    parameters = [p for p in tagger.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
