"""Writers: exact CoNLL, JSON lines and inline markup for known predictions; the spool file."""

from __future__ import annotations

import errno
import io
import json
import tempfile

import pytest

from embedcache.data.conll import read_column_file
from embedcache.inference.inline import inline_markup, parse_inline
from embedcache.inference.predict import Prediction
from embedcache.inference.writers import (
    OutputWriteError,
    spool_file,
    write_conll,
    write_jsonl,
    write_predictions,
)
from embedcache.models.labels import Span


def document() -> Prediction:
    """Two sentences of raw text with odd spacing and adjacent spans ("U.K.-based")."""
    text = "Anna  moved to U.K.-based Acme. Bye"
    tokens = ["Anna", "moved", "to", "U.K.", "-", "based", "Acme", ".", "Bye"]
    offsets = [0, 6, 12, 15, 19, 20, 26, 30, 32]
    tags = ["S-PER", "O", "O", "S-LOC", "S-MISC", "O", "S-ORG", "O", "O"]
    spans = [Span(0, 1, "PER", 0.9), Span(3, 4, "LOC", 0.8), Span(4, 5, "MISC", 0.5), Span(6, 7, "ORG", 0.7)]
    return Prediction(tokens, tags, [0.9, 1, 1, 0.8, 0.5, 1, 0.7, 1, 1], spans, [0, 8], offsets, text)


def sentence() -> Prediction:
    """One sentence of given tokens, no text."""
    return Prediction(["a", "big", "dog"], ["DET", "ADJ", "NOUN"], [1.0, 0.5, 0.25], [], [0])


def test_conll_writes_token_tab_tag_an_empty_line_after_each_sentence_and_marks_input_lines():
    stream = io.StringIO()
    blank_line = Prediction(text="  ", offsets=[], source="in.txt:2")
    tab_line = Prediction(["a", "b"], ["O", "O"], [1, 1], [], [0], [0, 2], "a\tb", "in.txt:3")
    # The empty prediction without text writes nothing; the blank input line is still marked.
    write_conll([document(), blank_line, tab_line, Prediction(), sentence()], stream)
    assert stream.getvalue() == (
        "# newdoc\n# text = Anna  moved to U.K.-based Acme.\n"
        "Anna\tS-PER\nmoved\tO\nto\tO\nU.K.\tS-LOC\n-\tS-MISC\nbased\tO\nAcme\tS-ORG\n.\tO\n\n"
        "# text = Bye\nBye\tO\n\n"
        "# newdoc id = in.txt:2\n"
        "# newdoc id = in.txt:3\n# text = a b\na\tO\nb\tO\n\n"  # a tab in a comment is shown as a space
        "a\tDET\nbig\tADJ\ndog\tNOUN\n\n"
    )


def test_conll_output_reads_back_into_the_same_sentences(tmp_path):
    path = tmp_path / "out.conll"
    with path.open("w", encoding="utf-8") as stream:
        write_conll([document(), sentence()], stream)
    assert [s.tokens for s in read_column_file(path)] == [document().tokens[:8], ["Bye"], sentence().tokens]


def test_jsonl_writes_one_object_per_prediction_with_character_offsets():
    stream = io.StringIO()
    write_jsonl([document(), sentence()], stream, "BIOES")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["offsets"] == document().offsets
    assert [(s["text"], s["start_char"], s["end_char"]) for s in first["spans"]] == [
        ("Anna", 0, 4), ("U.K.", 15, 19), ("-", 19, 20), ("Acme", 26, 30)
    ]  # fmt: skip
    assert second == {"text": None, "tokens": ["a", "big", "dog"], "tags": ["DET", "ADJ", "NOUN"],
                      "confidences": [1.0, 0.5, 0.25], "spans": []}  # fmt: skip


def test_jsonl_of_plain_tags_gives_tokens_tags_and_offsets_but_no_spans():
    stream = io.StringIO()
    pos = Prediction(["Hi", "!"], ["INTJ", "PUNCT"], [1.0, 1.0], [], [0], [0, 2], "Hi!")
    write_jsonl([pos], stream, "plain")
    assert json.loads(stream.getvalue()) == {"text": "Hi!", "tokens": ["Hi", "!"], "tags": ["INTJ", "PUNCT"],
                                             "confidences": [1.0, 1.0], "offsets": [0, 2]}  # fmt: skip


def test_inline_marks_spans_in_the_original_text_keeping_its_spacing():
    markup = inline_markup(document(), "BIOES")
    assert markup == "[Anna|PER]  moved to [U.K.|LOC][-|MISC]based [Acme|ORG]. Bye"
    assert parse_inline(markup) == (document().text, [(0, 4, "PER"), (15, 19, "LOC"), (19, 20, "MISC"),
                                                      (26, 30, "ORG")])  # fmt: skip


def test_inline_marks_every_token_for_plain_tags_and_joins_tokens_without_text():
    assert inline_markup(sentence(), "plain") == "[a|DET] [big|ADJ] [dog|NOUN]"
    touching = Prediction(
        ["(", "and", ")"], ["PUNCT", "CCONJ", "PUNCT"], [1, 1, 1], [], [0], [0, 1, 4], "(and)"
    )
    assert inline_markup(touching, "plain") == "[(|PUNCT][and|CCONJ][)|PUNCT]"
    spans = Prediction(["New", "York", "rocks"], ["B-LOC", "I-LOC", "O"], [1, 1, 1], [Span(0, 2, "LOC")], [0])
    assert inline_markup(spans, "BIO") == "[New York|LOC] rocks"


def test_inline_escapes_markup_characters_of_the_text_and_reads_back():
    text = "a [b] c|d \\e"
    tokens = ["a", "[", "b", "]", "c|d", "\\e"]
    prediction = Prediction(tokens, ["X"] * 6, [1] * 6, [], [0], [0, 2, 3, 4, 6, 10], text)
    markup = inline_markup(prediction, "plain")
    assert markup == "[a|X] [\\[|X][b|X][\\]|X] [c\\|d|X] [\\\\e|X]"
    read_text, stretches = parse_inline(markup)
    assert read_text == text and [read_text[start:end] for start, end, _ in stretches] == tokens


@pytest.mark.parametrize("markup", ["[a|X", "a]", "a|b", "[a|X]]", "[[a|X]", "a\\"])
def test_malformed_inline_markup_is_refused(markup):
    with pytest.raises(ValueError, match="inline markup"):
        parse_inline(markup)


def test_write_predictions_picks_the_writer_and_refuses_unknown_formats():
    stream = io.StringIO()
    write_predictions([sentence()], stream, "inline", "plain")
    assert stream.getvalue() == "[a|DET] [big|ADJ] [dog|NOUN]\n"
    with pytest.raises(ValueError, match="unknown output format 'xml'"):
        write_predictions([sentence()], stream, "xml")  # type: ignore[arg-type]


def test_a_full_temporary_directory_is_named_when_spooling(outputs_on_a_full_disk):
    with pytest.raises(OutputWriteError) as raised, spool_file() as spool:
        spool.write("x")
        spool.flush()
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, tempfile.gettempdir())
    assert "point TMPDIR at a disk with space" in raised.value.strerror
