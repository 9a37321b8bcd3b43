"""Getting a character LM from an object, a Flair checkpoint, or embedcache's safetensors files.

embedcache's own format is a ``.safetensors`` file of weights beside a ``.json`` file of the configuration and
the character dictionary: nothing to unpickle. It loads into the native
:class:`~embedcache.embeddings.char_language_model.CharLanguageModel`, without importing Flair. Flair
checkpoints are pickles; they are read with
:func:`embedcache.embeddings.checkpoints.load_allowlisted_checkpoint` (``torch.load(weights_only=True)`` with
an allow-list) into Flair's own ``LanguageModel``, the class Flair
users and LM training work with. Either class feeds :class:`~embedcache.embeddings.charlm.CharLMEncoder`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from embedcache.atomic import atomic_files
from embedcache.embeddings.char_language_model import RECURRENT_LAYERS, CharacterDictionary, CharLanguageModel
from embedcache.embeddings.checkpoints import UnsafeCheckpointError, load_allowlisted_checkpoint
from embedcache.lazy_imports import is_instance_of

if TYPE_CHECKING:
    from flair.data import Dictionary
    from flair.models import LanguageModel

log = logging.getLogger(__name__)

LM_FORMAT_VERSION = 1
_MAX_LM_DIMENSION = 1 << 16  # a claim larger than this in a config is corruption, not a model
MAX_LAYERS = 64  # Flair's char LMs have one; more than this is a crafted file (and slow to even describe)
# The constructor arguments of both LM classes besides the dictionary, as saved in the JSON config.
_SETTINGS = (
    "is_forward_lm", "hidden_size", "nlayers", "embedding_size", "nout", "document_delimiter", "dropout",
    "recurrent_type",
)  # fmt: skip

_CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "is_forward_lm": bool,
    "hidden_size": int,
    "nlayers": int,
    "embedding_size": int,
    "nout": (int, type(None)),
    "dropout": (float, int),
}


WeightShapes = dict[str, tuple[tuple[int, ...], torch.dtype]]
"""Tensor name → (shape, dtype): what a weights file holds, or what a configuration implies it holds."""

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip


def weights_file_shapes(path: Path) -> WeightShapes:
    """The tensors of a safetensors file as its header declares them; no tensor is read.

    safetensors checks the header when it opens the file (its length against the file size, every tensor's
    byte range against the data, no overlaps), so the shapes returned are backed by bytes on disk.

    Raises:
        ValueError: not a safetensors file, or a header that disagrees with the file.
    """
    try:
        with safe_open(str(path), framework="pt") as weights:
            slices = {name: weights.get_slice(name) for name in weights.keys()}  # noqa: SIM118 - not a dict
            declared = {name: (tuple(part.get_shape()), part.get_dtype()) for name, part in slices.items()}
    except SafetensorError as error:
        raise ValueError(f"{path}: not a valid safetensors file ({error})") from error
    unknown = sorted({dtype for _, dtype in declared.values()} - _SAFETENSORS_DTYPES.keys())
    if unknown:
        raise ValueError(f"{path}: tensors of unsupported dtype {', '.join(unknown)}")
    return {name: (shape, _SAFETENSORS_DTYPES[dtype]) for name, (shape, dtype) in declared.items()}


_STORAGE_DTYPES = {torch.float32: torch.float16}  # the compact storage each compute dtype may have


def check_weight_shapes(found: WeightShapes, expected: WeightShapes, weights: Path, config: Path) -> None:
    """Refuse weights that are not exactly what the configuration implies (names, shapes and dtypes).

    float32 weights may be stored as float16 (halves a bundled model's size; loading casts them back).
    Called before the model is built, so that a configuration claiming absurd sizes is refused without
    allocating them: the model is only built once its every tensor is backed by the weights file.

    Raises:
        ValueError: naming both files and the first tensor that differs.
    """
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or unexpected:
        raise ValueError(
            f"{weights}: does not hold what {config} implies: missing tensors {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for name, (shape, dtype) in expected.items():
        if found[name] != (shape, dtype) and found[name] != (shape, _STORAGE_DTYPES.get(dtype)):
            have_shape, have_dtype = found[name]
            raise ValueError(
                f"{weights}: {name} is {have_dtype} {list(have_shape)}, "
                f"but {config} implies {dtype} {list(shape)}"
            )


def _expected_weights(config: dict[str, Any], n_characters: int) -> WeightShapes:
    """The weights of the LM a checked config describes, built on the meta device: no memory."""
    with torch.device("meta"):
        skeleton = _native(config, CharacterDictionary(str(i) for i in range(n_characters)))
    return {name: (tuple(tensor.shape), tensor.dtype) for name, tensor in skeleton.state_dict().items()}


def _checked_config(config: object, source: Path) -> dict[str, Any]:
    """Check types and sizes before anything is allocated from ``config``; fill in the optional keys."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: a language model config must be an object, got {type(config).__name__}")
    config = {"document_delimiter": "\n", "recurrent_type": "LSTM", **config}
    if not isinstance(config["document_delimiter"], str):
        raise ValueError(
            f"{source}: 'document_delimiter' has type {type(config['document_delimiter']).__name__}"
        )
    recurrent_type = config["recurrent_type"]
    if not isinstance(recurrent_type, str) or recurrent_type.lower() not in RECURRENT_LAYERS:
        raise ValueError(
            f"{source}: 'recurrent_type' {recurrent_type!r} is not one of {list(RECURRENT_LAYERS)}"
        )
    for key, expected in _CONFIG_TYPES.items():
        if key not in config:
            raise ValueError(f"{source}: language model config lacks {key!r}")
        if not isinstance(config[key], expected) or (expected is int and isinstance(config[key], bool)):
            raise ValueError(f"{source}: {key!r} has type {type(config[key]).__name__}")
    for key in ("hidden_size", "nlayers", "embedding_size", "nout"):
        value, largest = config[key], MAX_LAYERS if key == "nlayers" else _MAX_LM_DIMENSION
        if value is not None and not 0 < value <= largest:
            raise ValueError(f"{source}: {key}={value} is outside 1..{largest}")
    return config


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of a checked config (either LM class); a JSON ``0`` dropout is a float."""
    return {**{key: config[key] for key in _SETTINGS}, "dropout": float(config["dropout"])}


def _native(config: dict[str, Any], dictionary: CharacterDictionary) -> CharLanguageModel:
    """The native LM of a checked config (its weights are random until loaded)."""
    return CharLanguageModel(dictionary, **_settings(config))


def _flair_lm(config: dict[str, Any], dictionary: Dictionary) -> LanguageModel:
    """Flair's LM of a checked config whose weights were checked against it."""
    from flair.models import LanguageModel

    # Embeddings never decode; Flair's FlairEmbeddings drops the decoder too.
    return LanguageModel(dictionary=dictionary, **_settings(config), has_decoder=False)


