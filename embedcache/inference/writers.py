"""Writing predictions: CoNLL columns, JSON lines and inline markup, to any text stream.

Each writer takes :class:`~embedcache.inference.predict.Prediction` objects (what ``SequenceTagger.predict``
returns) and writes them in order, one at a time, so a caller can stream chunk after chunk:

- ``conll``: ``token<TAB>tag`` per line, an empty line after each sentence. A prediction of an input line
  (raw text or a line of tokens) starts with ``# newdoc id = FILE:LINE`` (``# newdoc`` where the source is
  not known), even when the line gave no sentence, and each of its sentences with ``# text = SENTENCE``,
  as in CoNLL-U: the tokens of every input line, and the line they came from, read back from the output.
  In those comments, tabs and characters that other programs take for line breaks are written as spaces;
  the JSON lines have the exact text and offsets;
- ``jsonl``: one JSON object per prediction (:meth:`Prediction.to_json`: text, tokens, tags, confidences,
  token offsets into the input text where there was one, and for span schemes the spans);
- ``inline``: one line per prediction, the text with ``[STRETCH|LABEL]`` markup (see
  :mod:`embedcache.inference.inline`).

Several models over the same inputs (a :class:`~embedcache.inference.pipeline.Pipeline`) are written by
:func:`write_rows`, one row of predictions per input: CoNLL gets one tag column per model, in order, named by
:func:`pipeline_header`; a JSON line gets one key per model. Inline markup shows one model's labels and is
refused for several.

Example:
    >>> write_conll(tagger.predict(["Anna lives in Rome."]), sys.stdout)  # doctest: +SKIP
    # newdoc
    # text = Anna lives in Rome.
    Anna	B-PER
    lives	O
    ...
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, get_args

from embedcache.atomic import WriteError, named_text_stream
from embedcache.inference.inline import inline_markup

if TYPE_CHECKING:  # types only: data sits upstream of models at run time
    from embedcache.inference.predict import Prediction
    from embedcache.models.labels import Scheme

OutputFormat = Literal["conll", "jsonl", "inline"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


def write_conll(predictions: Iterable[Prediction], stream: TextIO) -> None:
    """``token<TAB>tag`` lines, an empty line after each sentence; comments mark input lines (see above).

    A document of several sentences gives several blocks; a prediction without tokens gives no block, so the
    output reads back with :func:`~embedcache.data.conll.read_column_file` into the same sentences.
    """
    _write_conll_rows(((prediction,) for prediction in predictions), stream)


def _write_conll_rows(rows: Iterable[Sequence[Prediction]], stream: TextIO) -> None:
    """``token<TAB>tag<TAB>tag…``: the first prediction of a row gives tokens and comments, each its tags."""
    for row in rows:
        first = row[0]
        if first.text is not None:
            source = first.source
            stream.write("# newdoc\n" if source is None else f"# newdoc id = {_comment_value(source)}\n")
        for start, end in first.sentence_bounds():
            if first.text is not None and first.offsets is not None:
                stream.write(f"# text = {_comment_value(_sentence_text(first, start, end))}\n")
            columns = [first.tokens[start:end], *(prediction.tags[start:end] for prediction in row)]
            stream.writelines("\t".join(cells) + "\n" for cells in zip(*columns, strict=True))
            stream.write("\n")


def _sentence_text(prediction: Prediction, start: int, end: int) -> str:
    """The text from the first character of token ``start`` to the last of token ``end - 1``."""
    offsets, tokens = prediction.offsets or [], prediction.tokens
    return (prediction.text or "")[offsets[start] : offsets[end - 1] + len(tokens[end - 1])]


# A tab, and what str.splitlines() (and so many other line readers) takes for a line break besides "\n".
_NOT_IN_COMMENTS = str.maketrans(dict.fromkeys("\t\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))


def _comment_value(text: str) -> str:
    """``text`` fit for a one-line comment: tabs and line-break characters become spaces (same length)."""
    return text.translate(_NOT_IN_COMMENTS)


# Characters that JSON leaves unescaped but ``str.splitlines`` (and other line splitters) break lines at.
_LINE_BREAKS_IN_JSON = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def write_jsonl(predictions: Iterable[Prediction], stream: TextIO, scheme: Scheme = "BIO") -> None:
    """One JSON object per prediction and line (UTF-8 text, not ``\\u`` escapes); spans for span schemes.

    The few characters that some readers take for a line break (NEL, U+2028, U+2029) are escaped, so that
    every way of splitting the output into lines gives one object per line.
    """
    _write_json_lines((prediction.to_json(scheme) for prediction in predictions), stream)


def _write_json_lines(records: Iterable[dict[str, object]], stream: TextIO) -> None:
    for record in records:
        line = json.dumps(record, ensure_ascii=False)
        stream.write(line.translate(_LINE_BREAKS_IN_JSON))  # only inside strings: escaping keeps it valid
        stream.write("\n")


def _pipeline_record(row: Sequence[Prediction], names: Sequence[str], schemes: Sequence[Scheme]) -> dict:
    """The input's text, tokens and offsets once, then per model name its tags, confidences and spans."""
    first = row[0].to_json(schemes[0])
    record: dict[str, Any] = {key: first[key] for key in ("text", "tokens", "offsets") if key in first}
    for name, prediction, scheme in zip(names, row, schemes, strict=True):
        record[name] = {k: v for k, v in prediction.to_json(scheme).items() if k not in record}
    return record


