"""Readers for CoNLL column files and CoNLL-U; every error names the file and line.

Column files: one token per line, columns separated by a tab (or runs of spaces when no tab is present),
sentences separated by an empty line *or a line holding only whitespace* (both occur in WNUT-17). Before a
sentence, comment lines of the CoNLL-U forms that ``embedcache predict`` writes (``# newdoc``,
``# newdoc id = ...``, ``# text = ...``, any ``# key = value``) are skipped when they hold no tab, so that its
output reads back (see :func:`is_column_file_comment`). In CoNLL-U every ``#`` line before a sentence is a
comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from embedcache.data.sentence import TaggedSentence

_COLUMN_FILE_COMMENT = re.compile(r"# (?:(?:newdoc|newpar)(?: id = .*)?|[\w.-]+ = .*)")


def is_column_file_comment(line: str) -> bool:
    """A CoNLL-U style comment line where a sentence may start in a column file.

    ``# newdoc``, ``# newpar`` (with an optional ``id = ...``) or ``# key = value``, holding no tab. A token
    line of a tab-separated file has a tab; in a space-separated file, a sentence would have to start with
    a token ``#`` tagged ``newdoc`` or followed by the columns ``key =`` to be taken for a comment.
    """
    return "\t" not in line and _COLUMN_FILE_COMMENT.fullmatch(line) is not None


class DataFormatError(ValueError):
    """Malformed input; the message starts with ``file:line:``."""


MAX_LINE_BYTES = 1 << 20
"""The longest line read (1 MiB, line ending excluded): longer ones are refused, never read whole."""


def decoded_lines(stream: Iterable[bytes], name: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` pairs, each line decoded as UTF-8 on its own and without its line ending.

    Lines end at ``\\n`` only (a ``\\r`` or a Unicode line separator inside a line stays there, so line
    numbers are those of ``grep -n``); a ``\\r\\n`` ending and a byte-order mark at the start are dropped.
    A stream with ``readline`` (a file, stdin) is read at most :data:`MAX_LINE_BYTES` + 1 bytes at a time,
    so memory stays bounded whatever the input (``/dev/zero``, a file without line breaks).

    Raises:
        DataFormatError: a line is not UTF-8, is longer than :data:`MAX_LINE_BYTES`, or the input uses
            carriage returns alone as line endings; the message names ``name`` and the line.
    """
    for number, raw in enumerate(_bounded_lines(stream), start=1):
        _check_line_ending(raw, number, name)
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise DataFormatError(
                f"{name}:{number}: not UTF-8 (byte {error.start + 1} of the line: {error.reason}); "
                "convert the file first, e.g. iconv -f latin1 -t utf-8"
            ) from error
        yield number, line.removesuffix("\n").removesuffix("\r")


def _bounded_lines(stream: Iterable[bytes]) -> Iterator[bytes]:
    """Raw lines, none read past :data:`MAX_LINE_BYTES` + 1 bytes (iterables without ``readline`` are lists
    or generators of lines that are in memory already)."""
    readline = getattr(stream, "readline", None)
    if readline is None:
        yield from stream
        return
    while raw := readline(MAX_LINE_BYTES + 1):
        yield raw


def _check_line_ending(raw: bytes, number: int, name: str) -> None:
    """Refuse a line that is too long, and input whose lines end in a carriage return alone (classic Mac
    OS): it has no ``\\n`` at all, so it would otherwise be read as one line of the whole file."""
    if raw.endswith(b"\n"):
        return
    if number == 1 and b"\r" in raw[:-1]:
        raise DataFormatError(
            f"{name}:1: the lines end in a carriage return (\\r) alone, not in \\n; convert them first, "
            "e.g. tr '\\r' '\\n' < INPUT > CONVERTED"
        )
    if len(raw) > MAX_LINE_BYTES:
        raise DataFormatError(
            f"{name}:{number}: line longer than {MAX_LINE_BYTES:,} bytes (the most read as one line); "
            "split it into shorter lines"
        )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as stream:
        yield from decoded_lines(stream, str(path))


def _token(fields: list[str], column: int, path: Path, number: int) -> str:
    """The token of a line; an empty one (two tabs in a row) is an error here, not later in the embedder."""
    if not fields[column]:
        raise DataFormatError(f"{path}:{number}: empty token in column {column + 1}")
    return fields[column]


def read_column_file(
    path: str | Path, token_column: int = 0, tag_column: int | None = 1
) -> Iterator[TaggedSentence]:
    """Yield the sentences of a CoNLL column file.

    Args:
        path: the file.
        token_column: column index of the token text.
        tag_column: column index of the tag, or ``None`` for unlabelled files.

    Raises:
        DataFormatError: a line has too few columns or an empty token, or the file is not UTF-8.
    """
    path = Path(path)
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    needed = max(token_column, tag_column if tag_column is not None else 0) + 1
    for number, line in _lines(path):
        if not line.strip():
            if tokens:
                yield TaggedSentence(
                    tokens, tags if tag_column is not None else None, source=f"{path}:{start}"
                )
            tokens, tags = [], []
            continue
        if not tokens and is_column_file_comment(line):
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        if len(columns) < needed:
            raise DataFormatError(
                f"{path}:{number}: expected at least {needed} columns, found {len(columns)}"
            )
        if not tokens:
            start = number
        tokens.append(_token(columns, token_column, path, number))
        if tag_column is not None:
            tags.append(columns[tag_column])
    if tokens:
        yield TaggedSentence(tokens, tags if tag_column is not None else None, source=f"{path}:{start}")


def read_conllu(path: str | Path, tag_field: str = "upos") -> Iterator[TaggedSentence]:
    """Yield the sentences of a CoNLL-U file with the chosen tag (``upos`` or ``xpos``).

    Multi-word token ranges (``1-2``) and empty nodes (``1.1``) are skipped, as UPOS taggers do;
    ``SpaceAfter=No`` in MISC sets ``whitespace_after`` to 0.
    """
    path = Path(path)
    column = {"upos": 3, "xpos": 4}[tag_field]
    tokens: list[str] = []
    tags: list[str] = []
    spaces: list[int] = []
    start = 0
    for number, line in _lines(path):
        if not line.strip():
            if tokens:
                yield TaggedSentence(tokens, tags, spaces, source=f"{path}:{start}")
            tokens, tags, spaces = [], [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataFormatError(f"{path}:{number}: expected 10 tab-separated fields, found {len(fields)}")
        if "-" in fields[0] or "." in fields[0]:
            continue
        if not tokens:
            start = number
        tokens.append(_token(fields, 1, path, number))
        tags.append(fields[column])
        spaces.append(0 if "SpaceAfter=No" in fields[9].split("|") else 1)
    if tokens:
        yield TaggedSentence(tokens, tags, spaces, source=f"{path}:{start}")
