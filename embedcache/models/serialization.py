"""Model directories: safetensors for every weight, JSON for everything else; loading never unpickles.

Layout of a saved tagger::

    model/
      config.json            format + version, tagger hyper-parameters, tags, the embedders and their options
      tagger.safetensors     BiLSTM, projection, emission and CRF weights
      embedding-0.safetensors, embedding-0.json   a character LM (see embedcache.embeddings.language_model)
      embedding-1.safetensors                     word vectors (their vocabulary is in config.json)
      model_card.json        training data, scores, how the model was made (when the trainer wrote one)

A directory is written under a temporary name (``.<name>.tmp-<pid>-*``) and swapped into place in one
atomic ``renameat2(RENAME_EXCHANGE)`` on Linux, so a reader finds the old model or the new one, never half a
model and never none. Where that call is missing (other systems, some filesystems) the old directory is
first renamed away (``.<name>.old-<pid>``), leaving a moment with no model at the path. A process killed
mid-save leaves only such hidden directories; the next save to that path removes those of dead processes.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from embedcache.embeddings.charlm import CharLMEmbeddings, CharLMEncoder
from embedcache.embeddings.language_model import load_language_model, save_language_model
from embedcache.embeddings.words import WordEmbeddings
from embedcache.models.labels import TagDictionary
from embedcache.models.tagger import SequenceTagger, TaggerConfig
from embedcache.temporaries import remove_leftovers, temporary_prefix

MODEL_FORMAT = "embedcache.sequence_tagger"
MODEL_FORMAT_VERSION = 1
_MAX_HIDDEN = 1 << 16


class ModelFormatError(ValueError):
    """A model directory that is not one, is damaged, or comes from an unsupported format version."""


def _embedder_entry(embedder: object, index: int, directory: Path) -> dict[str, Any]:
    stem = f"embedding-{index}"
    if isinstance(embedder, (CharLMEmbeddings, CharLMEncoder)):
        encoder = embedder.encoder if isinstance(embedder, CharLMEmbeddings) else embedder
        save_language_model(encoder.lm, directory / stem)
        options = encoder.options
        return {
            "type": "charlm",
            "file": stem,
            "name": getattr(embedder, "name", stem),
            "chars_per_chunk": encoder.chars_per_chunk,
            "with_whitespace": options.with_whitespace,
            "tokenized_lm": options.tokenized_lm,
            "is_lower": options.is_lower,
            "fine_tune": encoder.fine_tune,
        }
    if isinstance(embedder, WordEmbeddings):
        tables = {k: v.detach().cpu().contiguous() for k, v in embedder.state_dict().items()}
        save_file(tables, str(directory / f"{stem}.safetensors"))
        return {"type": "words", "file": stem, "params": embedder.to_params()}
    raise TypeError(f"cannot save an embedder of type {type(embedder).__name__}")


def save_tagger(tagger: SequenceTagger, path: str | Path) -> None:
    """Write ``tagger`` to the directory ``path`` atomically (replacing an older model there)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(target), dir=target.parent))
    try:
        entries = [_embedder_entry(e, i, staging) for i, e in enumerate(tagger.embeddings.embedders)]
        weights = {k: v.detach().cpu().contiguous() for k, v in tagger.state_dict().items()}
        save_file(
            {k: v for k, v in weights.items() if not k.startswith("embeddings.")},
            str(staging / "tagger.safetensors"),
        )
        config = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "embedcache_version": _package_version(),
            "tagger": tagger.hyperparameters(),
            "tags": tagger.tags.to_json(),
            "embeddings": entries,
        }
        _write_json(staging / "config.json", config)
        if getattr(tagger, "model_card", None):
            _write_json(staging / "model_card.json", tagger.model_card)
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, target: Path) -> None:
    """Swap the finished directory into place; the old one is removed only after the swap."""
    if target.exists() and _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # it holds the old model now
        return
    retired = None
    if target.exists():
        retired = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, retired)
    os.replace(staging, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # glibc >= 2.28


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2``); False where the system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # no such call, or not on this filesystem
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def _package_version() -> str:
    from embedcache import __version__

    return __version__