def write_inline(predictions: Iterable[Prediction], stream: TextIO, scheme: Scheme = "BIO") -> None:
    """One line of :func:`~embedcache.inference.inline.inline_markup` per prediction."""
    for prediction in predictions:
        stream.write(inline_markup(prediction, scheme))
        stream.write("\n")


def write_predictions(
    predictions: Iterable[Prediction], stream: TextIO, format: OutputFormat, scheme: Scheme = "BIO"
) -> None:
    """Write in ``format`` (``"conll"``, ``"jsonl"`` or ``"inline"``); ``scheme``: the tags' scheme."""
    if format == "conll":
        write_conll(predictions, stream)
    elif format == "jsonl":
        write_jsonl(predictions, stream, scheme)
    elif format == "inline":
        write_inline(predictions, stream, scheme)
    else:
        raise ValueError(f"unknown output format {format!r}; choose one of {', '.join(OUTPUT_FORMATS)}")


def pipeline_header(format: OutputFormat, names: Sequence[str]) -> str:
    """What starts the output of several models: for CoNLL a comment naming the tag columns in order
    (``# models = upos ner``), nothing for JSON lines (their keys name the models)."""
    if format != "conll" or len(names) < 2:
        return ""
    return f"# models = {_comment_value(' '.join(names))}\n"


def write_rows(
    rows: Iterable[Sequence[Prediction]],
    stream: TextIO,
    format: OutputFormat,
    names: Sequence[str],
    schemes: Sequence[Scheme],
) -> None:
    """Write the predictions of several models (one row per input: one prediction per model, in order).

    One model writes exactly what :func:`write_predictions` writes. Several: CoNLL gets one tag column per
    model, JSON lines one key per model (``{"text", "tokens", "offsets", "upos": {"tags", ...}, ...}``).

    Raises:
        ValueError: ``inline`` with several models (its markup holds one label per stretch of text).
    """
    if len(names) == 1:
        write_predictions((prediction for (prediction,) in rows), stream, format, schemes[0])
    elif format == "conll":
        _write_conll_rows(rows, stream)
    elif format == "jsonl":
        _write_json_lines((_pipeline_record(row, names, schemes) for row in rows), stream)
    else:
        raise ValueError(f"{format} output shows one model's labels; with several models use conll or jsonl")


OutputWriteError = WriteError  # an output that could not be written; ``filename`` is the output


def spool_file() -> TextIO:
    """An anonymous temporary UTF-8 text file, gone when closed; a full temporary directory is named."""
    descriptor, path = tempfile.mkstemp(prefix="embedcache-spool-")
    os.unlink(path)
    directory = Path(path).parent
    return named_text_stream(
        descriptor, directory, "output is spooled here first; point TMPDIR at a disk with space"
    )
