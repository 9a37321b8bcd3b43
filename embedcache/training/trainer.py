"""The training loop: storage modes, optimiser and annealing, evaluation, checkpoints and resume.

With static embeddings and ``cpu``/``gpu``/``disk`` storage, every token of train and dev is embedded once
into an :class:`~embedcache.cache.EmbeddingCache`; later epochs never run the LMs and only gather
mini-batches from the store. ``none`` storage runs the embedders for every batch of every epoch.

Under ``torchrun`` the same loop runs on every rank, each on its own shard of the train split; see
:mod:`embedcache.training.distributed` for what is shared, what is rank 0's alone, and how failures surface.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from tqdm.auto import tqdm

from embedcache.cache import EmbeddingCache, estimate
from embedcache.cache.budget import choose_placement
from embedcache.data.corpus import Corpus
from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger
from embedcache.inference.writers import AtomicFile
from embedcache.lazy_imports import is_instance_of
from embedcache.models.backends import use_backend
from embedcache.models.serialization import check_saveable
from embedcache.settings import storage_mode
from embedcache.training.batches import (
    BatchSource,
    GoldTags,
    LiveEmbeddings,
    length_sorted_batches,
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
from embedcache.training.distributed import (
    DEFAULT_TIMEOUT_S,
    Backend,
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
from embedcache.training.evaluation import Scores, evaluate_tags

if TYPE_CHECKING:  # a Flair corpus exists only where Flair is imported already
    from flair.data import Corpus as FlairCorpus

log = logging.getLogger(__name__)

TrainingStorage = Literal["none", "cpu", "gpu", "disk"]
# Tagger settings that change the shapes of its weights (the others, such as dropout, may change on resume).
_STATE_SHAPING_SETTINGS = ("hidden_size", "rnn_layers", "use_rnn", "use_crf", "reproject_embeddings")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides how a run trains (saved in ``out_dir/training.json``)."""

    storage_mode: TrainingStorage = "cpu"
    max_epochs: int = 10
    mini_batch_size: int = 32  # sentences per backward pass on each rank
    accumulate_steps: int = 1  # backward passes per optimiser step
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
    cache_int8: bool = False  # build the cache with int8 LMs on ONNX Runtime: faster, vectors ~1% off
    memory_budget_bytes: int | None = None
    on_over_budget: Literal["error", "fallback"] = "error"
    progress: bool = True
    distributed_backend: Backend = "auto"
    distributed_timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.storage_mode not in ("none", "cpu", "gpu", "disk"):
            raise ValueError(
                f"storage_mode must be 'none', 'cpu', 'gpu' or 'disk', got {self.storage_mode!r}"
            )
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.max_epochs < 1 or self.mini_batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("max_epochs, mini_batch_size and eval_batch_size must be at least 1")
        if self.accumulate_steps < 1:
            raise ValueError(f"accumulate_steps must be at least 1, got {self.accumulate_steps}")
        if self.distributed_backend not in ("auto", "nccl", "gloo"):
            raise ValueError(
                f"distributed_backend must be 'auto', 'nccl' or 'gloo', got {self.distributed_backend!r}"
            )
        if self.distributed_timeout_s <= 0:
            raise ValueError(f"distributed_timeout_s must be positive, got {self.distributed_timeout_s}")
        if self.cache_int8 and self.storage_mode == "none":
            raise ValueError("cache_int8 builds the embedding cache; storage_mode 'none' keeps none")
        budget = self.memory_budget_bytes
        if budget is not None and (type(budget) is not int or budget < 0):
            raise ValueError(
                f"memory_budget_bytes must be a non-negative int of bytes or unset, got {budget!r}"
            )


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
        check_saveable(tagger)  # training saves best-model and final-model: refuse now, not after an epoch
        self.tagger = tagger
        self.corpus = (
            Corpus.from_flair(corpus, tagger.tag_type)  # type: ignore[arg-type]
            if is_instance_of(corpus, "flair.data", "Corpus")
            else corpus
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
        cache_int8: bool = False,
        resume: bool = False,
        device: str | torch.device | None = None,
        progress: bool = True,
        memory_budget_bytes: int | None = None,
        on_over_budget: Literal["error", "fallback"] = "error",
        shuffle: bool = True,
        accumulate_steps: int = 1,
        distributed_backend: Backend = "auto",
        distributed_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> TrainingResult:
        """Train, keep ``out_dir/best-model`` (by dev score) and ``out_dir/final-model``, test the best.

        Writes ``results.json``, ``results.txt`` (readable tables), ``loss.tsv`` (one row per epoch),
        ``training.log`` and ``checkpoint.pt`` (after every epoch; ``resume=True`` continues from it).

        The loss is summed over the sentences of an optimiser step, as Flair's, so ``learning_rate`` applies
        to the gradient of the sum over the *effective batch* of ``mini_batch_size × accumulate_steps ×
        ranks`` sentences; keep that product to keep a run's meaning when the number of ranks changes.

        ``cache_int8`` (CPU, cached storage modes) builds the train and dev caches with the char LMs
        quantised to int8 on ONNX Runtime (:mod:`embedcache.models.backends`): epoch 1 runs faster, the cached
        vectors are ~1% off torch's fp32 ones; the final test runs the LMs in torch, fp32.

        ``seed`` decides the shuffling and dropout of every epoch; the initial weights are drawn when the
        tagger is built, so build it under ``torch.manual_seed`` for a run that repeats bit for bit (a recipe,
        :func:`embedcache.recipes.train_tagger`, builds it from the same seed).

        Launched by ``torchrun`` with more than one process, each rank trains on its shard of the train split
        (``distributed_backend``: ``auto`` is ``nccl`` on CUDA, ``gloo`` on the CPU); rank 0 evaluates and
        writes the files above (other ranks log to ``training-rankR.log``). A collective that fails or waits
        longer than ``distributed_timeout_s`` raises
        :class:`~embedcache.training.distributed.LostRankError`.

        Raises:
            CheckpointError: ``resume=True`` and ``checkpoint.pt`` is damaged or was written with another
                network shape, tag set or optimizer (the message lists the settings that differ).
        """
        config = TrainingConfig(
            storage_mode=storage_mode, max_epochs=max_epochs, mini_batch_size=mini_batch_size,
            accumulate_steps=accumulate_steps, learning_rate=learning_rate, optimizer=optimizer,
            patience=patience, anneal_factor=anneal_factor, min_learning_rate=min_learning_rate, clip=clip,
            seed=seed, shuffle=shuffle, cache_dtype=cache_dtype,
            cache_dir=None if cache_dir is None else str(cache_dir), cache_int8=cache_int8, progress=progress,
            memory_budget_bytes=memory_budget_bytes, on_over_budget=on_over_budget,
            distributed_backend=distributed_backend, distributed_timeout_s=distributed_timeout_s,
        )  # fmt: skip
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        compute_device = _resolve_device(device)
        with process_group(compute_device, distributed_backend, distributed_timeout_s) as ranks:
            log_name = "training.log" if ranks.is_main else f"training-rank{ranks.rank}.log"
            handler = logging.FileHandler(out / log_name, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            package_log = logging.getLogger("embedcache")
            package_log.addHandler(handler)
            try:
                run = _Run(self, config, out, rank_device(compute_device, ranks.local_rank), ranks)
                try:
                    with reporting_lost_ranks(ranks, str(out / CHECKPOINT_NAME)):
                        return run.execute(resume)
                finally:
                    run.drop_data_parallel()
            finally:
                package_log.removeHandler(handler)
                handler.close()


class _TaggerLoss(torch.nn.Module):
    """The tagger's summed loss as a module's ``forward``: what DistributedDataParallel wraps and hooks."""

    def __init__(self, tagger: SequenceTagger) -> None:
        super().__init__()
        self.tagger = tagger

    def forward(self, padded: torch.Tensor, lengths: torch.Tensor, tag_ids: torch.Tensor) -> torch.Tensor:
        return self.tagger.loss(padded, lengths, tag_ids)


class _Run:
    """One call of :meth:`Trainer.train`: the state that lives for its duration."""

    def __init__(
        self, trainer: Trainer, config: TrainingConfig, out: Path, device: torch.device, ranks: RankInfo
    ) -> None:
        self.trainer, self.config, self.out, self.device, self.ranks = trainer, config, out, device, ranks
        self.progress = config.progress and ranks.is_main
        self.tagger = trainer.tagger.to(device)
        self.mode = config.storage_mode
        if self.mode != "none" and not self.tagger.embeddings.is_static:
            log.warning("fine-tuned embeddings change every step and are never cached: using storage 'none'")
            self.mode = "none"
        self.shard = shard_ids(len(trainer.train_sentences), ranks)  # positions in the train split
        self.train_sentences = [trainer.train_sentences[i] for i in self.shard]
        self.optimizer = _make_optimizer(self.tagger, config)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.anneal_factor, patience=config.patience
        )
        self.gold = GoldTags(self.train_sentences, self.tagger.tags)
        self.model: torch.nn.Module = _TaggerLoss(self.tagger)
        self.history: list[dict[str, float]] = []
        self.best_score = float("-inf")
        self.start_epoch = 0

    def execute(self, resume: bool) -> TrainingResult:
        if self.ranks.is_main:
            settings = json.dumps(asdict(self.config), indent=1)
            _write_atomically(self.out / "training.json", settings)
        if resume:
            self._restore()
        if self.ranks.is_distributed:
            log.info(
                "%s: training on %d of %d sentences",
                self.ranks,
                len(self.shard),
                len(self.trainer.train_sentences),
            )
            self.model = wrap_for_data_parallel(
                self.model, _static_state_names(self.tagger), some_unused=not self.tagger.embeddings.is_static
            )
        evaluates = bool(self.trainer.dev_sentences) and self.ranks.is_main
        cached_splits = [self.train_sentences, *([self.trainer.dev_sentences] if evaluates else [])]
        self._fit_budget(cached_splits)
        global_mode = "cpu" if self.mode == "disk" else self.mode
        with storage_mode(global_mode):  # type: ignore[arg-type]
            train_source = self._source(self.train_sentences, "train")
            dev_source = self._source(self.trainer.dev_sentences, "dev") if evaluates else None
            epoch = self.start_epoch
            for epoch in range(self.start_epoch, self.config.max_epochs):
                if self._learning_rate() < self.config.min_learning_rate:
                    log.info("learning rate %.2g below the minimum: stopping", self._learning_rate())
                    break
                self._run_epoch(epoch, train_source, dev_source)
            else:
                epoch = self.config.max_epochs
            if self.ranks.is_main:
                self.tagger.save(self.out / "final-model")
            test_scores = from_main(self._final_test() if self.ranks.is_main else None, self.ranks)
        if self.ranks.is_main:
            self._write_results(test_scores)
        return TrainingResult(self.best_score, test_scores, epoch, self.history)

    def drop_data_parallel(self) -> None:
        """Free the DDP wrapper now: its reducer holds the process group, and a group destroyed while still
        held is torn down later by a destructor that can wait forever on a peer that has already exited."""
        self.model = _TaggerLoss(self.tagger)

    def _fit_budget(self, splits: Sequence[Sequence[TaggedSentence]]) -> None:
        """Decide the placement of all this rank's caches together, before any LM runs.

        The budget covers the train and dev stores at once (each alone could fit while both do not); over
        it, ``on_over_budget`` fails now with the arithmetic or falls back to a slower placement.
        """
        if self.mode == "none" or self.config.memory_budget_bytes is None:
            return
        dtype = getattr(torch, self.config.cache_dtype)
        needed = sum(estimate(split, self.tagger.embeddings, dtype) for split in splits)
        self.mode = choose_placement(
            self.mode, needed, self.config.memory_budget_bytes, self.config.on_over_budget
        )

    def _source(self, sentences: Sequence[TaggedSentence], split: str) -> BatchSource:
        if self.mode == "none":
            return LiveEmbeddings(self.tagger, sentences)
        cache_dir = self.config.cache_dir
        log.info(
            "caching the %s split's embeddings (%s storage, %s)", split, self.mode, self.config.cache_dtype
        )
        if self.config.cache_int8:
            use_backend(self.tagger, "onnx", int8=True)  # the fingerprints, and so the cache keys, say int8
        try:
            return EmbeddingCache.build(
                sentences,
                self.tagger.embeddings,
                placement=self.mode,
                dtype=getattr(torch, self.config.cache_dtype),
                path=cache_dir,
                device=self.device,
                progress=self.progress,
            )
        finally:
            if self.config.cache_int8:
                use_backend(self.tagger, "torch")

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
        total_loss, total_tokens = 0.0, 0
        bar = tqdm(steps, desc=f"epoch {epoch + 1}", unit="step", disable=not self.progress)
        for step in bar:
            loss, tokens = self._optimizer_step(train, step)
            total_loss += loss
            total_tokens += tokens
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(
                loss=f"{total_loss / max(total_tokens, 1):.4f}", tokens_per_s=f"{total_tokens / elapsed:.0f}"
            )
        total_loss, total_tokens = sum_across_ranks([total_loss, total_tokens], self.ranks)
        # Rank 0 evaluates; every rank then steps its scheduler and keeps its best score with rank 0's
        # numbers, so all agree on annealing and on stopping.
        outcome = (
            self._epoch_outcome(epoch, total_loss, total_tokens, dev, started) if self.ranks.is_main else None
        )
        record, score = from_main(outcome, self.ranks)
        self.scheduler.step(score)
        self.history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        if score > self.best_score:
            self.best_score = score
            if self.ranks.is_main:
                self.tagger.save(self.out / "best-model")
        self._checkpoint(epoch + 1)

    def _optimizer_step(self, train: BatchSource, step: list[tuple[list[int], float]]) -> tuple[float, int]:
        """Accumulate the gradients of ``step``'s mini-batches, all-reduce them once, and update.

        Returns the step's summed loss and its number of tokens on this rank.
        """
        self.optimizer.zero_grad(set_to_none=True)
        step_loss, step_tokens = 0.0, 0
        for index, (ids, weight) in enumerate(step):
            padded, lengths = train.batch(ids)
            with self._gradient_sync(last=index == len(step) - 1):
                loss = self.model(padded, lengths, self.gold.batch(ids))
                # DDP averages gradients over ranks: scaling by their number makes that average a sum.
                (loss * (weight * self.ranks.world_size)).backward()
            step_loss += weight * loss.item()
            step_tokens += int(lengths.sum()) if weight else 0
        if self.config.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.tagger.parameters(), self.config.clip)
        self.optimizer.step()
        return step_loss, step_tokens

    def _gradient_sync(self, last: bool) -> contextlib.AbstractContextManager[None]:
        """DDP all-reduces in the backward pass of the step's last mini-batch only."""
        if last or not self.ranks.is_distributed:
            return contextlib.nullcontext()
        return self.model.no_sync()  # type: ignore[operator]

    def _epoch_outcome(
        self, epoch: int, total_loss: float, total_tokens: float, dev: BatchSource | None, started: float
    ) -> tuple[dict[str, float], float]:
        """The epoch's record and the score that anneals and selects (dev score, else minus train loss)."""
        dev_scores = self.evaluate(self.trainer.dev_sentences, dev) if dev is not None else None
        record = {
            "epoch": epoch + 1,
            "learning_rate": self._learning_rate(),
            "train_loss": total_loss / max(total_tokens, 1),
            "dev_score": dev_scores.main_score if dev_scores else float("nan"),
            "seconds": time.perf_counter() - started,
        }
        return record, dev_scores.main_score if dev_scores else -total_loss

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

    def _write_results(self, test: Scores | None) -> None:
        results: dict[str, Any] = {
            "best_dev_score": self.best_score,
            "test": test.to_json() if test else None,
            "history": self.history,
        }
        _write_atomically(self.out / "results.json", json.dumps(results, indent=1))
        lines = ["epoch\tlearning_rate\ttrain_loss\tdev_score\tseconds"]
        lines += [
            f"{r['epoch']}\t{r['learning_rate']:.6g}\t{r['train_loss']:.6f}\t{r['dev_score']:.6f}\t{r['seconds']:.2f}"
            for r in self.history
        ]
        _write_atomically(self.out / "loss.tsv", "\n".join(lines) + "\n")
        _write_atomically(
            self.out / "results.txt",
            f"best dev score {self.best_score:.4f}\n\ntest\n{test.table() if test else '(no test split)'}\n",
        )


def _write_atomically(path: Path, text: str) -> None:
    """Readers of ``out_dir`` see a whole file or the previous one, even if training is killed mid-write."""
    with AtomicFile(path) as out:
        out.stream.write(text)
        out.commit()


def _make_optimizer(tagger: SequenceTagger, config: TrainingConfig) -> torch.optim.Optimizer:
    parameters = [p for p in tagger.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def _static_state_names(tagger: SequenceTagger) -> list[str]:
    """Names (in a :class:`_TaggerLoss`) that DDP should neither broadcast nor reduce: every buffer (word
    vectors) and, unless they are fine-tuned, the embedders' parameters, which get no gradient."""
    names = [f"tagger.{name}" for name, _ in tagger.named_buffers()]
    if tagger.embeddings.is_static:
        names += [f"tagger.embeddings.{name}" for name, _ in tagger.embeddings.named_parameters()]
    return names


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
