"""Model directories: safetensors for every weight, JSON for everything else; loading never unpickles.

Layout of a saved tagger::

    model/
      config.json            format + version, tagger hyper-parameters, tags, the embedders and their options
      tagger.safetensors     BiLSTM, projection, emission and CRF weights
      embedding-0.safetensors, embedding-0.json   a character LM (see embedcache.embeddings.language_model)
      embedding-1.safetensors                     word vectors (their vocabulary is in config.json)
      model_card.json        training data, scores, how the model was made (when the trainer wrote one)

A directory is written under a temporary name (``.<name>.tmp-<pid>-*``) and swapped into place in one
atomic ``renameat2(RENAME_EXCHANGE)`` on Linux (:func:`embedcache.atomic.atomic_directory`), so a reader
finds the old model or the new one, never half a model and never none. A process killed mid-save leaves only
hidden directories; the next save to that path removes those of dead processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from embedcache.atomic import atomic_directory
from embedcache.embeddings.charlm import CharLMEncoder
from embedcache.embeddings.language_model import (
    MAX_LAYERS,
    WeightShapes,
    check_weight_shapes,
    load_language_model,
    save_language_model,
    weights_file_shapes,
)
from embedcache.embeddings.words import WordVectors
from embedcache.models.catalog import resolve_model_path
from embedcache.models.labels import TagDictionary
from embedcache.models.tagger import TaggerConfig, TaggerNetwork
from embedcache.version import __version__

Network = TypeVar("Network", bound=TaggerNetwork)

MODEL_FORMAT = "embedcache.sequence_tagger"
MODEL_FORMAT_VERSION = 1
_MAX_HIDDEN = 1 << 16


class ModelFormatError(ValueError):
    """A model directory that is not one, is damaged, or comes from an unsupported format version."""


def check_saveable(tagger: TaggerNetwork) -> None:
    """Refuse, before any work, a tagger whose embedders a model directory cannot hold.

    Model files hold character LMs and word vectors; other embedders (Flair embeddings run through the
    generic adapter, user-defined ones) can tag and train in memory but not be saved.

    Raises:
        TypeError: naming the embedder's class (and the Flair class inside an adapter).
    """
    for embedder in tagger.embeddings.embedders:
        try:
            _native_embedder(embedder)
        except TypeError:
            inner = getattr(embedder, "flair_embeddings", None)
            name = type(embedder).__name__ + (f"({type(inner).__name__})" if inner is not None else "")
            raise TypeError(
                f"cannot save a tagger over {name}: model files hold character LMs and word vectors only "
                "(CharLMEmbeddings/FlairEmbeddings, WordEmbeddings)"
            ) from None


def _native_embedder(embedder: object) -> CharLMEncoder | WordVectors:
    """The native core of an embedder: itself, or the one inside a Flair face (``.encoder``, ``.words``).

    Only cores are saved and loaded, so a model holds no Flair class and loads without Flair.
    """
    for candidate in (embedder, getattr(embedder, "encoder", None), getattr(embedder, "words", None)):
        if isinstance(candidate, (CharLMEncoder, WordVectors)):
            return candidate
    raise TypeError(f"cannot save an embedder of type {type(embedder).__name__}")


def _embedder_entry(embedder: object, index: int, directory: Path) -> dict[str, Any]:
    stem = f"embedding-{index}"
    core = _native_embedder(embedder)
    if isinstance(core, CharLMEncoder):
        save_language_model(core.lm, directory / stem)
        options = core.options
        return {
            "type": "charlm",
            "file": stem,
            "name": core.name,
            "chars_per_chunk": core.chars_per_chunk,
            "with_whitespace": options.with_whitespace,
            "tokenized_lm": options.tokenized_lm,
            "is_lower": options.is_lower,
            "fine_tune": core.fine_tune,
        }
    tables = {k: v.detach().cpu().contiguous() for k, v in core.state_dict().items()}
    save_file(tables, str(directory / f"{stem}.safetensors"))
    return {"type": "words", "file": stem, "params": core.to_params()}


def save_tagger(tagger: TaggerNetwork, path: str | Path, half: bool = False) -> None:
    """Write ``tagger`` to the directory ``path`` atomically (replacing an older model there).

    ``half`` stores float32 weights as float16, half the bytes (the bundled model: the wheel's size);
    loading casts them back to float32, so the model computes as before on weights rounded to float16.
    """
    check_saveable(tagger)
    with atomic_directory(path) as staging:
        entries = [_embedder_entry(e, i, staging) for i, e in enumerate(tagger.embeddings.embedders)]
        weights = {k: v.detach().cpu().contiguous() for k, v in tagger.state_dict().items()}
        save_file(
            {k: v for k, v in weights.items() if not k.startswith("embeddings.")},
            str(staging / "tagger.safetensors"),
        )
        config = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "embedcache_version": __version__,
            "tagger": tagger.hyperparameters(),
            "tags": tagger.tags.to_json(),
            "embeddings": entries,
        }
        _write_json(staging / "config.json", config)
        if half:
            _store_as_float16(staging)
        if getattr(tagger, "model_card", None):
            _write_json(staging / "model_card.json", tagger.model_card)


def _store_as_float16(directory: Path) -> None:
    """Rewrite every staged weights file with its float32 tensors as float16 (others as they are)."""
    for weights_path in sorted(directory.glob("*.safetensors")):
        tensors = load_file(str(weights_path))
        half = {k: t.half() if t.dtype == torch.float32 else t for k, t in tensors.items()}
        save_file(half, str(weights_path))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def read_config(path: str | Path) -> dict[str, Any]:
    """The checked ``config.json`` of a model directory, or of the bundled model of that name.

    Raises:
        FileNotFoundError: no model there and no bundled model of that name.
        ModelFormatError: not an embedcache model, invalid JSON, or an unsupported format version.
    """
    directory = resolve_model_path(path)
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
    for key, largest in (("hidden_size", _MAX_HIDDEN), ("rnn_layers", MAX_LAYERS)):
        value = raw.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= largest:
            raise ModelFormatError(f"{source}: tagger {key}={value!r} is not an integer in 1..{largest}")
    try:
        return TaggerConfig(**raw)
    except (TypeError, ValueError) as error:
        raise ModelFormatError(f"{source}: invalid tagger settings: {error}") from error


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(values: dict[str, Any], types: dict[str, type | tuple[type, ...]], where: str) -> None:
    """Refuse a JSON object whose fields have other types than ``types`` says (``bool`` is no ``int``)."""
    for key, expected in types.items():
        value = values.get(key)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ModelFormatError(f"{where}: {key!r} is {value!r}, expected {expected}")


_CHARLM_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "chars_per_chunk": int, "with_whitespace": bool, "tokenized_lm": bool, "is_lower": bool,
    "fine_tune": bool, "name": (str, type(None)),
}  # fmt: skip
_WORDS_PARAM_TYPES: dict[str, type | tuple[type, ...]] = {
    "vocabulary": list, "embedding_length": int, "lowercase_fallback": bool, "subword": (list, type(None)),
    "name": (str, type(None)),
}  # fmt: skip


def _word_table_shapes(params: dict[str, Any], where: str) -> WeightShapes:
    """The buffers ``WordEmbeddings.from_params(params)`` would allocate: ``(V + 1, D)`` vectors (a zero row
    for unknown words) and, with subwords, ``(buckets, D)`` n-gram vectors."""
    _check_types(params, _WORDS_PARAM_TYPES, where)
    subword, dim = params["subword"], params["embedding_length"]
    if subword is not None and (len(subword) != 3 or not all(_is_int(n) and n > 0 for n in subword)):
        raise ModelFormatError(f"{where}: 'subword' must be [min_n, max_n, buckets], got {subword!r}")
    shapes: WeightShapes = {"vectors": ((len(params["vocabulary"]) + 1, dim), torch.float32)}
    if subword is not None:
        shapes["ngram_vectors"] = ((subword[2], dim), torch.float32)
    return shapes


def _load_embedder(entry: object, directory: Path) -> CharLMEncoder | WordVectors:
    config_path = directory / "config.json"
    if not isinstance(entry, dict):
        raise ModelFormatError(f"{config_path}: an embedding entry must be an object, got {entry!r}")
    kind, stem = entry.get("type"), entry.get("file")
    if not isinstance(stem, str) or "/" in stem or stem.startswith("."):
        raise ModelFormatError(f"{config_path}: bad embedding file name {stem!r}")
    if kind == "charlm":
        _check_types(entry, _CHARLM_OPTION_TYPES, f"{config_path}: embedding {stem}")
        lm = load_language_model(directory / stem)
        return CharLMEncoder(lm, **{k: entry[k] for k in _CHARLM_OPTION_TYPES})
    if kind == "words":
        params = entry.get("params")
        if not isinstance(params, dict):
            raise ModelFormatError(f"{config_path}: embedding {stem}: 'params' must be an object")
        weights_path = directory / f"{stem}.safetensors"
        # Checked before from_params allocates the tables the config claims.
        expected = _word_table_shapes(params, f"{config_path}: embedding {stem}")
        check_weight_shapes(weights_file_shapes(weights_path), expected, weights_path, config_path)
        embedder = WordVectors.from_params(dict(params))
        embedder.load_state_dict(load_file(str(weights_path)))
        return embedder
    raise ModelFormatError(f"{config_path}: unknown embedding type {kind!r}")


def _tagger_weight_shapes(
    embedders: Sequence[CharLMEncoder | WordVectors], tags: TagDictionary, config: TaggerConfig
) -> WeightShapes:
    """The tagger's own weights (not its embedders') for ``config``, built on the meta device: no memory."""
    with torch.device("meta"):
        skeleton = TaggerNetwork(embedders, tags, **config.__dict__)
    return {
        name: (tuple(tensor.shape), tensor.dtype)
        for name, tensor in skeleton.state_dict().items()
        if not name.startswith("embeddings.")
    }


def load_tagger(
    path: str | Path, network: type[Network], device: str | torch.device | None = None
) -> Network:
    """Load a tagger saved by :func:`save_tagger` (or a bundled model by name); never unpickles.

    ``network`` is the class built: :class:`TaggerNetwork`, or ``SequenceTagger.load``'s own class.

    Raises:
        FileNotFoundError: no such directory and no bundled model of that name.
        ModelFormatError: anything wrong with the files, named in the message.
    """
    directory = resolve_model_path(path)
    config = read_config(directory)
    config_path, weights_path = directory / "config.json", directory / "tagger.safetensors"
    tagger_config = _checked_tagger_config(config, config_path)
    tags_json = config.get("tags")
    if not isinstance(tags_json, dict) or not isinstance(config.get("embeddings"), list):
        raise ModelFormatError(f"{config_path}: 'tags' must be an object and 'embeddings' a list")
    if not isinstance(tags_json.get("tags"), list) or not all(isinstance(t, str) for t in tags_json["tags"]):
        raise ModelFormatError(f"{config_path}: 'tags' must hold a list of tag strings")
    try:
        tags = TagDictionary.from_json(tags_json)
        embedders = [_load_embedder(entry, directory) for entry in config["embeddings"]]
        # Every weight the config implies must be in the file, with its shape and dtype, before any is made.
        expected = _tagger_weight_shapes(embedders, tags, tagger_config)
        check_weight_shapes(weights_file_shapes(weights_path), expected, weights_path, config_path)
        tagger = network(embedders, tags, **tagger_config.__dict__)
        tagger.load_state_dict(load_file(str(weights_path)), strict=False)  # the embedders have theirs
    except (SafetensorError, OSError, KeyError, TypeError, ValueError, RuntimeError) as error:
        if isinstance(error, ModelFormatError):
            raise
        raise ModelFormatError(f"{directory}: damaged or incomplete model: {error}") from error
    tagger.model_card = read_model_card(directory)
    return tagger.to(device) if device is not None else tagger


def read_model_card(directory: str | Path) -> dict[str, Any]:
    """The ``model_card.json`` of a model directory, ``{}`` when it has none.

    Raises:
        ModelFormatError: the card is not UTF-8, not valid JSON or not a JSON object.
    """
    path = Path(directory) / "model_card.json"
    if not path.is_file():
        return {}
    remedy = "fix or delete it (it only describes the model; the weights do not need it)"
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ModelFormatError(f"{path}: not UTF-8 (byte {error.start + 1}); {remedy}") from error
    except json.JSONDecodeError as error:
        raise ModelFormatError(f"{path}: not valid JSON ({error}); {remedy}") from error
    if not isinstance(card, dict):
        raise ModelFormatError(f"{path}: a model card is a JSON object, not {type(card).__name__}; {remedy}")
    return card
