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
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs more than the safe loader allows."""


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


def _rewrite_archive(path: Path) -> io.BytesIO:
    """A copy of the torch zip archive at ``path`` whose ``data.pkl`` uses protocol 2."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename.endswith("/data.pkl"):
                data = to_protocol_2(data)
            target.writestr(entry.filename, data)
    buffer.seek(0)
    return buffer


def load_checkpoint(path: str | Path, allowed_globals: Iterable[Any] | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` for protocol-4 checkpoints, with an allow-list of classes.

    ``allowed_globals`` defaults to :func:`flair_lm_allowed_globals`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the file needs a class outside ``allowed_globals`` or is not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        source: Path | io.BytesIO = _rewrite_archive(path) if zipfile.is_zipfile(path) else path
        allowed = flair_lm_allowed_globals() if allowed_globals is None else list(allowed_globals)
        with torch.serialization.safe_globals(allowed):
            return torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise UnsafeCheckpointError(f"{path}: refused by the safe loader: {error}") from error
