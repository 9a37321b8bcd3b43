"""What the commands share: the bad-input error, exit codes, models by path or bundled name, the device."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and the models are imported by the commands that load one, not for --help
    import torch

    from embedcache.models.tagger import SequenceTagger

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
DEFAULT_MODEL = "en-upos"
BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models" / "bundled"


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


def stdin_bytes() -> Iterable[bytes]:
    """stdin as bytes, so that input is decoded (and a bad byte reported) line by line."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        return buffer
    return (line.encode("utf-8") for line in sys.stdin)  # a text-only stand-in for stdin (tests, IDEs)


def checked_output(output: Path) -> Path:
    """``--output``, checked before any work is done: a file name in a directory that exists."""
    if output.is_dir():
        raise BadInput(f"--output {output}: is a directory; give a file name")
    if not output.parent.is_dir():
        raise BadInput(f"--output {output}: the directory {output.parent} does not exist")
    return output


def bundled_model_names() -> list[str]:
    """Names of the models shipped in the package (``embedcache/models/bundled/<name>/config.json``)."""
    if not BUNDLED_MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_MODELS_DIR.iterdir() if (p / "config.json").is_file())


def bundled_model_path(name: str) -> Path:
    """The directory of the bundled model ``name``.

    Raises:
        BadInput: no such bundled model; the message lists the ones there are.
    """
    path = BUNDLED_MODELS_DIR / name
    if name not in bundled_model_names():
        available = ", ".join(bundled_model_names()) or "none are installed"
        raise BadInput(
            f"{name}: no such model directory, and not a bundled model name (bundled: {available}); "
            "pass --model PATH to a model directory"
        )
    return path


def resolve_model(spec: str | None) -> Path:
    """A model directory from ``--model``: an existing path, else a bundled name (``None``: the default)."""
    if spec is None:
        if DEFAULT_MODEL not in bundled_model_names():
            available = ", ".join(bundled_model_names()) or "none are installed"
            raise BadInput(
                f"no --model given and the default bundled model {DEFAULT_MODEL!r} is not installed "
                f"(bundled: {available}); pass --model PATH to a model directory"
            )
        return bundled_model_path(DEFAULT_MODEL)
    path = Path(spec)
    if path.exists() or len(path.parts) > 1:
        return path
    return bundled_model_path(spec)


def load_model(spec: str | None, device: torch.device) -> SequenceTagger:
    """Load the tagger named by ``--model`` onto ``device``, in eval mode.

    Raises:
        BadInput: no such model, or a damaged one (:class:`ModelFormatError`).
    """
    from embedcache.models.serialization import ModelFormatError
    from embedcache.models.tagger import SequenceTagger

    path = resolve_model(spec)
    try:
        return SequenceTagger.load(path, device=device).eval()
    except (ModelFormatError, FileNotFoundError) as error:
        raise BadInput(error) from error


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
    """``--batch-size``, ``--storage-mode`` and ``--device``, shared by predict and evaluate."""
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


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
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
