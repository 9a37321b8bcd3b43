"""``embedcache predict``: tag files or stdin in bounded memory and write CoNLL, JSON lines or inline markup.

Streaming: documents are read lazily and tagged in chunks of ``--chunk-size`` documents (sorted by length
inside a chunk so batches carry little padding, written back in input order), so memory holds one chunk
whatever the size of the input.

Output policy: an input's output appears whole or not at all. With ``--output`` everything goes to a
temporary file beside the target, an input that fails is cut off again, and the file is renamed over the
target at the end (not at all when every input failed). On stdout each input is spooled to an anonymous
temporary file and copied out once it is fully tagged.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from embedcache.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    BadInput,
    add_max_memory_option,
    add_runtime_options,
    checked_output,
    load_model,
    note,
    one_line,
    positive_int,
    resolve_device,
    show_progress,
    stdin_bytes,
    stdin_is_terminal,
)
from embedcache.cli.feedback import Feedback
from embedcache.data.conll import DataFormatError
from embedcache.data.readers import (
    INPUT_FORMATS,
    STDIN,
    STDIN_NAME,
    Document,
    guess_format,
    read_documents,
)
from embedcache.data.tokenize import tokenize_document
from embedcache.data.writers import (
    OUTPUT_FORMATS,
    AtomicFile,
    OutputWriteError,
    spool_file,
    write_predictions,
)

if TYPE_CHECKING:  # torch and the models are imported when a model is loaded, not for --help
    from embedcache.models.predict import Prediction
    from embedcache.models.tagger import SequenceTagger

EPILOG = r"""\
examples:
  echo "Apple is looking at buying a U.K. startup for $1 billion ." | embedcache predict --model DIR
  embedcache predict --model DIR posts.txt --format-out jsonl --output posts.jsonl
  embedcache predict --model DIR test.conll > tagged.conll
  embedcache predict --model DIR --format-in tokens tokens.txt --format-out inline
  cat a.txt | embedcache predict --model DIR - b.txt          # stdin first, then b.txt

input formats (--format-in; auto: .conllu -> conllu, .conll/.bio/.iob/.tsv -> conll,
                .tok/.tokens -> tokens, anything else and stdin -> text):
  text     one document per line, split into sentences and tokenised with segtok as Flair does
  tokens   one sentence per line, tokens separated by whitespace
  conll    one token per line in the first column, an empty line between sentences; every token
           line needs as many columns as the first one (other columns are ignored)
  conllu   CoNLL-U (the FORM column; multi-word ranges and empty nodes are skipped)

output formats (--format-out):
  conll    token<TAB>tag, an empty line after each sentence; for text and tokens input, as in
           CoNLL-U, "# newdoc id = FILE:LINE" starts each input line (also one that gave no
           sentence) and "# text = ..." each of its sentences (tabs and line breaks shown as spaces)
  jsonl    one JSON object per input line (text, tokens) or sentence (conll, conllu): text, tokens,
           tags, confidences, token offsets into the line, and for span tags (BIO, BIOES) the spans
           with character offsets
  inline   one line per input line or sentence, the text with its original spacing and each span
           (span tags) or token (plain tags such as POS) marked: "[Apple Inc.|ORG] is looking ...",
           "[Apple|PROPN] [is|AUX] [(|PUNCT][and|CCONJ] ..."; \ [ ] | in the text are written
           \\ \[ \] \|, so the markup reads back unambiguously

progress: a bar on stderr (sentences, words/s) when stderr is a terminal or with --progress, and,
when every input was tagged, a one-line summary at the end (documents, sentences, tokens, words/s,
where the output went); --quiet: neither.