def load_flair_checkpoint(path: str | Path, *, trust_remote_pickle: bool = False) -> LanguageModel:
    """Load a Flair LM checkpoint (``LanguageModel.save`` output) safely.

    Args:
        path: the ``.pt`` file.
        trust_remote_pickle: fall back to a full unpickle when the safe loader refuses the file. Unpickling
            runs any code the file contains: pass ``True`` only for files whose origin you trust.
    """
    from flair.data import Dictionary

    path = Path(path)
    try:
        state = load_allowlisted_checkpoint(path)
    except UnsafeCheckpointError:
        if not trust_remote_pickle:
            raise
        log.warning("%s: loading with a full unpickle because trust_remote_pickle=True", path)
        state = torch.load(path, map_location="cpu", weights_only=False)  # explicit opt-in
    if not isinstance(state, dict) or not isinstance(state.get("dictionary"), Dictionary):
        raise ValueError(f"{path}: not a Flair language model checkpoint (no character dictionary)")
    dictionary = state["dictionary"]
    dictionary.__dict__.pop("item2idx_not_encoded", None)  # derived cache; Flair rebuilds it on use
    config = _checked_config(state, path)
    weights = state.get("state_dict")
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        raise ValueError(f"{path}: the checkpoint's state_dict is not a dict of tensors")
    weights = {k: t for k, t in weights.items() if not k.startswith("decoder.")}  # embeddings never decode
    found = {name: (tuple(t.shape), t.dtype) for name, t in weights.items()}
    check_weight_shapes(found, _expected_weights(config, len(dictionary)), path, path)
    lm = _flair_lm(config, dictionary)
    lm.load_state_dict(weights, strict=False)
    return lm.eval()


def lm_settings(lm: CharLanguageModel | LanguageModel) -> dict[str, Any]:
    """The LM constructor arguments besides the dictionary: what rebuilds its shape (either class)."""
    return {key: getattr(lm, key) for key in _SETTINGS}


