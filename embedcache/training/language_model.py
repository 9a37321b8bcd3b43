"""Training small forward and backward character language models on the CPU, as Flair does.

The corpus is read once: every non-empty line followed by the document delimiter ``"\\n"`` (Flair's
``TextDataset``), converted to character ids with one vectorised lookup. A backward LM reads the whole text
reversed. The ids are split batch-major: column ``b`` of the ``(T, B)`` tensor is the ``b``-th contiguous
``1/B`` of the corpus, so consecutive ``sequence_length`` chunks of a column continue each other and the
detached hidden state is carried from one chunk to the next (truncated backpropagation through time).

The LM is written twice, atomically: embedcache's ``.safetensors`` + ``.json``
(:func:`~embedcache.embeddings.language_model.save_language_model`) and Flair's ``.pt``
(``LanguageModel.save``), so that ``FlairEmbeddings`` can load the very same LM for side-by-side runs.
``<name>-training.json`` beside them records the configuration and the validation bits per character. The
files are also written at every evaluation, so a run that is stopped early leaves its latest model behind.

Example:
    python -m embedcache.training.language_model recipes/charlm.toml direction=forward smoke=true
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

import torch
import torch.nn.functional as F
from flair.data import Dictionary
from flair.models import LanguageModel
from tqdm.auto import tqdm

from embedcache.atomic import atomic_files
from embedcache.data.datasets import data_root
from embedcache.embeddings.chars import CharIndex
from embedcache.embeddings.language_model import save_language_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

DOCUMENT_DELIMITER = "\n"


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


def build_char_dictionary(text_lines: Iterable[str], min_count: int = 10) -> Dictionary:
    """A Flair character dictionary: ``<unk>`` (id 0), ``" "``, ``"\\n"``, then characters by frequency.

    Characters seen fewer than ``min_count`` times are left out (they read as ``<unk>``); ties in frequency
    are broken by code point, so the same text always gives the same ids.
    """
    counts: Counter[str] = Counter()
    for line in text_lines:
        counts.update(line)
    dictionary = Dictionary(add_unk=True)
    for character in (" ", DOCUMENT_DELIMITER):
        dictionary.add_item(character)
    for character, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count >= min_count:
            dictionary.add_item(character)  # " " and "\n" again are no-ops
    return dictionary


def read_lines(text_path: str | Path, max_lines: int | None = None) -> list[str]:
    """The non-empty lines of a UTF-8 file (Flair skips empty documents too), at most ``max_lines``."""
    lines: list[str] = []
    with Path(text_path).open(encoding="utf-8") as text:
        for line in text:
            if max_lines is not None and len(lines) >= max_lines:
                break
            line = line.rstrip("\n")
            if line:
                lines.append(line)
    return lines


def read_text_lines(path: str | Path) -> list[str]:
    """The sentences of a CoNLL-U file (its ``# text =`` comments), or the non-empty lines of a text file."""
    if Path(path).suffix != ".conllu":
        return read_lines(path)
    prefix = "# text = "
    with Path(path).open(encoding="utf-8") as conllu:
        return [line[len(prefix) :].rstrip("\n") for line in conllu if line.startswith(prefix)]


def corpus_ids(lines: Sequence[str], dictionary: Dictionary, is_forward: bool) -> torch.Tensor:
    """``(n_chars,)`` int64 ids of the lines, each ended by the delimiter; reversed for a backward LM."""
    text = "".join(line + DOCUMENT_DELIMITER for line in lines)
    return torch.from_numpy(CharIndex(dictionary).ids_of(text if is_forward else text[::-1]))


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``(T, batch_size)``: column ``b`` is the ``b``-th contiguous slice of ``ids``; the remainder is cut."""
    steps = ids.numel() // batch_size
    if steps < 2:
        raise ValueError(f"{ids.numel()} characters are too few for batch_size={batch_size}")
    return ids[: steps * batch_size].view(batch_size, steps).t().contiguous()  # (T, B)


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
    on_evaluation: Callable[[TrainingState, float], None],
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


def train_char_lm(
    text_path: str | Path,
    *,
    is_forward: bool,
    out_path: str | Path,
    hidden_size: int = 256,
    nlayers: int = 1,
    embedding_size: int = 100,
    sequence_length: int = 250,
    batch_size: int = 64,
    max_steps: int | None = None,
    time_budget_s: float | None = None,
    learning_rate: float = 2e-3,
    optimizer: Literal["adam", "sgd"] = "adam",
    seed: int = 0,
    max_lines: int | None = None,
    progress: bool = True,
) -> LanguageModel:
    """Train a forward or backward character LM on a text file and write it to ``out_path`` (no suffix).

    Writes ``out_path.safetensors`` + ``out_path.json`` (load with ``load_language_model``), Flair's
    ``out_path.pt`` and ``out_path-training.json``. Other settings: :class:`CharLMConfig` and
    :func:`fit_char_lm`.

    Example:
        >>> train_char_lm("posts.txt", is_forward=False, out_path="out/bwd", max_steps=2000)  # doctest: +SKIP
    """
    config = CharLMConfig(
        text_path=str(text_path), out_path=str(out_path), is_forward=is_forward, hidden_size=hidden_size,
        nlayers=nlayers, embedding_size=embedding_size, sequence_length=sequence_length,
        batch_size=batch_size, max_steps=max_steps, time_budget_s=time_budget_s,
        learning_rate=learning_rate, optimizer=optimizer, seed=seed, max_lines=max_lines,
    )  # fmt: skip
    return fit_char_lm(config, progress=progress).lm


# --- recipes -------------------------------------------------------------------------------------------

DIRECTIONS = ("forward", "backward")
_RECIPE_ONLY_KEYS = {"text": str, "out_dir": str, "threads": int, "name": str}
_SMOKE = {"max_lines": 2000, "max_steps": 30, "time_budget_s": None, "hidden_size": 32,
          "embedding_size": 16, "sequence_length": 50, "batch_size": 16, "eval_every_steps": 10}  # fmt: skip
_CONFIG_TYPES = get_type_hints(CharLMConfig)
_TRAINING_KEYS = {f.name for f in fields(CharLMConfig)} - {"text_path", "out_path", "is_forward"}


def _key_location(path: Path, key: str, section: str | None) -> str:
    """``file:line`` of the assignment to ``key`` in ``[section]`` (``None``: top level) of a TOML file."""
    current, pattern = None, re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
        elif current == section and pattern.match(line):
            return f"{path}:{number}"
    return str(path)


def _checked(key: str, value: Any, where: str) -> Any:
    """``value`` if it fits ``key``'s type (ints are accepted for floats), else a ValueError naming both."""
    if key in _RECIPE_ONLY_KEYS:
        expected: Any = _RECIPE_ONLY_KEYS[key]
    elif key in _TRAINING_KEYS:
        expected = _CONFIG_TYPES[key]
    else:
        known = ", ".join(sorted(_TRAINING_KEYS | set(_RECIPE_ONLY_KEYS)))
        raise ValueError(f"{where}: unknown key {key!r}; known keys: {known}")
    if getattr(expected, "__origin__", None) is tuple:  # a TOML array of strings
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ValueError(f"{where}: {key} = {value!r} is not a list of strings")
    options = get_args(expected) or (expected,)
    if value is None and type(None) in options:
        return None
    if getattr(expected, "__origin__", None) is Literal:
        if value in options:
            return value
    elif float in options and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    elif any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in options):
        return value
    raise ValueError(f"{where}: {key} = {value!r} is not of type {expected}")