errors: a bad input (missing, a directory, not UTF-8, malformed, a line over 1 MiB, lines ending in a
carriage return alone) is reported in one line on stderr naming the file and line; the other inputs
are still tagged and written, and the exit code is 2.
An input's output appears whole or not at all; --output is replaced only at the end. An empty input
gives no output and a note on stderr (exit code 0).
"""


SUMMARY = "tag text, token or CoNLL files (or stdin)"
DESCRIPTION = "Tag documents with a sequence tagger, streaming: memory stays bounded on any input."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="files to tag; '-' or none: stdin")
    parser.add_argument(
        "-m", "--model", help="a model directory or a bundled model name (default: the bundled model)"
    )
    parser.add_argument(
        "--format-in", choices=("auto", *INPUT_FORMATS), default="auto", help="see below (default: auto)"
    )
    parser.add_argument("--format-out", choices=OUTPUT_FORMATS, default="conll", help="see below (conll)")
    parser.add_argument("-o", "--output", type=Path, help="write here (atomically) instead of stdout")
    add_runtime_options(parser)
    add_max_memory_option(
        parser,
        "a cap on a batch's LM states and activations: batches are made small enough to fit, and an input "
        "with a sentence that alone needs more is refused up front (file:line, with the arithmetic) while "
        "the other inputs are tagged; the model and the runtime come on top",
    )
    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=1000,
        help="documents read, tagged and written at a time; bounds the memory (1000)",
    )


def run(args: argparse.Namespace) -> int:
    sources = args.inputs or [STDIN]
    output = checked_output(args.output, sources) if args.output is not None else None
    tagger = load_model(args.model, resolve_device(args.device), args.backend, args.int8, args.onnx_dir)
    if STDIN in sources and stdin_is_terminal():
        note("reading documents from the terminal; end with Ctrl-D", args.quiet)
    failures = 0
    feedback = Feedback("predict", bar=show_progress(args.quiet, args.progress), quiet=args.quiet)
    with feedback, _FileSink(output) if output is not None else _StdoutSink() as sink:
        for source in sources:
            sink.begin()
            try:
                _tag_input(tagger, source, args, sink.stream, feedback)
            except (BadInput, DataFormatError) as error:
                failures += _failed(sink, error)
            except OutputWriteError:
                raise  # no later input could be written either
            except OSError as error:
                if error.filename is None:  # not about an input file (a closed pipe)
                    raise
                failures += _failed(sink, f"{error.filename}: {error.strerror}")
            else:
                sink.commit()
    if failures:  # each failed input has had its one line of error; no summary to read them past
        return EXIT_BAD_INPUT
    if feedback.documents:  # empty inputs have had their note
        feedback.summarize(str(output) if output is not None else "stdout")
    return EXIT_OK


def _failed(sink: _FileSink | _StdoutSink, error: object) -> int:
    sink.rollback()
    print(f"embedcache predict: error: {one_line(error)}", file=sys.stderr)
    return 1


def _tag_input(
    tagger: SequenceTagger, source: str, args: argparse.Namespace, stream: TextIO, feedback: Feedback
) -> None:
    name = STDIN_NAME if source == STDIN else source
    input_format = guess_format(source) if args.format_in == "auto" else args.format_in
    documents = read_documents(source, input_format, stdin=stdin_bytes() if source == STDIN else None)
    count = 0
    for chunk in _chunks(documents, args.chunk_size):
        predictions = _predict_chunk(tagger, chunk, args, feedback)
        write_predictions(predictions, stream, args.format_out, tagger.tags.scheme)
        count += len(chunk)
    feedback.documents += count
    if count == 0:
        note(f"{name}: empty input, nothing to tag", args.quiet)


def _chunks(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    documents = iter(documents)
    while chunk := list(islice(documents, size)):
        yield chunk


def _predict_chunk(
    tagger: SequenceTagger, chunk: list[Document], args: argparse.Namespace, feedback: Feedback
) -> list[Prediction]:
    """Tag one chunk; raw text goes in as strings (the tagger tokenises it), everything else as tokens.

    Predictions of input lines (raw text, lines of tokens) keep the line's text, offsets and source, so
    that the writers can mark which line each sentence came from.
    """
    from embedcache.models.predict import InputOverBudgetError, predict

    items = [document.text if document.sentence is None else document.sentence for document in chunk]
    try:
        predictions = predict(
            tagger, items, args.batch_size, args.storage_mode, memory_budget_bytes=args.max_memory,
            on_batch=feedback.batch_tagged,
        )  # fmt: skip
    except InputOverBudgetError as error:
        raise BadInput(f"{chunk[error.position].source}: {error.detail} (--max-memory)") from error
    except ValueError:
        _raise_for_untokenisable_line(chunk)
        raise
    for document, prediction in zip(chunk, predictions, strict=True):
        if document.text is None:  # a CoNLL sentence: no line to point back to
            continue
        prediction.source = document.source
        if document.sentence is not None:  # a line of tokens: keep its text and offsets
            prediction.text, prediction.offsets = document.text, document.sentence.offsets
    return predictions


def _raise_for_untokenisable_line(chunk: list[Document]) -> None:
    """predict() tokenises raw text itself and cannot tell which line a tokeniser error came from."""
    for document in chunk:
        if document.sentence is None and document.text is not None:
            try:
                tokenize_document(document.text)
            except ValueError as error:
                raise BadInput(f"{document.source}: cannot tokenise this line: {error}") from error


class _FileSink:
    """``--output FILE``: one temporary file beside it; a failed input is cut off; renamed at the end."""

    def __init__(self, path: Path) -> None:
        self.file = AtomicFile(path)
        self.stream: TextIO = self.file.stream
        self.mark = 0
        self.inputs_kept = 0

    def __enter__(self) -> _FileSink:
        return self

    def begin(self) -> None:
        self.mark = self.stream.tell()

    def commit(self) -> None:
        self.inputs_kept += 1

    def rollback(self) -> None:
        self.stream.seek(self.mark)
        self.stream.truncate()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            if kind is None and self.inputs_kept:
                self.file.commit()
        finally:
            self.file.__exit__(kind, None, None)


class _StdoutSink:
    """stdout: each input is spooled to an anonymous temporary file and copied out when it succeeds."""

    def __init__(self) -> None:
        self.stream: TextIO = sys.stdout

    def __enter__(self) -> _StdoutSink:
        return self

    def begin(self) -> None:
        self.stream = spool_file()

    def commit(self) -> None:
        self.stream.seek(0)
        shutil.copyfileobj(self.stream, sys.stdout)
        sys.stdout.flush()
        self.stream.close()

    def rollback(self) -> None:
        self.stream.close()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()
