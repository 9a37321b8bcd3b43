"""``embedcache predict``: tag files or stdin in bounded memory and write CoNLL, JSON lines or inline markup.

Streaming: documents are read lazily and tagged in chunks of ``--chunk-size`` documents (sorted by length
inside a chunk so batches carry little padding, written back in input order), so memory holds one chunk
whatever the size of the input.

Output policy: an input's output appears whole or not at all. With ``--output`` everything goes to a
temporary file beside the target, an input that fails is cut off again, and the file is renamed over the
target at the end (not at all when every input failed). On stdout each input is spooled to an anonymous
temporary file and copied out once it is fully tagged.

Several ``--model``s run as one :class:`~embedcache.inference.pipeline.Pipeline` (shared LMs computed once);
``--nproc N`` shards the documents over N processes (:mod:`embedcache.cli.predict_ranks`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from embedcache.atomic import AtomicFile
from embedcache.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    BadInput,
    add_max_memory_option,
    add_runtime_options,
    checked_output,
    load_pipeline,
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
from embedcache.inference.writers import (
    OUTPUT_FORMATS,
    OutputWriteError,
    pipeline_header,
    spool_file,
    write_rows,
)

if TYPE_CHECKING:  # torch and the models are imported when a model is loaded, not for --help
    from embedcache.data.sentence import TaggedSentence
    from embedcache.inference.pipeline import Pipeline
    from embedcache.inference.predict import Prediction

EPILOG = r"""\
examples:
  echo "Apple is looking at buying a U.K. startup for $1 billion ." | embedcache predict --model DIR
  embedcache predict --model DIR posts.txt --format-out jsonl --output posts.jsonl
  embedcache predict --model DIR test.conll > tagged.conll
  embedcache predict --model DIR --format-in tokens tokens.txt --format-out inline
  cat a.txt | embedcache predict --model DIR - b.txt          # stdin first, then b.txt
  embedcache predict --model en-upos --model NER_DIR posts.txt  # two taggers, one LM pass
  embedcache predict --model DIR big.txt --nproc 4 --output big.conll   # 4 processes (torchrun)

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

several models (--model A --model B): the taggers share what is identical (character LMs, by
fingerprint: loaded once, run once per batch). conll gets one tag column per model, in order, and a
first line "# models = A B"; jsonl one key per model holding its tags, confidences and spans; inline
is refused (its markup holds one label per stretch). Models are named by their tag types (upos, ner),
or by the --model values when two share a tag type.

--nproc N: N processes started with torch.distributed.run (one per GPU on CUDA, cuda:LOCAL_RANK;
on the CPU each gets 1/N of the cores unless --threads says otherwise). The documents of all inputs are
split into N contiguous ranges; each rank tags its range into a temporary file beside --output (which
is required; stdin cannot be shared), and rank 0 joins the parts in input order into --output. If a
rank dies, the run fails with one line, --output is left as it was and the parts are removed. Several
machines (not tested here): start the same command without --nproc on each under torchrun's rendezvous,
"torchrun --nnodes 2 --node-rank K --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500
--no-python embedcache predict ... --output OUT", with the inputs and OUT's directory on a file system
every machine sees (rank 0 reads the other ranks' parts from there); parts of a killed rank on another
machine are not removed (pids cannot be checked across machines).

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
        "-m",
        "--model",
        action="append",
        help="a model directory or a bundled model name (default: the bundled model); repeat it to run "
        "several taggers in one pass (see below)",
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
    parser.add_argument(
        "--nproc",
        type=positive_int,
        metavar="N",
        help="tag on N processes of this machine (torch.distributed.run); needs --output (see below)",
    )


def run(args: argparse.Namespace) -> int:
    sources = args.inputs or [STDIN]
    output = checked_output(args.output, sources) if args.output is not None else None
    specs = args.model or [None]
    if len(specs) > 1 and args.format_out == "inline":
        raise BadInput(
            "--format-out inline marks one model's labels; with several --model use conll or jsonl"
        )
    from embedcache.cli import predict_ranks
    from embedcache.training.distributed import launched_by_torchrun

    backend = (args.backend, args.int8, args.onnx_dir)
    if launched_by_torchrun():  # one rank of --nproc (or of a torchrun the user started): tag a share
        pipeline = load_pipeline(specs, predict_ranks.rank_device(resolve_device(args.device)), *backend)
        return predict_ranks.run_rank(pipeline, sources, output, args, _tag_input)
    if args.nproc is not None and args.nproc > 1:
        return predict_ranks.launch(args, sources, output)
    pipeline = load_pipeline(specs, resolve_device(args.device), *backend)
    if STDIN in sources and stdin_is_terminal():
        note("reading documents from the terminal; end with Ctrl-D", args.quiet)
    failures = 0
    feedback = Feedback("predict", bar=show_progress(args.quiet, args.progress), quiet=args.quiet)
    preamble = pipeline_header(args.format_out, pipeline.names)
    with feedback, _FileSink(output, preamble) if output is not None else _StdoutSink(preamble) as sink:
        for source in sources:
            sink.begin()
            try:
                _tag_input(pipeline, source, args, sink.stream, feedback)
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
    pipeline: Pipeline,
    source: str,
    args: argparse.Namespace,
    stream: TextIO,
    feedback: Feedback,
    documents_range: tuple[int, int] | None = None,
) -> None:
    """Tag one input, or its documents ``start:stop`` (a rank's share), and write them to ``stream``."""
    name = STDIN_NAME if source == STDIN else source
    input_format = guess_format(source) if args.format_in == "auto" else args.format_in
    documents = read_documents(source, input_format, stdin=stdin_bytes() if source == STDIN else None)
    if documents_range is not None:
        documents = islice(documents, *documents_range)
    schemes = [tagger.tags.scheme for tagger in pipeline.taggers]
    count = 0
    for chunk in _chunks(documents, args.chunk_size):
        rows = _predict_chunk(pipeline, chunk, args, feedback)
        write_rows(rows, stream, args.format_out, pipeline.names, schemes)
        count += len(chunk)
    feedback.documents += count
    if count == 0 and documents_range is None:
        note(f"{name}: empty input, nothing to tag", args.quiet)


