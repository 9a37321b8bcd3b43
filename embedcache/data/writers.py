"""Writing predictions: CoNLL columns, JSON lines and inline markup, to any text stream; atomic files.

Each writer takes :class:`~embedcache.models.predict.Prediction` objects (what ``SequenceTagger.predict``
returns) and writes them in order, one at a time, so a caller can stream chunk after chunk:

- ``conll``: ``token<TAB>tag`` per line, an empty line after each sentence;
- ``jsonl``: one JSON object per prediction (:meth:`Prediction.to_json`: tokens, tags, confidences, spans
  with character offsets into the input text where there was one);
- ``inline``: one line per prediction, the text with its spans marked (``[Apple]ORG is looking ...``) or,
  for plain tags such as POS, every token followed by its tag (``Apple/PROPN is/AUX ...``).

Example:
    >>> write_conll(tagger.predict(["Anna lives in Rome."]), sys.stdout)  # doctest: +SKIP
    Anna	B-PER
    lives	O
    ...
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TextIO, get_args

from embedcache.temporaries import remove_leftovers, temporary_prefix

if TYPE_CHECKING:  # types only: data sits upstream of models at run time
    from embedcache.models.labels import Scheme
    from embedcache.models.predict import Prediction

OutputFormat = Literal["conll", "jsonl", "inline"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


def write_conll(predictions: Iterable[Prediction], stream: TextIO) -> None:
    """``token<TAB>tag`` lines, an empty line after each sentence.

    A document of several sentences gives several blocks; a prediction without tokens gives none, so the
    output reads back with :func:`~embedcache.data.conll.read_column_file` into the same sentences.
    """
    for prediction in predictions:
        starts = prediction.sentence_starts or [0]
        for start, end in zip(starts, [*starts[1:], len(prediction.tokens)], strict=True):
            if start == end:
                continue
            tokens, tags = prediction.tokens[start:end], prediction.tags[start:end]
            stream.writelines(f"{token}\t{tag}\n" for token, tag in zip(tokens, tags, strict=True))
            stream.write("\n")


# Characters that JSON leaves unescaped but ``str.splitlines`` (and other line splitters) break lines at.
_LINE_BREAKS_IN_JSON = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def write_jsonl(predictions: Iterable[Prediction], stream: TextIO) -> None:
    """One JSON object per prediction and line (UTF-8 text, not ``\\u`` escapes).

    The few characters that some readers take for a line break (NEL, U+2028, U+2029) are escaped, so that
    every way of splitting the output into lines gives one object per line.
    """
    for prediction in predictions:
        record = json.dumps(prediction.to_json(), ensure_ascii=False)
        stream.write(record.translate(_LINE_BREAKS_IN_JSON))  # only inside strings: escaping keeps it valid
        stream.write("\n")


def write_inline(predictions: Iterable[Prediction], stream: TextIO, scheme: Scheme = "BIO") -> None:
    """One line of :func:`inline_markup` per prediction."""
    for prediction in predictions:
        stream.write(inline_markup(prediction, scheme))
        stream.write("\n")


def inline_markup(prediction: Prediction, scheme: Scheme = "BIO") -> str:
    """The input text with the tags written into it, keeping its spacing where the text is known.

    Span schemes (``BIO``, ``BIOES``) bracket each span and append its label: ``[Apple]ORG is looking``.
    With ``plain`` tags every token is followed by ``/TAG``: ``Apple/PROPN is/AUX``. Predictions without a
    text (token input) are written as their tokens joined by single spaces. Brackets already in the text
    are not escaped.
    """
    text, offsets = _text_and_offsets(prediction)
    tokens = prediction.tokens
    marks: list[tuple[int, str]] = []  # (character position, what to insert), in increasing position
    if scheme == "plain":
        for token, offset, tag in zip(tokens, offsets, prediction.tags, strict=True):
            marks.append((offset + len(token), f"/{tag}"))
    else:
        for span in prediction.spans:
            last = span.end - 1
            marks += [(offsets[span.start], "["), (offsets[last] + len(tokens[last]), f"]{span.label}")]
    pieces, cursor = [], 0
    for position, mark in marks:
        pieces += [text[cursor:position], mark]
        cursor = position
    pieces.append(text[cursor:])
    return "".join(pieces)


def _text_and_offsets(prediction: Prediction) -> tuple[str, list[int]]:
    if prediction.text is not None and prediction.offsets is not None:
        return prediction.text, prediction.offsets
    offsets, cursor = [], 0
    for token in prediction.tokens:
        offsets.append(cursor)
        cursor += len(token) + 1
    return " ".join(prediction.tokens), offsets


def write_predictions(
    predictions: Iterable[Prediction], stream: TextIO, format: OutputFormat, scheme: Scheme = "BIO"
) -> None:
    """Write in ``format`` (``"conll"``, ``"jsonl"`` or ``"inline"``); ``scheme`` matters for inline only."""
    if format == "conll":
        write_conll(predictions, stream)
    elif format == "jsonl":
        write_jsonl(predictions, stream)
    elif format == "inline":
        write_inline(predictions, stream, scheme)
    else:
        raise ValueError(f"unknown output format {format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")


class OutputWriteError(OSError):
    """An output could not be written (a full disk, a quota, an I/O error); ``filename`` is the output.

    Nothing half-written is left behind: an :class:`AtomicFile` target keeps its old content.
    """


class _ErrorsNameTheOutput(io.FileIO):
    """A temporary file whose write errors name the output it stands for (its own name means nothing)."""

    def __init__(self, descriptor: int, output: Path, consequence: str) -> None:
        super().__init__(descriptor, "r+")
        self.output, self.consequence = output, consequence

    def write(self, data: bytes) -> int:  # type: ignore[override]
        try:
            return super().write(data)
        except OSError as error:
            raise OutputWriteError(
                error.errno, f"{error.strerror} ({self.consequence})", str(self.output)
            ) from error


def _text_stream(descriptor: int, output: Path, consequence: str) -> TextIO:
    raw = _ErrorsNameTheOutput(descriptor, output, consequence)
    return io.TextIOWrapper(io.BufferedRandom(raw), encoding="utf-8", newline="\n")


def spool_file() -> TextIO:
    """An anonymous temporary UTF-8 text file, gone when closed; a full temporary directory is named."""
    descriptor, path = tempfile.mkstemp(prefix="embedcache-spool-")
    os.unlink(path)
    directory = Path(path).parent
    return _text_stream(
        descriptor, directory, "output is spooled here first; point TMPDIR at a disk with space"
    )


class AtomicFile:
    """A UTF-8 text file that appears whole or not at all.

    It is written under a temporary name in the target's directory (so the final rename stays on one file
    system) and renamed over ``path`` by :meth:`commit`. Leaving the ``with`` block without committing, on
    an exception or by choice, deletes the temporary file and leaves ``path`` as it was. A write that fails
    (a full disk) raises :class:`OutputWriteError` naming ``path``, and the ``with`` block then leaves no
    temporary file. Temporary names follow :mod:`embedcache.temporaries`, so what a killed writer left is
    removed by the next one.

    Example:
        >>> with AtomicFile("scores.json") as out:  # doctest: +SKIP
        ...     out.stream.write(text)
        ...     out.commit()
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        remove_leftovers(self.path)
        descriptor, temporary = tempfile.mkstemp(prefix=temporary_prefix(self.path), dir=self.path.parent)
        self.temporary = Path(temporary)
        self.stream: TextIO = _text_stream(descriptor, self.path, "nothing was written to it")
        self.committed = False

    def __enter__(self) -> AtomicFile:
        return self

    def commit(self) -> None:
        """Close the file and rename it over ``path`` (keeping the permissions an existing file had)."""
        self.stream.close()  # the last buffered writes: a full disk shows here at the latest
        mode = self.path.stat().st_mode & 0o7777 if self.path.is_file() else 0o666 & ~_umask()
        os.chmod(self.temporary, mode)  # mkstemp makes 0600 files; the output should look like any other
        os.replace(self.temporary, self.path)
        self.committed = True

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self.committed:
            with contextlib.suppress(OSError):  # the unwritten rest goes with the file
                self.stream.close()
            self.temporary.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask
