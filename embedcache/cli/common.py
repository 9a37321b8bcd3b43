"""What the commands share: the bad-input error, exit codes, models by path or bundled name, the device."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and the models are imported by the commands that load one, not for --help
    import torch

    from embedcache.inference.pipeline import Pipeline
    from embedcache.inference.tagger import SequenceTagger
    from embedcache.inference.tagger_group import WeightBytes
    from embedcache.models.backends import BackendChoice

from embedcache.models.catalog import DEFAULT_MODEL, resolve_model_path

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Input the user can fix (a file, a model, a recipe, an option): exit code 2 and a one-line message.

    The message names the file, and the line where there is one.
    """


def one_line(message: object) -> str:
    """``message`` on a single line, so that each error is exactly one line of stderr."""
    return " ".join(str(message).split("\n")).strip()


def note(message: str, quiet: bool) -> None:
    """An informational line on stderr, unless ``--quiet``."""
    if not quiet:
        print(f"note: {one_line(message)}", file=sys.stderr)


def show_progress(quiet: bool, forced: bool = False) -> bool:
    """Progress bars for a person watching (stderr is a terminal) or when asked for (``--progress``); never
    with ``--quiet``."""
    return not quiet and (forced or sys.stderr.isatty())


def stdin_is_terminal() -> bool:
    """Whether a person types the input (stdin is open and a terminal)."""
    return sys.stdin is not None and sys.stdin.isatty()


def stdin_bytes() -> Iterable[bytes]:
    """stdin as bytes, so that input is decoded (and a bad byte reported) line by line.

    Raises:
        BadInput: stdin is closed (``<&-``): Python then has no ``sys.stdin`` at all.
    """
    if sys.stdin is None:
        raise BadInput("-: stdin is closed; pipe the input in or pass a file name instead of '-'")
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return buffer
    return (line.encode("utf-8") for line in sys.stdin)  # a text-only stand-in for stdin (tests, IDEs)


def checked_output(output: Path, inputs: Sequence[str] = ()) -> Path:
    """``--output``, checked before any work is done: a file name in a directory that exists, and not one
    of the ``inputs`` (by any name: a symlink, a hard link or a relative path), which it would replace."""
    if output.is_dir():
        raise BadInput(f"--output {output}: is a directory; give a file name")
    if not output.parent.is_dir():
        raise BadInput(f"--output {output}: the directory {output.parent} does not exist")
    for source in inputs:
        if source != "-" and _same_file(source, output):
            raise BadInput(
                f"--output {output}: is the input {source}, which would be replaced by its tags; "
                "write to another file"
            )
    return output


def _same_file(first: str | Path, second: str | Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet): then they are not the same file
        return False


def resolve_model(spec: str | None) -> Path:
    """A model directory from ``--model``: an existing path, else a bundled name (``None``: the default).

    Raises:
        BadInput: neither a path nor a bundled model name.
    """
    try:
        return resolve_model_path(DEFAULT_MODEL if spec is None else spec)
    except FileNotFoundError as error:
        given = "no --model given and the default model is not installed: " if spec is None else ""
        raise BadInput(f"{given}{error}; pass --model PATH to a model directory") from error


def load_model(
    spec: str | None,
    device: torch.device,
    backend: BackendChoice = "torch",
    int8: bool = False,
    onnx_dir: Path | None = None,
) -> SequenceTagger:
    """Load the tagger named by ``--model`` onto ``device``, in eval mode, its LMs and head on ``backend``.

    Raises:
        BadInput: no such model, or a damaged one (:class:`ModelFormatError`); the onnx backend without
            ONNX Runtime or with a damaged export (:class:`OnnxBackendError`); an unknown backend in
            ``$EMBEDCACHE_BACKEND``.
    """
    from embedcache.inference.tagger import SequenceTagger
    from embedcache.models.serialization import ModelFormatError
    from embedcache.onnx_graphs import OnnxBackendError

    if backend not in BACKEND_CHOICES:
        choices = ", ".join(BACKEND_CHOICES)
        raise BadInput(f"EMBEDCACHE_BACKEND={backend}: not a backend; set it to one of {choices}")
    path = resolve_model(spec)
    if int8 and backend == "torch":
        raise BadInput("--int8 runs the LMs on ONNX Runtime; add --backend onnx")
    if onnx_dir is not None and backend == "torch":
        raise BadInput("--onnx-dir holds graphs for ONNX Runtime; add --backend onnx (or auto), not torch")
    backend = "onnx" if int8 else backend  # --int8 asks for ONNX Runtime whatever auto would choose
    try:
        return SequenceTagger.load(path, device, backend, int8, onnx_dir).eval()
    except (ModelFormatError, FileNotFoundError, OnnxBackendError) as error:
        raise BadInput(error) from error


