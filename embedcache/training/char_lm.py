"""Training small forward and backward character language models on the CPU, as Flair does.

The corpus is read once into ``(T, B)`` character ids (:mod:`embedcache.training.char_lm_corpus`); consecutive
``sequence_length`` chunks of a column continue each other, and the detached hidden state is carried from one
chunk to the next (truncated backpropagation through time).

The LM is written twice, atomically: embedcache's ``.safetensors`` + ``.json``
(:func:`~embedcache.embeddings.language_model.save_language_model`) and Flair's ``.pt``
(``LanguageModel.save``), so that ``FlairEmbeddings`` can load the very same LM for side-by-side runs.
``<name>-training.json`` beside them records the configuration and the validation bits per character. The
files are also written at every evaluation, so a run that is stopped early leaves its latest model behind.

Recipes (:mod:`embedcache.training.char_lm_recipe`) build the :class:`CharLMConfig` of each direction.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from flair.data import Dictionary
from flair.models import LanguageModel
from tqdm.auto import tqdm

from embedcache.atomic import atomic_files
from embedcache.embeddings.language_model import save_language_model
from embedcache.training.char_lm_corpus import (
    DOCUMENT_DELIMITER,
    batchify,
    build_char_dictionary,
    corpus_ids,
    read_lines,
    read_text_lines,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CharLMConfig:
    """Everything that decides how one character LM trains (saved in ``<out_path>-training.json``).

    Training stops after ``max_steps`` or ``time_budget_s`` seconds, whichever comes first. The learning rate
    follows a cosine from ``learning_rate`` down to ``final_lr_fraction`` of it over that span.
    """

    text_path: str
    out_path: str
    is_forward: bool = True
    hidden_size: int = 256
    nlayers: int = 1
    embedding_size: int = 100
    dropout: float = 0.1
    min_char_count: int = 10
    sequence_length: int = 250
    batch_size: int = 64
    max_steps: int | None = None
    time_budget_s: float | None = None
    optimizer: Literal["adam", "sgd"] = "adam"
    learning_rate: float = 2e-3
    final_lr_fraction: float = 0.1
    clip: float = 0.25
    validation_fraction: float = 0.01
    eval_every_steps: int = 250
    seed: int = 0
    max_lines: int | None = None
    extra_texts: tuple[str, ...] = ()  # more training text: plain text, or CoNLL-U (its "# text =" lines)
    resume: bool = False  # continue from <out_path>-resume.pt when there is one (see fit_char_lm)

    def __post_init__(self) -> None:
        if self.max_steps is None and self.time_budget_s is None:
            raise ValueError("set max_steps or time_budget_s: training needs an end")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        positive = ("hidden_size", "nlayers", "embedding_size", "sequence_length", "batch_size")
        for name in (*positive, "min_char_count", "eval_every_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.clip <= 0 or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError("learning_rate and clip must be positive and final_lr_fraction in [0, 1]")
        if Path(self.out_path).suffix in (".pt", ".safetensors", ".json"):
            raise ValueError(f"out_path {self.out_path!r} names a file; give the path without a suffix")


@dataclass(frozen=True)
class CharLMResult:
    """A trained LM (decoder kept), where it was written and how well it predicts."""

    lm: LanguageModel
    out_path: Path
    steps: int
    train_chars_seen: int
    seconds: float
    initial_validation_bits_per_char: float
    validation_bits_per_char: float
    finished: bool = True  # False for the saves made during training
    curve: tuple[tuple[int, float, float], ...] = ()  # (step, training seconds, validation bits/char)

    @property
    def validation_perplexity(self) -> float:
        return 2.0**self.validation_bits_per_char


@torch.no_grad()
def validation_loss(lm: LanguageModel, data: torch.Tensor, sequence_length: int) -> float:
    """Mean cross-entropy in nats per predicted character of the ``(T, B)`` ids, state carried through."""
    was_training = lm.training
    lm.eval()
    hidden = lm.init_hidden(data.shape[1])
    total, count = 0.0, 0
    for start in range(0, data.shape[0] - 1, sequence_length):
        inputs = data[start : start + sequence_length]  # (S, B)
        targets = data[start + 1 : start + 1 + sequence_length]  # (S', B), S' = S except at the end
        logits, _, hidden = lm(inputs[: targets.shape[0]], hidden)  # (S', B, V)
        total += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
        count += targets.numel()
    lm.train(was_training)
    return total / count


def _learning_rate(config: CharLMConfig, progress: float) -> float:
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return config.learning_rate * (config.final_lr_fraction + (1.0 - config.final_lr_fraction) * cosine)


def _progress(config: CharLMConfig, step: int, elapsed_s: float) -> float:
    """How far training is through its end condition, in [0, 1]."""
    by_steps = step / config.max_steps if config.max_steps is not None else 0.0
    by_time = elapsed_s / config.time_budget_s if config.time_budget_s is not None else 0.0
    return max(by_steps, by_time)


def prepare_corpus(config: CharLMConfig) -> tuple[Dictionary, torch.Tensor, torch.Tensor]:
    """The dictionary (from the train lines) and the ``(T, B)`` train and validation ids of the text."""
    lines = read_lines(config.text_path, config.max_lines)
    n_validation = max(1, round(len(lines) * config.validation_fraction))
    if len(lines) - n_validation < 1:
        raise ValueError(f"{config.text_path}: {len(lines)} non-empty lines are too few to train on")
    train_lines, validation_lines = lines[:-n_validation], lines[-n_validation:]
    for extra in config.extra_texts:  # training text only: validation stays on the main text
        train_lines += read_text_lines(extra)
    dictionary = build_char_dictionary(train_lines, config.min_char_count)
    train_ids = corpus_ids(train_lines, dictionary, config.is_forward)
    validation_ids = corpus_ids(validation_lines, dictionary, config.is_forward)
    log.info(
        "%s LM: %d characters in the dictionary, %d train / %d validation lines, %d / %d characters",
        "forward" if config.is_forward else "backward", len(dictionary), len(train_lines),
        len(validation_lines), train_ids.numel(), validation_ids.numel(),
    )  # fmt: skip
    # A small validation text still gets at least 8 characters per column.
    validation_columns = max(1, min(config.batch_size, validation_ids.numel() // 8))
    return dictionary, batchify(train_ids, config.batch_size), batchify(validation_ids, validation_columns)


@dataclass
class TrainingState:
    """Where a run is: enough, with the weights and the optimiser, to continue it exactly where it stopped.

    Written to ``<out_path>-resume.pt`` at every evaluation (tensors, numbers and strings only, so it loads
    with ``torch.load(weights_only=True)``); :func:`fit_char_lm` with ``resume=True`` continues from it.
    """

    step: int = 0
    position: int = 0  # the next row of the (T, B) training ids
    chars_seen: int = 0
    elapsed_s: float = 0.0  # training seconds before this process: a time budget spans the resumed runs
    hidden: tuple[torch.Tensor, ...] | None = None
    initial_bits: float = math.nan
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (step, seconds, validation bits)


def _optimizer(lm: LanguageModel, config: CharLMConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(lm.parameters(), lr=config.learning_rate)
    return torch.optim.SGD(lm.parameters(), lr=config.learning_rate)


def _train_steps(
    lm: LanguageModel, optimizer: torch.optim.Optimizer, train_data: torch.Tensor,
    validation_data: torch.Tensor, config: CharLMConfig, state: TrainingState, progress: bool,
    on_evaluation: Callable[[TrainingState, float], object],
) -> None:  # fmt: skip
    """Optimiser steps over ``(T, B)`` ids from ``state`` until the end condition, updating ``state``.

    Every ``eval_every_steps`` steps the validation bits per character are measured and passed, with the
    state, to ``on_evaluation``.
    """
    lm.train()
    started = time.monotonic() - state.elapsed_s
    hidden = state.hidden if state.hidden is not None else lm.init_hidden(config.batch_size)
    running_loss, steps_here = 0.0, 0
    bar = tqdm(total=config.max_steps, initial=state.step, unit="step", disable=not progress, desc="char LM",
               mininterval=5)  # fmt: skip
    while (done := _progress(config, state.step, time.monotonic() - started)) < 1.0:
        if state.position >= train_data.shape[0] - 1:  # end of an epoch: start over from a zero state
            state.position, hidden = 0, lm.init_hidden(config.batch_size)
        targets = train_data[state.position + 1 : state.position + 1 + config.sequence_length]  # (S, B)
        inputs = train_data[state.position : state.position + targets.shape[0]]  # (S, B)
        lr = _learning_rate(config, done)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits, _, hidden = lm(inputs, hidden)  # (S, B, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), config.clip)
        optimizer.step()
        hidden = tuple(h.detach() for h in hidden)  # truncate backpropagation here
        state.position += targets.shape[0]
        state.chars_seen += targets.numel()
        state.step += 1
        steps_here += 1
        running_loss += loss.item()
        bar.update(1)
        if state.step % config.eval_every_steps == 0:
            state.elapsed_s, state.hidden = time.monotonic() - started, hidden
            bits = validation_loss(lm, validation_data, config.sequence_length) / math.log(2)
            log.info(
                "step %d: train %.3f, validation %.3f bits/char, lr %.2g, %.0f chars/s",
                state.step, running_loss / steps_here / math.log(2), bits, lr,
                state.chars_seen / state.elapsed_s,
            )  # fmt: skip
            bar.set_postfix(val_bpc=f"{bits:.3f}")
            running_loss, steps_here = 0.0, 0
            on_evaluation(state, bits)
    bar.close()
    state.elapsed_s, state.hidden = time.monotonic() - started, hidden
    lm.eval()


def fit_char_lm(config: CharLMConfig, progress: bool = True) -> CharLMResult:
    """Train one character LM as ``config`` says and write it (see the module docstring).

    With ``config.resume``, a run continues from ``<out_path>-resume.pt`` (weights, optimiser, schedule, data
    position, carried state and random state) if one is there, else it starts afresh. Only the end condition
    (``max_steps``, ``time_budget_s``) and ``eval_every_steps`` may differ from the saved run's settings.
    """
    dictionary, train_data, validation_data = prepare_corpus(config)
    torch.manual_seed(config.seed)
    lm = LanguageModel(
        dictionary, config.is_forward, config.hidden_size, config.nlayers, config.embedding_size,
        document_delimiter=DOCUMENT_DELIMITER, dropout=config.dropout, has_decoder=True,
    )  # fmt: skip
    lm.cpu()  # Flair puts new modules on flair.device; training runs on the CPU (and _apply returns None)
    optimizer = _optimizer(lm, config)
    state = TrainingState()
    if config.resume and resume_path(config).exists():
        state = load_training_state(config, lm, optimizer)
        log.info("resumed %s at step %d (%.0f s trained)", resume_path(config), state.step, state.elapsed_s)
    else:
        state.initial_bits = validation_loss(lm, validation_data, config.sequence_length) / math.log(2)
        log.info("validation before training: %.3f bits/char", state.initial_bits)

    def save(state: TrainingState, bits: float, finished: bool = False) -> CharLMResult:
        state.curve.append((state.step, round(state.elapsed_s, 1), bits))
        result = CharLMResult(
            lm, Path(config.out_path), state.step, state.chars_seen, state.elapsed_s, state.initial_bits,
            bits, finished, tuple(state.curve),
        )  # fmt: skip
        save_trained_lm(result, config, training_state(config, lm, optimizer, state))
        return result

    # A save at every evaluation: a run that is killed still leaves its latest model, complete and loadable,
    # and the state to continue it from.
    _train_steps(lm, optimizer, train_data, validation_data, config, state, progress, save)
    bits = validation_loss(lm, validation_data, config.sequence_length) / math.log(2)
    result = save(state, bits, finished=True)
    log.info(
        "%s: %d steps (%.2f epochs) in %.0f s, validation %.3f bits/char (perplexity %.2f)",
        config.out_path, state.step, state.chars_seen / train_data.numel(), state.elapsed_s,
        result.validation_bits_per_char, result.validation_perplexity,
    )  # fmt: skip
    return result


# Settings a resumed run may change: when it ends and how often it reports.
_RESUMABLE_CHANGES = frozenset({"max_steps", "time_budget_s", "eval_every_steps", "resume"})


def resume_path(config: CharLMConfig) -> Path:
    return Path(f"{config.out_path}-resume.pt")


def training_state(
    config: CharLMConfig, lm: LanguageModel, optimizer: torch.optim.Optimizer, state: TrainingState
) -> dict[str, Any]:
    """What :func:`load_training_state` needs, as plain tensors, numbers and strings (no pickled objects)."""
    return {
        "config": json.dumps(asdict(config), sort_keys=True),
        "lm": lm.state_dict(),
        "optimizer": optimizer.state_dict(),
        "progress": [state.step, state.position, state.chars_seen],
        "elapsed_s": state.elapsed_s,
        "initial_bits": state.initial_bits,
        "curve": torch.tensor(state.curve, dtype=torch.float64).reshape(-1, 3),
        "hidden": list(state.hidden) if state.hidden is not None else [],
        "rng": torch.get_rng_state(),
    }


def load_training_state(
    config: CharLMConfig, lm: LanguageModel, optimizer: torch.optim.Optimizer
) -> TrainingState:
    """Restore ``lm``, ``optimizer`` and the random state from ``<out_path>-resume.pt``; the run's state."""
    path = resume_path(config)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    saved_config, current = json.loads(saved["config"]), json.loads(json.dumps(asdict(config)))
    changed = sorted(k for k in current if saved_config.get(k) != current[k] and k not in _RESUMABLE_CHANGES)
    if changed:
        raise ValueError(
            f"{path}: cannot resume, the run was started with other settings ({', '.join(changed)}); "
            f"change only {', '.join(sorted(_RESUMABLE_CHANGES))}, or train into another out_dir"
        )
    lm.load_state_dict(saved["lm"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    step, position, chars_seen = saved["progress"]
    curve = [(int(step), seconds, bits) for step, seconds, bits in saved["curve"].tolist()]
    hidden = tuple(saved["hidden"]) or None
    return TrainingState(step, position, chars_seen, saved["elapsed_s"], hidden, saved["initial_bits"], curve)


def save_trained_lm(result: CharLMResult, config: CharLMConfig, state: dict[str, Any] | None = None) -> None:
    """Write ``.safetensors``, ``.json``, ``.pt``, ``-training.json`` (and ``-resume.pt`` from ``state``).

    All files are staged in a temporary folder beside the target and renamed into place; the ``.json`` that
    :func:`load_language_model` reads first is renamed last.
    """
    out = Path(config.out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "config": asdict(config),
        "characters": len(result.lm.dictionary),
        "steps": result.steps,
        "train_chars_seen": result.train_chars_seen,
        "seconds": round(result.seconds, 1),
        "initial_validation_bits_per_char": result.initial_validation_bits_per_char,
        "validation_bits_per_char": result.validation_bits_per_char,
        "validation_perplexity": result.validation_perplexity,
        "finished": result.finished,
        "validation_curve": [{"step": s, "seconds": t, "bits_per_char": b} for s, t, b in result.curve],
    }
    with atomic_files(out.parent, last=out.with_suffix(".json").name) as staging:
        staged = staging / out.name
        save_language_model(result.lm, staged)
        result.lm.save(staged.with_suffix(".pt"))
        report = staged.with_name(f"{out.name}-training.json")
        report.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        if state is not None:
            torch.save(state, staging / resume_path(config).name)