def _parse_value(raw: str) -> Any:
    """A command-line value read as TOML (``30``, ``true``, ``2e-3``, ``"x"``); ``none`` unsets."""
    if raw.strip().lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string such as a path


def recipe_configs(
    path: str | Path, overrides: dict[str, str] | None = None
) -> tuple[list[CharLMConfig], int]:
    """The LM configurations a recipe asks for, and its ``threads``, after ``key=value`` overrides.

    Top-level keys apply to every direction; a ``[forward]`` or ``[backward]`` table holds the settings of
    one direction, and its presence asks for that direction. ``text`` is relative to ``$EMBEDCACHE_DATA``.
    Overrides take ``key`` or ``forward.key``; ``direction=forward`` trains one direction; ``smoke=true``
    makes a tiny run (2,000 lines, 30 steps, hidden 32) under ``<out_dir>/smoke``.
    """
    path = Path(path)
    try:
        recipe = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: invalid TOML: {error}") from error
    sections = {d: recipe.pop(d) for d in DIRECTIONS if isinstance(recipe.get(d), dict)}
    shared = {k: _checked(k, v, f"{_key_location(path, k, None)} (top level)") for k, v in recipe.items()}
    per_direction = {
        d: {k: _checked(k, v, f"{_key_location(path, k, d)} [{d}]") for k, v in section.items()}
        for d, section in sections.items()
    }
    overrides = dict(overrides or {})
    smoke = _parse_value(overrides.pop("smoke", "false"))
    if not isinstance(smoke, bool):
        raise ValueError(f"override smoke={smoke} for {path}: expected smoke=true or smoke=false")
    wanted = overrides.pop("direction", None)
    if wanted is not None and wanted not in per_direction:
        raise ValueError(f"{path}: direction={wanted!r}, but the recipe has [{'], ['.join(per_direction)}]")
    # The smoke settings first, so that explicit overrides still win over them.
    assignments = [(key, value, "smoke=true") for key, value in _SMOKE.items()] if smoke else []
    assignments += [
        (item, _parse_value(raw), f"override {item}={raw} for {path}") for item, raw in overrides.items()
    ]
    for item, value, where in assignments:
        direction, _, key = item.rpartition(".")
        if direction and direction not in per_direction:
            raise ValueError(f"{where}: no [{direction}] table in the recipe")
        value = _checked(key, value, where)
        for target in [per_direction[direction]] if direction else [shared, *per_direction.values()]:
            target[key] = value

    configs = []
    for direction in [wanted] if wanted else list(per_direction):
        settings = {**shared, **per_direction[direction]}
        if "text" not in settings:
            raise ValueError(f"{path}: no 'text' (the training text, relative to $EMBEDCACHE_DATA)")
        out_dir, name = Path(settings.pop("out_dir", "out/charlm")), settings.pop("name", direction)
        text = Path(settings.pop("text"))
        settings.pop("threads", None)
        extra = [Path(p) for p in settings.pop("extra_texts", ())]
        settings["extra_texts"] = tuple(str(p if p.is_absolute() else data_root() / p) for p in extra)
        try:
            config = CharLMConfig(
                text_path=str(text if text.is_absolute() else data_root() / text),
                out_path=str(out_dir / "smoke" / name if smoke else out_dir / name),
                is_forward=direction == "forward",
                **settings,
            )
        except ValueError as error:
            raise ValueError(f"{path} [{direction}]: {error}") from error
        configs.append(config)
    if not configs:
        raise ValueError(f"{path}: no [forward] or [backward] table: nothing to train")
    if len({c.out_path for c in configs}) < len(configs):
        raise ValueError(
            f"{path}: both directions would write {configs[0].out_path}; give them different names"
        )
    return configs, int(shared.get("threads", 1))


def train_from_recipe(
    path: str | Path, overrides: dict[str, str] | None = None, progress: bool = True
) -> dict[str, CharLMResult]:
    """Train every LM of a recipe (see :func:`recipe_configs`), one after the other; results by direction."""
    configs, threads = recipe_configs(path, overrides)
    torch.set_num_threads(threads)
    return {("forward" if c.is_forward else "backward"): fit_char_lm(c, progress) for c in configs}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m embedcache.training.language_model", description="Train character LMs from a recipe."
    )
    parser.add_argument("recipe", type=Path, help="e.g. recipes/charlm.toml")
    parser.add_argument("overrides", nargs="*", help="key=value, forward.key=value, direction=, smoke=true")
    args = parser.parse_args(argv)
    malformed = [item for item in args.overrides if "=" not in item]
    if malformed:
        parser.error(f"overrides must be key=value, got {', '.join(malformed)}")
    try:  # a bad recipe is a usage error: a message, not a traceback
        configs, threads = recipe_configs(args.recipe, dict(item.split("=", 1) for item in args.overrides))
    except (OSError, ValueError) as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    for config in configs:
        fit_char_lm(config)


if __name__ == "__main__":
    main()
