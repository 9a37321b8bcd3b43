"""Loading Flair character-LM checkpoints without unpickling arbitrary code.

Flair saves LMs with ``torch.save(..., pickle_protocol=4)``. ``torch.load(weights_only=True)`` is the safe
loader we want, but its unpickler understands only protocol-2 opcodes. This module re-encodes the pickle
stream of a checkpoint from protocol 4 to protocol 2 *without executing it* (``pickletools.genops`` only
parses opcodes) and hands the result to ``torch.load(weights_only=True)`` with an allow-list of the few
classes a Flair LM checkpoint holds. Anything else in the file is refused by torch, not by us.

The re-encoding is mechanical:

- ``FRAME`` is dropped and ``PROTO 4`` becomes ``PROTO 2``;
- strings are pushed with ``BINUNICODE`` and never memoized (they are immutable, so a memo reference to a
  string is replaced by the literal), which lets ``STACK_GLOBAL`` become ``GLOBAL module name``;
- other memoized objects get ``BINPUT``/``BINGET`` with renumbered slots;
- ``bytes`` become ``_codecs.encode(str, "latin1")``, protocol 2's own spelling.

The zip archive around the pickle is checked before anything is inflated: every entry must be one a torch
checkpoint has (``data.pkl``, ``data/<n>`` tensor storages, and the small ``version``, ``byteorder``,
``.format_version``, ``.storage_alignment``, ``.data/version`` and ``.data/serialization_id`` records, all
under one top-level folder), of a size in proportion (a metadata record of at most
:data:`MAX_METADATA_BYTES`, no entry inflating to more than :data:`MAX_EXPANSION` times its compressed
bytes, a pickle no larger than the tensors it describes or :data:`PICKLE_ALLOWANCE_BYTES`). The rewritten
archive is streamed into an anonymous temporary file, entry by entry, so only the pickle and the tensors
torch loads are ever in memory.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import torch


def plain_dict(default_factory: object) -> dict:
    """Stand-in for ``collections.defaultdict`` in checkpoints: an empty plain ``dict``.

    Flair's ``Dictionary`` pickles a derived lookup cache (``item2idx_not_encoded``) as a
    ``defaultdict(int)``, which torch's safe unpickler cannot fill. It is loaded as a plain dict here and
    dropped by the caller; Flair rebuilds it on first use.
    """
    return {}


# Globals renamed while re-encoding, so that the safe unpickler only ever sees allow-listed names.
_GLOBAL_RENAMES = {("collections", "defaultdict"): (__name__, plain_dict.__name__)}


def flair_lm_allowed_globals() -> list[Any]:
    """Classes a Flair LanguageModel checkpoint needs beyond tensors and plain containers.

    A function, not a constant, so that Flair is imported only when a Flair checkpoint is read.
    """
    from flair.data import Dictionary

    return [Dictionary, plain_dict, int]


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_BYTES_OPS = {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8"}
_PASS_THROUGH_OPS = {
    "APPEND", "APPENDS", "BINFLOAT", "BININT", "BININT1", "BININT2", "BINPERSID", "BUILD", "EMPTY_DICT",
    "EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_SET", "LONG1", "MARK", "NEWFALSE", "NEWOBJ", "NEWTRUE", "NONE",
    "REDUCE", "SETITEM", "SETITEMS", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "STOP", "SHORT_BINSTRING",
}  # fmt: skip


# What a torch zip archive holds besides data.pkl and the data/<n> storages (torch 1.6 to 2.x).
_METADATA_ENTRIES = {"version", ".data/version", "byteorder", ".format_version", ".storage_alignment",
                     ".data/serialization_id"}  # fmt: skip
_TENSOR_ENTRY = re.compile(r"data/[0-9]+")
MAX_METADATA_BYTES = 1024
"""The largest metadata record (a version number, a byte order, a 40-digit serialization id)."""
MAX_EXPANSION = 100
"""How much an entry over 1 MiB may inflate (torch stores entries uncompressed; zip bombs inflate ~1000x)."""
PICKLE_ALLOWANCE_BYTES = 16 << 20
"""A pickle may be this large whatever its tensors; beyond, no larger than all tensor storages together."""
_SMALL_ENTRY_BYTES = 1 << 20
_COPY_CHUNK_BYTES = 1 << 20


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs more than the safe loader allows, or is not a (whole) checkpoint at all."""


