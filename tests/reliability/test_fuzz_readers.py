"""Fuzzed input for every reader the CLI uses, and for the writers that must read back.

Each generated file either round-trips (reader → writer → reader keeps every token, tag and sentence
boundary; offsets index the line they came from) or, when it is malformed, is refused with a
:class:`DataFormatError` whose message starts with ``file:line:`` for a line of that file. Any other
exception fails the test.

Convention the tests rely on: a file that starts with U+FEFF starts with a byte-order mark, which every
reader drops; a first token that itself starts with U+FEFF only survives after a real byte-order mark.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
from hypothesis import assume, event, given
from hypothesis import strategies as st

import embedcache as ec
from embedcache.data.conll import DataFormatError, read_column_file
from embedcache.data.readers import InputFormat, read_documents
from embedcache.data.tokenize import tokenize_document
from embedcache.inference.inline import inline_markup, parse_inline
from embedcache.inference.predict import Prediction
from embedcache.inference.tagger import SequenceTagger
from embedcache.inference.writers import write_conll, write_jsonl
from embedcache.models.labels import Span, TagDictionary
from tests.conftest import make_lm
from tests.reliability.strategies import fuzz_settings, hostile_text, hostile_token

TAGS = ["O", "B-PER", "I-PER", "E-PER", "S-LOC", "NOUN", "PUNCT"]
BLANK_LINES = ["", " ", "\t", " \t ", "\u3000", "\x0b", "\x1c", "\r"]
BOM = "\ufeff"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the whole module: hypothesis runs many examples per test function."""
    return tmp_path_factory.mktemp("fuzz-readers")


def encode(lines: list[str], ending: str, bom: bool, final_newline: bool) -> bytes:
    text = ending.join(lines) + (ending if final_newline and lines else "")
    return ((BOM if bom and lines else "") + text).encode("utf-8")


def as_read(first_line: str, bom: bool) -> str:
    """What a reader makes of the first line: without a real byte-order mark, a leading U+FEFF is one."""
    return first_line if bom else first_line.removeprefix(BOM)


def predictions_of(sentences: list[tuple[list[str], list[str]]]) -> list[Prediction]:
    return [Prediction(tokens, tags, [1.0] * len(tokens), [], [0]) for tokens, tags in sentences]


def conll_round_trip(sentences: list[tuple[list[str], list[str]]], path: Path) -> list[tuple[list, list]]:
    """``sentences`` written by the CoNLL writer and read back by the column reader."""
    stream = io.StringIO()
    write_conll(predictions_of(sentences), stream)
    text = stream.getvalue()
    path.write_bytes(((BOM if text.startswith(BOM) else "") + text).encode("utf-8"))
    return [(s.tokens, s.tags) for s in read_column_file(path)]


def error_line(error: DataFormatError, name: str) -> int:
    """The line number an error names; fails unless the message starts with ``name:line:``."""
    match = re.match(rf"{re.escape(name)}:(\d+): \S", str(error))
    assert match, f"error does not start with {name}:LINE: -> {error}"
    return int(match.group(1))


# --- CoNLL column files ------------------------------------------------------------------------------------

column_token = hostile_token(excluded="\t\n")
column_sentence = st.lists(st.tuples(column_token, st.sampled_from(TAGS)), min_size=1, max_size=6)