def save_language_model(lm: CharLanguageModel | LanguageModel, path: str | Path) -> None:
    """Write ``path.safetensors`` (weights, no decoder) and ``path.json`` (configuration, characters).

    Both are staged and renamed into place, the ``.json`` (which :func:`load_language_model` reads first)
    last.
    """
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
    with atomic_files(path.parent, last=path.with_suffix(".json").name) as staging:
        staged = staging / path.name
        save_file(weights, str(staged.with_suffix(".safetensors")))
        staged.with_suffix(".json").write_text(
            json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8"
        )


def load_language_model(path: str | Path) -> CharLanguageModel:
    """Load an LM written by :func:`save_language_model` (``path`` with or without a suffix), natively.

    The model is built on the meta device and takes the file's tensors as its parameters: nothing is
    allocated twice, and no random initialisation is computed only to be overwritten.
    """
    path = Path(path)
    config_path, weights_path = path.with_suffix(".json"), path.with_suffix(".safetensors")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path}:{error.lineno}: invalid JSON: {error.msg}") from error
    config = _checked_config(config, config_path)
    if config.get("format_version") != LM_FORMAT_VERSION:
        raise ValueError(f"{config_path}: unsupported LM format version {config.get('format_version')!r}")
    characters = config.get("characters")
    if not isinstance(characters, list) or not all(isinstance(c, str) for c in characters):
        raise ValueError(f"{config_path}: 'characters' must be a list of strings")
    dictionary = CharacterDictionary(characters, add_unk=bool(config.get("add_unk", True)))
    expected = _expected_weights(config, len(dictionary))
    check_weight_shapes(weights_file_shapes(weights_path), expected, weights_path, config_path)
    with torch.device("meta"):
        lm = _native(config, dictionary)
    stored = load_file(str(weights_path))
    weights = {name: t.to(expected[name][1]) for name, t in stored.items()}  # float16 storage: cast back
    lm.load_state_dict(weights, strict=True, assign=True)
    return lm.eval()


def is_language_model(value: object) -> bool:
    """A native :class:`CharLanguageModel` or a Flair ``LanguageModel`` (checked without importing Flair)."""
    return isinstance(value, CharLanguageModel) or is_instance_of(
        value, "flair.models.language_model", "LanguageModel"
    )


def default_lm_name(lm: CharLanguageModel | LanguageModel) -> str:
    """A name for an LM that came as an object, not a file: ``CharLM-forward-2048``."""
    return f"CharLM-{'forward' if lm.is_forward_lm else 'backward'}-{lm.hidden_size}"


def resolve_language_model(
    source: CharLanguageModel | LanguageModel | str | Path, *, trust_remote_pickle: bool = False
) -> tuple[CharLanguageModel | LanguageModel, str]:
    """An LM and a readable name for it, from an object, a Flair ``.pt`` checkpoint, safetensors files, or a
    Flair model name such as ``"news-forward"`` (see :mod:`embedcache.embeddings.flair_names`).

    Raises:
        FileNotFoundError: no such file and no such Flair name, or a named model that is neither in Flair's
            cache nor downloadable (the message says where to put it).
    """
    if is_language_model(source):
        # is_language_model tells an LM without importing Flair, so it cannot narrow.
        return source, default_lm_name(source)  # type: ignore[arg-type,return-value]
    if not isinstance(source, (str, Path)):
        raise TypeError(f"expected a character LanguageModel or a path, got {type(source).__name__}")
    path = Path(source)
    if path.suffix in (".json", ".safetensors") or path.with_suffix(".safetensors").is_file():
        return load_language_model(path), str(path)
    if path.exists():
        return load_flair_checkpoint(path, trust_remote_pickle=trust_remote_pickle), str(path)
    if isinstance(source, str) and len(path.parts) == 1:
        from embedcache.embeddings.flair_names import flair_lm_file, known_names, lookup_flair_lm

        named = lookup_flair_lm(source)
        if named is not None:
            lm = load_flair_checkpoint(flair_lm_file(named), trust_remote_pickle=trust_remote_pickle)
            return lm, named.name
        raise FileNotFoundError(
            f"{source}: no such language model file, and not a Flair model name (e.g. {known_names()})"
        )
    raise FileNotFoundError(f"{path}: no such language model file")