def _chunks(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    documents = iter(documents)
    while chunk := list(islice(documents, size)):
        yield chunk


def _predict_chunk(
    pipeline: Pipeline, chunk: list[Document], args: argparse.Namespace, feedback: Feedback
) -> list[tuple[Prediction, ...]]:
    """Tag one chunk; raw text goes in as strings (the tagger tokenises it), everything else as tokens.

    Predictions of input lines (raw text, lines of tokens) keep the line's text, offsets and source, so
    that the writers can mark which line each sentence came from.
    """
    from embedcache.inference.predict import predict_many
    from embedcache.inference.predict_budget import InputOverBudgetError

    items = [_predict_item(document) for document in chunk]
    try:
        rows = predict_many(
            pipeline, items, args.batch_size, args.storage_mode, memory_budget_bytes=args.max_memory,
            on_batch=feedback.batch_tagged,
        )  # fmt: skip
    except InputOverBudgetError as error:
        raise BadInput(f"{chunk[error.position].source}: {error.detail} (--max-memory)") from error
    except ValueError:
        _raise_for_untokenisable_line(chunk)
        raise
    for document, row in zip(chunk, rows, strict=True):
        if document.text is None:  # a CoNLL sentence: no line to point back to
            continue
        for prediction in row:
            prediction.source = document.source
            if document.sentence is not None:  # a line of tokens: keep its text and offsets
                prediction.text, prediction.offsets = document.text, document.sentence.offsets
    return rows


def _predict_item(document: Document) -> str | TaggedSentence:
    """What the tagger takes of a document: its tokens when given, else its line of raw text."""
    if document.sentence is not None:
        return document.sentence
    assert document.text is not None  # a document without tokens is a line of raw text
    return document.text


def _raise_for_untokenisable_line(chunk: list[Document]) -> None:
    """predict() tokenises raw text itself and cannot tell which line a tokeniser error came from."""
    for document in chunk:
        if document.sentence is None and document.text is not None:
            try:
                tokenize_document(document.text)
            except ValueError as error:
                raise BadInput(f"{document.source}: cannot tokenise this line: {error}") from error


class _FileSink:
    """``--output FILE``: one temporary file beside it; a failed input is cut off; renamed at the end.

    ``preamble`` (the header of several models) starts the file.
    """

    def __init__(self, path: Path, preamble: str = "") -> None:
        self.file = AtomicFile(path)
        self.stream: TextIO = self.file.stream
        self.stream.write(preamble)
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
    """stdout: each input is spooled to an anonymous temporary file and copied out when it succeeds;
    ``preamble`` goes out before the first input that does."""

    def __init__(self, preamble: str = "") -> None:
        self.stream: TextIO = sys.stdout
        self.preamble = preamble

    def __enter__(self) -> _StdoutSink:
        return self

    def begin(self) -> None:
        self.stream = spool_file()

    def commit(self) -> None:
        sys.stdout.write(self.preamble)
        self.preamble = ""
        self.stream.seek(0)
        shutil.copyfileobj(self.stream, sys.stdout)
        sys.stdout.flush()
        self.stream.close()

    def rollback(self) -> None:
        self.stream.close()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if self.stream is not sys.stdout:
            self.stream.close()
