"""Input to tag, read lazily in input order: raw text, pre-tokenised lines, CoNLL columns, CoNLL-U.

Every reader yields :class:`Document` objects one at a time and reads at most
:data:`~embedcache.data.conll.MAX_LINE_BYTES` per line, so no input (a multi-GB file, ``/dev/zero``) is held
in memory.
Bad content raises :class:`~embedcache.data.conll.DataFormatError` with a message that starts with
``file:line:``; a file that cannot be opened raises the ``OSError`` of ``open``.

- ``text``: one document per line, split into sentences and tokenised later by the tagger (segtok, as
  Flair). Lines are decoded one at a time, so an undecodable byte is reported with its line.
- ``tokens``: one sentence per line, tokens separated by whitespace.
- ``conll`` and ``conllu``: parsed by :mod:`embedcache.data.conll`. Those readers take paths, so a stream
  (stdin) in these formats is first copied to a temporary file: disk, not memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from embedcache.data.conll import (
    DataFormatError,
    decoded_lines,
    is_column_file_comment,
    read_column_file,
    read_conllu,
)
from embedcache.data.sentence import TaggedSentence
from embedcache.data.tokenize import tokenize_pretokenized

InputFormat = Literal["text", "tokens", "conll", "conllu"]
INPUT_FORMATS: tuple[InputFormat, ...] = get_args(InputFormat)
STDIN = "-"
STDIN_NAME = "<stdin>"
_CONLL_SUFFIXES = (".conll", ".bio", ".iob", ".iob2", ".bioes", ".tsv", ".column")


@dataclass(frozen=True)
class Document:
    """One unit of input to tag.

    Attributes:
        source: ``"file:line"`` where it starts.
        text: the raw line (``text``) or the line of tokens (``tokens``); ``None`` for CoNLL input.
        sentence: the given tokens (``tokens``, ``conll``, ``conllu``); ``None`` for raw text, which the
            tagger splits and tokenises itself.
    """

    source: str
    text: str | None = None
    sentence: TaggedSentence | None = None


def guess_format(name: str) -> InputFormat:
    """The input format a file name suggests: ``.conllu`` → ``conllu``; ``.conll``, ``.bio``, ``.tsv``... →
    ``conll``; ``.tok``, ``.tokens`` → ``tokens``; anything else (and stdin) → ``text``."""
    suffix = Path(name).suffix.lower()
    if suffix == ".conllu":
        return "conllu"
    if suffix in (".tok", ".tokens"):
        return "tokens"
    return "conll" if suffix in _CONLL_SUFFIXES else "text"


def read_documents(
    source: str | Path, format: InputFormat, stdin: Iterable[bytes] | None = None
) -> Iterator[Document]:
    """The documents of a file, or of ``stdin`` when ``source`` is ``"-"``, lazily and in order.

    Args:
        source: a path, or ``"-"`` for ``stdin``.
        format: ``"text"``, ``"tokens"``, ``"conll"`` or ``"conllu"``.
        stdin: the binary stream (or any iterable of byte lines) read for ``"-"``.

    Raises:
        OSError: the file cannot be opened (raised on the first ``next``).
        DataFormatError: malformed content; the message starts with ``file:line:``.
    """
    if format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {format!r}; choose one of {', '.join(INPUT_FORMATS)}")
    from_stdin = str(source) == STDIN
    if from_stdin and stdin is None:
        raise ValueError("reading '-' needs the stdin stream")
    name = STDIN_NAME if from_stdin else str(source)
    if format in ("text", "tokens"):
        if from_stdin:
            # stdin is set whenever from_stdin (refused above otherwise).
            yield from _line_documents(stdin, name, format)  # type: ignore[arg-type]
        else:
            with open(source, "rb") as stream:
                yield from _line_documents(stream, name, format)
    elif from_stdin:
        yield from _spooled_conll_documents(stdin, format)  # type: ignore[arg-type]
    else:
        yield from _conll_documents(Path(source), format, name)


def _line_documents(stream: Iterable[bytes], name: str, format: InputFormat) -> Iterator[Document]:
    for number, line in decoded_lines(stream, name):
        source = f"{name}:{number}"
        sentence = tokenize_pretokenized(line, source) if format == "tokens" else None
        yield Document(source, text=line, sentence=sentence)


def _conll_documents(path: Path, format: InputFormat, name: str) -> Iterator[Document]:
    if format == "conllu":
        sentences = read_conllu(path)
    else:
        # Every token line must have as many columns as the first one (at least): a shorter line is a
        # truncated or mis-separated line, reported with its number by the column reader.
        columns = _columns_of_first_token_line(path, name)
        sentences = read_column_file(path, tag_column=columns - 1 if columns > 1 else None)
    for sentence in sentences:
        yield Document(sentence.source, sentence=sentence)


def _columns_of_first_token_line(path: Path, name: str) -> int:
    with path.open("rb") as stream:
        for _, line in decoded_lines(stream, name):
            if line.strip() and not is_column_file_comment(line):
                return len(line.split("\t") if "\t" in line else line.split())
    return 1


def _spooled_conll_documents(stdin: Iterable[bytes], format: InputFormat) -> Iterator[Document]:
    with tempfile.TemporaryDirectory(prefix="embedcache-stdin-") as folder:
        spool = Path(folder) / "stdin"
        with spool.open("w", encoding="utf-8", newline="\n") as copy:
            for _, line in decoded_lines(stdin, STDIN_NAME):
                copy.write(line + "\n")
        try:
            for document in _conll_documents(spool, format, STDIN_NAME):
                source = document.source.replace(str(spool), STDIN_NAME, 1)
                yield Document(source, sentence=document.sentence)
        except DataFormatError as error:
            raise DataFormatError(str(error).replace(str(spool), STDIN_NAME, 1)) from error