@fuzz_settings(150)
@given(
    sentences=st.lists(column_sentence, max_size=5),
    middle_columns=st.integers(0, 2),
    separators=st.lists(
        st.lists(st.sampled_from(BLANK_LINES), min_size=1, max_size=2), min_size=5, max_size=5
    ),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_column_files_read_back_every_token_tag_and_boundary(
    workdir, sentences, middle_columns, separators, ending, bom, final_newline
):
    lines, starts = [], []
    for sentence, blank in zip(sentences, separators, strict=False):
        starts.append(len(lines) + 1)
        lines += ["\t".join([token, *["x y"] * middle_columns, tag]) for token, tag in sentence]
        lines += blank
    path = workdir / "input.conll"
    path.write_bytes(encode(lines, ending, bom, final_newline))
    expected = [([token for token, _ in s], [tag for _, tag in s]) for s in sentences]
    if expected:
        expected[0][0][0] = as_read(expected[0][0][0], bom)
    event(f"column file: {sum(map(len, sentences))} tokens" if sentences else "column file: empty")
    try:
        documents = list(read_documents(path, "conll"))
    except DataFormatError as error:  # only a first token that was nothing but a byte-order mark
        assert error_line(error, str(path)) == 1 and "empty token" in str(error) and not bom
        return
    assert [(d.sentence.tokens, d.sentence.tags) for d in documents] == expected
    assert [d.source for d in documents] == [f"{path}:{start}" for start in starts]
    assert conll_round_trip(expected, workdir / "written.conll") == expected


@fuzz_settings(60)
@given(
    sentences=st.lists(column_sentence, min_size=1, max_size=4),
    damage=st.sampled_from(["few columns", "empty token", "latin-1", "truncated UTF-8", "surrogate"]),
    where=st.integers(0, 100),
)
def test_damaged_column_files_are_refused_naming_the_line(workdir, sentences, damage, where):
    assume(not sentences[0][0][0].startswith(BOM))  # read as a byte-order mark: an empty token of its own
    lines = [f"{token}\t{tag}" for sentence in sentences for token, tag in [*sentence, ("", "")]][:-1]
    token_lines = [i for i, line in enumerate(lines) if line]
    bad = token_lines[where % len(token_lines)]
    encoded = [line.encode("utf-8") for line in lines]
    broken = {
        "few columns": b"lonely",
        "empty token": b"\tO",
        "latin-1": "caf\xe9\tO".encode("latin-1"),
        "truncated UTF-8": b"\xe6\x9d\tO",
        "surrogate": b"\xed\xa0\x80\tO",
    }
    encoded[bad] = broken[damage]
    path = workdir / "damaged.conll"
    path.write_bytes(b"\n".join(encoded) + b"\n")
    event(f"damaged column file: {damage}")
    if damage == "few columns" and bad == token_lines[0]:
        assert list(read_documents(path, "conll"))  # the first token line sets the count: one column
        return
    with pytest.raises(DataFormatError) as error:
        list(read_documents(path, "conll"))
    assert error_line(error.value, str(path)) == bad + 1


# --- CoNLL-U -----------------------------------------------------------------------------------------------

conllu_token = st.tuples(hostile_token(excluded="\t\n"), st.sampled_from(TAGS), st.booleans())


@fuzz_settings(120)
@given(
    sentences=st.lists(st.lists(conllu_token, min_size=1, max_size=6), max_size=4),
    comment=hostile_token(excluded="\n"),
    extras=st.booleans(),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_conllu_files_read_back_tokens_tags_spacing_and_boundaries(
    workdir, sentences, comment, extras, ending, bom
):
    lines = []
    for sentence in sentences:
        lines.append(f"# text = {comment}")
        if extras:  # a multi-word range and an empty node: both skipped
            lines.append("1-2\tcontraction\t_\t_\t_\t_\t_\t_\t_\t_")
        for position, (form, tag, space_after) in enumerate(sentence, start=1):
            misc = "_" if space_after else "Gloss=x|SpaceAfter=No"
            lines.append(f"{position}\t{form}\t_\t{tag}\t_\t_\t0\tdep\t_\t{misc}")
            if extras and position == 1:
                lines.append("1.1\tghost\t_\tX\t_\t_\t_\t_\t_\t_")
        lines.append("")
    path = workdir / "input.conllu"
    path.write_bytes(encode(lines, ending, bom, final_newline=True))
    event(f"CoNLL-U: {len(sentences)} sentences")
    documents = list(read_documents(path, "conllu"))
    assert [d.sentence.tokens for d in documents] == [[form for form, _, _ in s] for s in sentences]
    assert [d.sentence.tags for d in documents] == [[tag for _, tag, _ in s] for s in sentences]
    assert [d.sentence.whitespace_after for d in documents] == [
        [int(sp) for _, _, sp in s] for s in sentences
    ]
    read = [(d.sentence.tokens, d.sentence.tags) for d in documents]
    assert conll_round_trip(read, workdir / "written.conll") == read


# --- raw text and pre-tokenised lines ----------------------------------------------------------------------

line_text = hostile_text.map(lambda text: text.replace("\n", " "))


@fuzz_settings(150)
@given(
    lines=st.lists(line_text, max_size=4),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_token_lines_keep_every_token_with_offsets_into_the_line(workdir, lines, ending, bom, final_newline):
    assume(final_newline or not lines or lines[-1])  # an empty last line without a line ending is no line
    data = encode(lines, ending, bom, final_newline)
    # No \n at all but a \r inside: carriage-return line endings, refused (tests/data/test_conll.py).
    assume(b"\n" in data or b"\r" not in data[:-1])
    path = workdir / "input.tokens"
    path.write_bytes(data)
    documents = list(read_documents(path, "tokens"))
    expected_lines = [line.removesuffix("\r") if ending == "\n" else line for line in lines]
    if expected_lines:
        expected_lines[0] = as_read(expected_lines[0], bom)
    if expected_lines and not final_newline and ending == "\r\n":
        expected_lines[-1] = expected_lines[-1].removesuffix("\r")  # the last \r reads as a line ending
    event(f"token lines: {len(lines)}")
    assert [d.text for d in documents] == expected_lines
    assert [d.source for d in documents] == [f"{path}:{n}" for n in range(1, len(lines) + 1)]
    for document in documents:
        sentence = document.sentence
        assert sentence.tokens == document.text.split()
        for token, offset in zip(sentence.tokens, sentence.offsets, strict=True):
            assert document.text[offset : offset + len(token)] == token
    non_empty = [(d.sentence.tokens, ["O"] * len(d.sentence)) for d in documents if d.sentence.tokens]
    assert conll_round_trip(non_empty, workdir / "written.conll") == non_empty


@fuzz_settings(150)
@given(lines=st.lists(line_text, min_size=1, max_size=3), bom=st.booleans())
def test_raw_text_tokens_index_the_line_and_cover_every_visible_character(workdir, lines, bom):
    path = workdir / "input.txt"
    path.write_bytes(encode(lines, "\n", bom, final_newline=True))
    documents = list(read_documents(path, "text"))
    assert len(documents) == len(lines)
    for document in documents:
        text = document.text
        covered = [False] * len(text)
        cursor = 0
        for sentence in tokenize_document(text, document.source):
            assert sentence.tokens and sentence.source == document.source
            for token, offset in zip(sentence.tokens, sentence.offsets, strict=True):
                assert offset >= cursor and text[offset : offset + len(token)] == token
                covered[offset : offset + len(token)] = [True] * len(token)
                cursor = offset + len(token)
        assert all(done or character.isspace() for character, done in zip(text, covered, strict=True))
        event("raw text: tokens found" if any(covered) else "raw text: blank line")


# --- raw text -> CoNLL and inline markup -> back ----------------------------------------------------------


def tagged_lines(path: Path, tags: list[str]) -> list[Prediction]:
    """What the CLI makes of a raw-text file, with arbitrary tags: one prediction per line, with source."""
    predictions = []
    for document in read_documents(path, "text"):
        sentences = tokenize_document(document.text, document.source)
        tokens = [token for sentence in sentences for token in sentence.tokens]
        starts = [sum(len(s) for s in sentences[:i]) for i in range(len(sentences))]
        offsets = [offset for sentence in sentences for offset in sentence.offsets]
        predictions.append(
            Prediction(
                tokens,
                [tags[i % len(tags)] for i in range(len(tokens))],
                [1.0] * len(tokens),
                [],
                starts,
                offsets,
                document.text,
                document.source,
            )
        )
    return predictions  # fmt: skip


def documents_of_conll(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(id, sentence texts, sentences' tokens)`` per ``# newdoc`` of CoNLL output."""
    documents: list[tuple[str, list[str], list[list[str]]]] = []
    for line in text.split("\n"):
        if line.startswith("# newdoc id = "):
            documents.append((line.removeprefix("# newdoc id = "), [], []))
        elif line.startswith("# text = "):
            documents[-1][1].append(line.removeprefix("# text = "))
            documents[-1][2].append([])
        elif line:
            documents[-1][2][-1].append(line.split("\t")[0])
    return documents


@fuzz_settings(150)
@given(lines=st.lists(line_text, min_size=1, max_size=4), tags=st.lists(st.sampled_from(TAGS), min_size=1))
def test_raw_text_to_conll_gives_back_each_lines_tokens_and_line(workdir, lines, tags):
    path = workdir / "lines.txt"
    path.write_bytes(encode(lines, "\n", bom=False, final_newline=True))
    predictions = tagged_lines(path, tags)
    stream = io.StringIO()
    write_conll(predictions, stream)
    documents = documents_of_conll(stream.getvalue())
    assert [doc_id for doc_id, _, _ in documents] == [f"{path}:{n}" for n in range(1, len(lines) + 1)]
    for prediction, (_, texts, sentences) in zip(predictions, documents, strict=True):
        assert [t for sentence in sentences for t in sentence] == prediction.tokens
        for text, sentence in zip(texts, sentences, strict=True):  # each sentence's text, on one line
            assert "\t" not in text and len(text.splitlines()) == 1
            assert "".join(text.split()) == "".join("".join(sentence).split())  # its tokens, spaced as given
        event(f"raw text -> CoNLL: {sum(map(len, texts))} sentences")
    path.with_suffix(".conll").write_text(stream.getvalue(), encoding="utf-8")
    read = [s.tokens for s in read_column_file(path.with_suffix(".conll"))]
    assert read == [sentence for _, _, sentences in documents for sentence in sentences]


@fuzz_settings(150)
@given(lines=st.lists(line_text, min_size=1, max_size=3), tags=st.lists(st.sampled_from(TAGS), min_size=1))
def test_inline_markup_gives_back_the_line_and_its_tokens(workdir, lines, tags):
    path = workdir / "lines.txt"
    path.write_bytes(encode(lines, "\n", bom=False, final_newline=True))
    for prediction in tagged_lines(path, tags):
        text, stretches = parse_inline(inline_markup(prediction, "plain"))
        assert text == prediction.text
        assert [text[start:end] for start, end, _ in stretches] == prediction.tokens
        assert [label for _, _, label in stretches] == prediction.tags
        spans = [Span(i, i + 1, tag) for i, tag in enumerate(prediction.tags) if i % 2 == 0]
        prediction.spans = spans
        text, stretches = parse_inline(inline_markup(prediction, "BIO"))
        assert text == prediction.text
        assert [(start, label) for start, _, label in stretches] == [
            (prediction.offsets[s.start], s.label) for s in spans
        ]
        event("inline: tokens" if prediction.tokens else "inline: blank line")


# --- any bytes at all --------------------------------------------------------------------------------------

FORMATS: list[InputFormat] = ["text", "tokens", "conll", "conllu"]


LINE_PIECES = [b"a\tO", b"\t", b"", b"1\tx\t_\tX\t_\t_\t_\t_\t_\t_", b"\xff", b"\xc3", b"# c", BOM.encode(),
               b"\r", b"a b c", b"\x00"]  # fmt: skip


@fuzz_settings(200)
@given(
    data=st.one_of(
        st.binary(max_size=200), st.lists(st.sampled_from(LINE_PIECES), max_size=8).map(b"\n".join)
    ),
    format=st.sampled_from(FORMATS),
    via_stdin=st.booleans(),
)
def test_any_bytes_are_read_or_refused_naming_file_and_line(workdir, data, format, via_stdin):
    path = workdir / "anything"
    path.write_bytes(data)
    name = "<stdin>" if via_stdin else str(path)
    source = "-" if via_stdin else path
    try:
        documents = list(read_documents(source, format, stdin=io.BytesIO(data) if via_stdin else None))
    except DataFormatError as error:
        assert 1 <= error_line(error, name) <= data.count(b"\n") + 1
        event(f"{format}: refused")
        return
    event(f"{format}: read")
    for document in documents:
        assert re.fullmatch(rf"{re.escape(name)}:\d+", document.source)
        if document.sentence is not None:
            assert all(document.sentence.tokens)  # no empty token ever reaches the embedders


# --- JSON lines writer -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_tagger() -> SequenceTagger:
    """A random BIOES tagger small enough to run per example; its random tags give spans often enough."""
    torch.manual_seed(11)
    tags = TagDictionary.for_labels(["PER", "LOC"], "BIOES")
    return SequenceTagger([ec.CharLMEmbeddings(make_lm(True, 8, seed=12))], tags, "ner", hidden_size=4).eval()


@fuzz_settings(100)
@given(texts=st.lists(hostile_text, min_size=1, max_size=3))
def test_jsonl_output_parses_and_span_offsets_index_the_input(tiny_tagger, texts):
    stream = io.StringIO()
    write_jsonl(tiny_tagger.predict(texts), stream)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]  # any line splitter will do
    assert len(records) == len(texts)
    for text, record in zip(texts, records, strict=True):
        assert record["text"] == text
        assert record["tokens"] == [t for s in tokenize_document(text) for t in s.tokens]
        for span in record["spans"]:
            first, last = record["tokens"][span["start"]], record["tokens"][span["end"] - 1]
            assert 0 <= span["start_char"] < span["end_char"] <= len(text)
            assert text[span["start_char"] : span["end_char"]] == span["text"]
            assert span["text"].startswith(first) and span["text"].endswith(last)
        event("jsonl: with spans" if record["spans"] else "jsonl: no span")


# --- what the fuzzing found, pinned ------------------------------------------------------------------------


def test_found_by_fuzzing_bom_carriage_return_and_empty_token(workdir):
    """Each of these broke before: a CoNLL-U file with a byte-order mark was refused at line 1; a lone
    ``\\r`` inside a token split the line (and shifted every later line number); an empty token (two tabs)
    passed the reader and crashed the embedder with an error naming neither file nor line."""
    conllu = workdir / "bom.conllu"
    conllu.write_bytes(f"{BOM}# text = Do\n1\tDo\t_\tAUX\t_\t_\t0\troot\t_\t_\n".encode())
    assert [d.sentence.tokens for d in read_documents(conllu, "conllu")] == [["Do"]]
    column = workdir / "cr.conll"
    column.write_bytes(b"a\rb\tO\nc\tO\n\nlonely\n")
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(column))}:4: expected at least 2 columns"):
        list(read_documents(column, "conll"))
    assert [s.tokens for s in read_column_file(column, tag_column=None)] == [["a\rb", "c"], ["lonely"]]
    column.write_bytes(b"a\tO\n\tO\n")
    with pytest.raises(DataFormatError, match=rf"{re.escape(str(column))}:2: empty token in column 1"):
        list(read_documents(column, "conll"))
