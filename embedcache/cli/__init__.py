"""The ``embedcache`` command line: ``predict``, ``train``, ``evaluate``, ``profile``, ``info``, ``convert``,
``export``, ``download``.

Each command is a thin shell over the library, in its own module: ``SUMMARY``, ``DESCRIPTION`` and
``EPILOG`` (examples) for its help, ``add_arguments(parser)``, and ``run(args) -> exit code``. A command
module imports torch, the models and Flair inside ``run``, not at the top: ``--help`` and ``--version``
build every command's parser and must not pay for them (``embedcache --version`` imports neither torch nor
Flair), and ``predict`` with an embedcache model never imports Flair.

Exit codes: 0 success; 2 bad input (a missing, unreadable or malformed file, an unknown or damaged model,
a bad recipe or option), reported in one line on stderr that names the file, and the line where there is
one; 1 an unexpected internal error, reported in one line with a hint to rerun with ``--debug`` for the
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

from embedcache.cli import convert, download, evaluate, export, info, predict, profile, train
from embedcache.cli.common import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR, one_line, positive_int
from embedcache.lazy_imports import is_instance_of
from embedcache.version import __version__

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  embedcache predict --model out/wnut17-ner/best-model posts.txt --format-out jsonl
  embedcache train recipes/wnut17_ner.toml --set training.max_epochs=20
  embedcache train recipes/lines_upos.toml --smoke
  embedcache evaluate out/wnut17-ner/best-model $EMBEDCACHE_DATA/wnut17/test.conll
  embedcache profile --data wnut17 --sentences 500 --hidden 256
  embedcache info out/wnut17-ner/best-model
  embedcache convert flair-ner/final-model.pt out/ner-from-flair
  embedcache export en-upos onnx-lms --onnx --int8
  embedcache download wnut17 --to ~/data

Run 'embedcache COMMAND --help' for the options and examples of a command.
exit codes: 0 success, 1 internal error (rerun with --debug), 2 bad input (one line on stderr).
"""
_COMMANDS = (predict, train, evaluate, profile, info, convert, export, download)

# Errors that are the user's to fix: exit code 2 and one line. Looked up by module, not imported: a module
# that was never imported cannot have raised its error, and importing the models or the recipes only to
# catch theirs would cost every command its start-up.
_BAD_INPUT_ERRORS = (
    ("embedcache.cli.common", "BadInput"),
    ("embedcache.data.conll", "DataFormatError"),
    ("embedcache.models.serialization", "ModelFormatError"),
    ("embedcache.recipes", "RecipeError"),
)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, with exit code 2 like every other bad input."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="embedcache",
        description="Contextual string embeddings and BiLSTM-CRF tagging on Flair character LMs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"embedcache {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    shared = _Parser(add_help=False)
    shared.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars, summaries, notes or info logs"
    )
    shared.add_argument(
        "--progress", action="store_true", help="progress bars on stderr even when it is not a terminal"
    )
    shared.add_argument(
        "--debug", action="store_true", help="show tracebacks of internal errors and debug logs"
    )
    shared.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: all cores)")
    for command in _COMMANDS:
        name = command.__name__.rpartition(".")[2]
        command_parser = commands.add_parser(
            name,
            parents=[shared],
            help=command.SUMMARY,
            description=command.DESCRIPTION,
            epilog=command.EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(command_parser)
        command_parser.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code instead of exiting.

    ``0`` success, ``2`` bad input, ``1`` internal error; ``130`` after Ctrl-C and ``141`` when the reader
    of stdout went away, as a shell reports a process killed by SIGINT or SIGPIPE.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors
        return 0 if exit.code is None else exit.code if isinstance(exit.code, int) else EXIT_BAD_INPUT
    prefix = f"embedcache {args.command}"
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    chatty = args.command == "train" and not args.quiet  # epoch results are the output of a training run
    with _log_to_stderr(logging.DEBUG if args.debug else logging.INFO if chatty else logging.WARNING):
        try:
            return args.run(args)
        except BrokenPipeError:
            _silence_stdout()  # the reader went away (| head): stop quietly, as a killed pipe would
            return 141
        except KeyboardInterrupt:
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
        except Exception as error:
            return _report(prefix, error, args.debug)


def _report(prefix: str, error: Exception, debug: bool) -> int:
    """One line on stderr for the error a command raised; the exit code it gives."""
    if _is_bad_input(error):
        print(f"{prefix}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(error, OSError) and error.filename is not None:
        print(f"{prefix}: error: {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _internal_error(prefix, error, debug)


def _is_bad_input(error: Exception) -> bool:
    return any(is_instance_of(error, module, name) for module, name in _BAD_INPUT_ERRORS)


def _internal_error(prefix: str, error: Exception, debug: bool) -> int:
    if debug:
        raise error
    print(
        f"{prefix}: internal error: {type(error).__name__}: {one_line(error)} "
        "(rerun with --debug for the traceback)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL_ERROR


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):  # not a real file (tests, notebooks): nothing to do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextlib.contextmanager
def _log_to_stderr(level: int) -> Iterator[None]:
    """The package's log lines on stderr for the duration of a command (then the handler is removed)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)  # its own level: a training run's log file may take more (training.log)
    package = logging.getLogger("embedcache")
    previous = package.level
    package.addHandler(handler)
    package.setLevel(level)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(previous)
