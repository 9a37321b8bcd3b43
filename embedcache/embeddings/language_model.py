"""Getting a Flair ``LanguageModel`` from an object, a Flair checkpoint, or embedcache's safetensors files.

Flair checkpoints are pickles; they are read with :func:`embedcache.embeddings.checkpoints.load_checkpoint`
(``torch.load(weights_only=True)`` with an allow-list). embedcache's own format is a ``.safetensors`` file of
weights beside a ``.json`` file of the configuration and the character dictionary: nothing to unpickle.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from flair.data import Dictionary
from flair.models import LanguageModel
from safetensors.torch import load_file, save_file

from embedcache.embeddings.checkpoints import UnsafeCheckpointError, load_checkpoint

log = logging.getLogger(__name__)

LM_FORMAT_VERSION = 1
_MAX_LM_DIMENSION = 1 << 16  # a claim larger than this in a config is corruption, not a model

_CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "is_forward_lm": bool,
    "hidden_size": int,
    "nlayers": int,
    "embedding_size": int,
    "nout": (int, type(None)),
    "dropout": (float, int),
}


def _checked_config(config: dict[str, Any], source: Path) -> dict[str, Any]:
    """Check types and sizes before anything is allocated from ``config``."""
    for key, expected in _CONFIG_TYPES.items():
        if key not in config:
            raise ValueError(f"{source}: language model config lacks {key!r}")
        if not isinstance(config[key], expected) or (expected is int and isinstance(config[key], bool)):
            raise ValueError(f"{source}: {key!r} has type {type(config[key]).__name__}")
    for key in ("hidden_size", "nlayers", "embedding_size", "nout"):
        value = config[key]
        if value is not None and not 0 < value <= _MAX_LM_DIMENSION:
            raise ValueError(f"{source}: {key}={value} is outside 1..{_MAX_LM_DIMENSION}")
    return config


def _build(config: dict[str, Any], dictionary: Dictionary, source: Path) -> LanguageModel:
    config = _checked_config(config, source)
    return LanguageModel(
        dictionary=dictionary,
        is_forward_lm=config["is_forward_lm"],
        hidden_size=config["hidden_size"],
        nlayers=config["nlayers"],
        embedding_size=config["embedding_size"],
        nout=config["nout"],
        document_delimiter=config.get("document_delimiter", "\n"),
        dropout=float(config["dropout"]),
        recurrent_type=config.get("recurrent_type", "LSTM"),
        has_decoder=False,  # embeddings never decode; Flair's FlairEmbeddings drops it too
    )


def load_flair_checkpoint(path: str | Path, *, trust_remote_pickle: bool = False) -> LanguageModel:
    """Load a Flair LM checkpoint (``LanguageModel.save`` output) safely.

    Args:
        path: the ``.pt`` file.
        trust_remote_pickle: fall back to a full unpickle when the safe loader refuses the file. Unpickling
            runs any code the file contains: pass ``True`` only for files whose origin you trust.
    """
    path = Path(path)
    try:
        state = load_checkpoint(path)
    except UnsafeCheckpointError:
        if not trust_remote_pickle:
            raise
        log.warning("%s: loading with a full unpickle because trust_remote_pickle=True", path)
        state = torch.load(path, map_location="cpu", weights_only=False)  # explicit opt-in
    if not isinstance(state, dict) or not isinstance(state.get("dictionary"), Dictionary):
        raise ValueError(f"{path}: not a Flair language model checkpoint (no character dictionary)")
    dictionary = state["dictionary"]
    dictionary.__dict__.pop("item2idx_not_encoded", None)  # derived cache; Flair rebuilds it on use
    lm = _build(state, dictionary, path)
    lm.load_state_dict(state["state_dict"], strict=False)
    return lm.eval()


def lm_settings(lm: LanguageModel) -> dict[str, Any]:
    """The ``LanguageModel`` constructor arguments besides the dictionary: what rebuilds its shape."""
    return {
        "is_forward_lm": lm.is_forward_lm,
        "hidden_size": lm.hidden_size,
        "nlayers": lm.nlayers,
        "embedding_size": lm.embedding_size,
        "nout": lm.nout,
        "document_delimiter": lm.document_delimiter,
        "dropout": lm.dropout,
        "recurrent_type": lm.recurrent_type,
    }


def save_language_model(lm: LanguageModel, path: str | Path) -> None:
    """Write ``path.safetensors`` (weights, no decoder) and ``path.json`` (configuration, characters)."""
    path = Path(path)
    config = {
        "format_version": LM_FORMAT_VERSION,
        **lm_settings(lm),
        "characters": lm.dictionary.get_items(),
        "add_unk": lm.dictionary.add_unk,
    }
    weights = {
        k: v.detach().cpu().contiguous() for k, v in lm.state_dict().items() if not k.startswith("decoder.")
    }
    save_file(weights, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")


def load_language_model(path: str | Path) -> LanguageModel:
    """Load an LM written by :func:`save_language_model` (``path`` with or without a suffix)."""
    path = Path(path)
    config_path, weights_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}:{error.lineno}: invalid JSON: {error.msg}") from error
    if config.get("format_version") != LM_FORMAT_VERSION:
        raise ValueError(f"{config_path}: unsupported LM format version {config.get('format_version')!r}")
    dictionary = Dictionary(add_unk=False)
    for character in config["characters"]:
        dictionary.add_item(character)
    dictionary.add_unk = bool(config.get("add_unk", True))
    lm = _build(config, dictionary, config_path)
    lm.load_state_dict(load_file(str(weights_path)), strict=True)
    return lm.eval()


def resolve_language_model(
    source: LanguageModel | str | Path, *, trust_remote_pickle: bool = False
) -> tuple[LanguageModel, str]:
    """An LM and a readable name for it, from an object, a Flair ``.pt`` checkpoint or safetensors files."""
    if isinstance(source, LanguageModel):
        return source, f"CharLM-{'forward' if source.is_forward_lm else 'backward'}-{source.hidden_size}"
    if not isinstance(source, (str, Path)):
        raise TypeError(f"expected a flair LanguageModel or a path, got {type(source).__name__}")
    path = Path(source)
    if path.suffix in (".json", ".safetensors") or path.with_suffix(".safetensors").is_file():
        return load_language_model(path), str(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such language model file")
    return load_flair_checkpoint(path, trust_remote_pickle=trust_remote_pickle), str(path)