def read_config(path: str | Path) -> dict[str, Any]:
    """The checked ``config.json`` of a model directory.

    Raises:
        FileNotFoundError: no model there.
        ModelFormatError: not an embedcache model, invalid JSON, or an unsupported format version.
    """
    directory = Path(path)
    config_path = directory / "config.json"
    if not directory.is_dir():
        if directory.is_file():
            raise ModelFormatError(
                f"{directory}: a model is a directory (config.json + safetensors), not a file"
            )
        raise FileNotFoundError(f"{directory}: no such model directory")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelFormatError(f"{config_path}: missing; {directory} is not an embedcache model") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFormatError(f"{config_path}: not valid JSON ({error})") from error
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise ModelFormatError(f"{config_path}: not an embedcache sequence tagger")
    version = config.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ModelFormatError(
            f"{config_path}: model format version {version!r}, but this embedcache reads version "
            f"{MODEL_FORMAT_VERSION}; load it with the embedcache release that saved it, or re-train"
        )
    return config


def _checked_tagger_config(config: dict[str, Any], source: Path) -> TaggerConfig:
    raw = config.get("tagger")
    if not isinstance(raw, dict):
        raise ModelFormatError(f"{source}: 'tagger' must be an object")
    for key in ("hidden_size", "rnn_layers"):
        value = raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= _MAX_HIDDEN:
            raise ModelFormatError(f"{source}: tagger {key}={value!r} is not an integer in 1..{_MAX_HIDDEN}")
    try:
        return TaggerConfig(**raw)
    except (TypeError, ValueError) as error:
        raise ModelFormatError(f"{source}: invalid tagger settings: {error}") from error


def _load_embedder(entry: dict[str, Any], directory: Path) -> torch.nn.Module:
    kind, stem = entry.get("type"), entry.get("file")
    if not isinstance(stem, str) or "/" in stem or stem.startswith("."):
        raise ModelFormatError(f"{directory / 'config.json'}: bad embedding file name {stem!r}")
    if kind == "charlm":
        lm = load_language_model(directory / stem)
        options = {
            k: entry[k]
            for k in ("chars_per_chunk", "with_whitespace", "tokenized_lm", "is_lower", "fine_tune")
        }
        return CharLMEmbeddings(lm, name=entry.get("name"), **options)
    if kind == "words":
        embedder = WordEmbeddings.from_params(dict(entry["params"]))
        embedder.load_state_dict(load_file(str(directory / f"{stem}.safetensors")))
        return embedder
    raise ModelFormatError(f"{directory / 'config.json'}: unknown embedding type {kind!r}")


def load_tagger(path: str | Path, device: str | torch.device | None = None) -> SequenceTagger:
    """Load a tagger saved by :func:`save_tagger`; weights are read with safetensors only.

    Raises:
        FileNotFoundError: no such directory.
        ModelFormatError: anything wrong with the files, named in the message.
    """
    directory = Path(path)
    config = read_config(directory)
    tagger_config = _checked_tagger_config(config, directory / "config.json")
    try:
        tags = TagDictionary.from_json(config["tags"])
        embedders = [_load_embedder(entry, directory) for entry in config["embeddings"]]
        tagger = SequenceTagger(embedders, tags, **tagger_config.__dict__)
        weights = load_file(str(directory / "tagger.safetensors"))
        missing, unexpected = tagger.load_state_dict(weights, strict=False)
    except (SafetensorError, OSError, KeyError, TypeError, ValueError, RuntimeError) as error:
        if isinstance(error, ModelFormatError):
            raise
        raise ModelFormatError(f"{directory}: damaged or incomplete model: {error}") from error
    missing = [k for k in missing if not k.startswith("embeddings.")]
    if missing or unexpected:
        raise ModelFormatError(f"{directory}/tagger.safetensors: missing {missing}, unexpected {unexpected}")
    card_path = directory / "model_card.json"
    tagger.model_card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
    return tagger.to(device) if device is not None else tagger