def _push_string(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def _push_bytes(data: bytes) -> bytes:
    return (
        pickle.GLOBAL + b"_codecs\nencode\n"
        + _push_string(data.decode("latin1")) + _push_string("latin1")
        + pickle.TUPLE2 + pickle.REDUCE
    )  # fmt: skip


def _global(module: str, qualname: str) -> bytes:
    module, qualname = _GLOBAL_RENAMES.get((module, qualname), (module, qualname))
    return pickle.GLOBAL + f"{module}\n{qualname}\n".encode()


def _memo_put(slot: int) -> bytes:
    return pickle.BINPUT + bytes([slot]) if slot < 256 else pickle.LONG_BINPUT + struct.pack("<I", slot)


def _memo_get(slot: int) -> bytes:
    return pickle.BINGET + bytes([slot]) if slot < 256 else pickle.LONG_BINGET + struct.pack("<I", slot)


def to_protocol_2(stream: bytes) -> bytes:
    """Re-encode a pickle stream with protocol-2 opcodes only, never executing it.

    Raises:
        UnsafeCheckpointError: the stream uses an opcode with no protocol-2 spelling here.
    """
    out: list[bytes] = []
    strings_on_top: list[str] = []  # strings pushed since the last non-string op, for STACK_GLOBAL
    memo: dict[int, str | int] = {}  # original slot -> literal string, or renumbered slot
    next_slot = 0
    arg: Any  # each opcode's argument: a str, bytes or int as the opcode says (None for none)
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name == "PROTO":
            out.append(pickle.PROTO + bytes([2]))
        elif name == "FRAME":
            continue
        elif name in _STRING_OPS:
            out.append(_push_string(arg))
            strings_on_top.append(arg)
            continue
        elif name in ("MEMOIZE", "BINPUT", "LONG_BINPUT"):
            slot = len(memo) if name == "MEMOIZE" else arg
            if strings_on_top and out and out[-1] == _push_string(strings_on_top[-1]):
                memo[slot] = strings_on_top[-1]
                continue
            memo[slot] = next_slot
            out.append(_memo_put(next_slot))
            next_slot += 1
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise UnsafeCheckpointError(
                    f"the pickle reads memo slot {arg}, which it never stored (damaged)"
                )
            target = memo[arg]
            if isinstance(target, str):
                out.append(_push_string(target))
                strings_on_top.append(target)
                continue
            out.append(_memo_get(target))
        elif name == "GLOBAL":
            out.append(_global(*arg.split(" ", 1)))
        elif name == "STACK_GLOBAL":
            if len(strings_on_top) < 2 or not all(
                chunk == _push_string(text) for chunk, text in zip(out[-2:], strings_on_top[-2:], strict=True)
            ):
                raise UnsafeCheckpointError("STACK_GLOBAL without two literal strings before it")
            del out[-2:]
            out.append(_global(*strings_on_top[-2:]))
        elif name in _BYTES_OPS:
            out.append(_push_bytes(arg))
        elif name in _PASS_THROUGH_OPS:
            out.append(_raw_op(stream, opcode, arg))
        else:
            raise UnsafeCheckpointError(f"pickle opcode {name} is not supported by the safe loader")
        strings_on_top.clear()
    return b"".join(out)


def _raw_op(stream: bytes, opcode: pickletools.OpcodeInfo, arg: Any) -> bytes:
    """The bytes of an opcode that is the same in protocols 2 and 4, re-serialised from its argument."""
    code = opcode.code.encode("latin1")
    if arg is None:
        return code
    if opcode.name == "BINFLOAT":
        return code + struct.pack(">d", arg)
    if opcode.name == "BININT":
        return code + struct.pack("<i", arg)
    if opcode.name in ("BININT1", "BININT2"):
        return code + arg.to_bytes(1 if opcode.name == "BININT1" else 2, "little")
    if opcode.name == "LONG1":
        raw = pickle.encode_long(arg)
        return code + bytes([len(raw)]) + raw
    if opcode.name == "SHORT_BINSTRING":
        raw = arg.encode("latin1")
        return code + bytes([len(raw)]) + raw
    raise UnsafeCheckpointError(f"unexpected argument for pickle opcode {opcode.name}")


def _checked_entries(archive: zipfile.ZipFile) -> tuple[str, list[zipfile.ZipInfo]]:
    """The archive's top-level folder and entries, if they are a torch checkpoint's in sizes that fit.

    Only the central directory is read: nothing is inflated.

    Raises:
        UnsafeCheckpointError: an entry no checkpoint has, twice the same name, no ``data.pkl``, or a size
            out of proportion.
    """
    entries = archive.infolist()
    folders = {entry.filename.partition("/")[0] for entry in entries}
    names = [entry.filename.partition("/")[2] for entry in entries]
    if len(folders) != 1 or names.count("data.pkl") != 1:
        raise UnsafeCheckpointError("not a torch checkpoint archive (one folder holding one data.pkl)")
    if len(set(names)) != len(names):
        raise UnsafeCheckpointError("an entry appears twice in the archive")
    for entry, name in zip(entries, names, strict=True):
        _check_entry(entry, name)
    tensor_bytes = sum(
        e.file_size for e, name in zip(entries, names, strict=True) if name.startswith("data/")
    )
    pickle_bytes = entries[names.index("data.pkl")].file_size
    if pickle_bytes > max(PICKLE_ALLOWANCE_BYTES, tensor_bytes):
        raise UnsafeCheckpointError(
            f"its data.pkl of {pickle_bytes:,} bytes is out of proportion to its {tensor_bytes:,} bytes of "
            "tensors"
        )
    return folders.pop(), entries


def _check_entry(entry: zipfile.ZipInfo, name: str) -> None:
    if name != "data.pkl" and name not in _METADATA_ENTRIES and not _TENSOR_ENTRY.fullmatch(name):
        raise UnsafeCheckpointError(f"entry {entry.filename!r} is not part of a torch checkpoint")
    if name in _METADATA_ENTRIES and entry.file_size > MAX_METADATA_BYTES:
        raise UnsafeCheckpointError(
            f"entry {entry.filename!r} declares {entry.file_size:,} bytes; such a record has a few"
        )
    if entry.file_size > max(_SMALL_ENTRY_BYTES, MAX_EXPANSION * entry.compress_size):
        raise UnsafeCheckpointError(
            f"entry {entry.filename!r} would inflate {entry.compress_size:,} bytes to {entry.file_size:,}"
        )


def _rewrite_archive(path: Path, copy: IO[bytes]) -> None:
    """Write into ``copy`` the torch zip archive at ``path`` with its ``data.pkl`` in protocol 2.

    Entries are checked first (:func:`_checked_entries`), then streamed one by one: only the pickle is held
    in memory, never a whole tensor.
    """
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(copy, "w", zipfile.ZIP_STORED) as target:
        folder, entries = _checked_entries(source)
        for entry in entries:
            if entry.filename == f"{folder}/data.pkl":
                target.writestr(entry.filename, to_protocol_2(source.read(entry)))
                continue
            large = entry.file_size > zipfile.ZIP64_LIMIT
            with source.open(entry) as reader, target.open(entry.filename, "w", force_zip64=large) as writer:
                shutil.copyfileobj(reader, writer, _COPY_CHUNK_BYTES)
    copy.seek(0)


def _is_zip_archive(path: Path) -> bool:
    """Whether the file starts like a zip archive (as torch.save's do), even if it is cut short."""
    with path.open("rb") as stream:
        return stream.read(4) == b"PK\x03\x04"


def load_allowlisted_checkpoint(path: str | Path, allowed_globals: Iterable[Any] | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` for protocol-4 checkpoints, with an allow-list of classes.

    ``allowed_globals`` defaults to :func:`flair_lm_allowed_globals`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the file needs a class outside ``allowed_globals``, is not a checkpoint, is
            damaged or truncated, or its archive holds entries that are not a checkpoint's or are out of
            proportion (see the module docstring); the message names ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        allowed = flair_lm_allowed_globals() if allowed_globals is None else list(allowed_globals)
        with tempfile.TemporaryFile() as copy:
            source: Path | IO[bytes] = path
            if _is_zip_archive(path):
                _rewrite_archive(path, copy)
                source = copy
            with torch.serialization.safe_globals(allowed):
                return torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise UnsafeCheckpointError(f"{path}: refused by the safe loader: {error}") from error
    except (zipfile.BadZipFile, OSError) as error:  # cut short, or offsets that point past the end
        raise UnsafeCheckpointError(f"{path}: damaged or truncated checkpoint ({error})") from error