def load_pipeline(
    specs: Sequence[str | None],
    device: torch.device,
    backend: BackendChoice = "torch",
    int8: bool = False,
    onnx_dir: Path | None = None,
) -> Pipeline:
    """The taggers of the ``--model`` values as one pipeline (one tagger: a pipeline of one), named by
    their tag types when these differ (``upos``, ``ner``), else by the ``--model`` values as given; their
    LMs on ``backend`` (see :func:`load_model`).

    Raises:
        BadInput: a model that cannot be loaded, or one given twice.
    """
    from embedcache.inference.pipeline import Pipeline

    taggers = [load_model(spec, device, backend, int8, onnx_dir) for spec in specs]
    tag_types = [tagger.tag_type for tagger in taggers]
    names = tag_types if len(set(tag_types)) == len(tag_types) else [str(spec) for spec in specs]
    repeated = [name for name in names if names.count(name) > 1]
    if repeated:
        raise BadInput(f"--model {repeated[0]}: given twice; give each model once")
    return Pipeline(taggers, names)


def describe_weight_bytes(nbytes: WeightBytes) -> list[str]:
    """Lines saying what the weights of a pipeline take: shared embedders once, then each tagger."""
    lines = [f"shared embedders {nbytes.shared_embedders:,} bytes (each distinct LM counted once)"]
    lines += [f"tagger {name} {size:,} bytes (its own layers)" for name, size in nbytes.taggers.items()]
    lines.append(f"total {nbytes.total:,} bytes; loaded one by one {nbytes.separately:,} bytes")
    return lines


def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` when there is a GPU, else ``cpu``; any torch device name otherwise."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise BadInput(f"--device {name}: not a device name (cpu, cuda, cuda:1, auto)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"--device {name}: no CUDA device is available here; use --device cpu")
    return device


def add_runtime_options(parser: argparse.ArgumentParser, batch_size: int = 32) -> None:
    """``--batch-size``, ``--storage-mode``, ``--device`` and the backend, shared by predict and evaluate."""
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        help=f"sentences per forward pass ({batch_size})",
    )
    parser.add_argument(
        "--storage-mode",
        choices=("none", "cpu", "gpu"),
        default="none",
        help="keep token embeddings while tagging: none (default; nothing kept, no copies), cpu or gpu",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: GPU if present)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default=default_backend(),
        help="what runs the char LMs and the tagger's BiLSTM: auto (default, or $EMBEDCACHE_BACKEND): ONNX "
        "Runtime int8 on the CPU where it is installed (pip install 'embedcache[onnx]'), else torch; torch; "
        "or onnx (fp32, torch's tags; --int8 for int8). Exports go to ~/.cache/embedcache/onnx on first use",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="ONNX Runtime with int8-quantised weights (faster, slightly less exact); auto's choice on a CPU",
    )
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        metavar="DIR",
        help="ONNX Runtime with the graphs exported by 'embedcache export' to DIR",
    )


BACKEND_CHOICES = ("auto", "torch", "onnx")  # embedcache.models.backends.BACKENDS, without importing torch


def default_backend() -> str:
    """``$EMBEDCACHE_BACKEND`` (a test suite's or a site's choice), else ``auto``; checked by
    :func:`load_model`, since argparse checks only the values given on the command line."""
    return os.environ.get("EMBEDCACHE_BACKEND", "auto")


MAX_COUNT = 2**31 - 1  # any count (threads, sentences, documents) beyond this is a typo, not a plan


def positive_int(text: str) -> int:
    """An argparse type: an integer from 1 to :data:`MAX_COUNT`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a positive integer up to {MAX_COUNT:,}, got {value}")
    return value


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def memory_size(text: str) -> int:
    """An argparse type: bytes, with an optional unit (``512MiB``, ``2GB``, ``1.5 GiB``, ``4096``).

    Units are case-insensitive; ``KB``, ``MB``, ``GB``, ``TB`` are powers of 1000, ``KiB``, ``MiB``,
    ``GiB``, ``TiB`` powers of 1024.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512MiB, 2GB or a number of bytes, got {text!r}"
        )
    value = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a size of at least 1 byte, got {text!r}")
    return value


def add_max_memory_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--max-memory SIZE``: a budget in bytes (``None`` when not given); ``what`` says what it caps."""
    parser.add_argument("--max-memory", type=memory_size, metavar="SIZE", help=f"{what} (e.g. 512MiB, 2GB)")
