"""Writers: exact CoNLL, JSON lines and inline markup for known predictions; atomic files."""

from __future__ import annotations

import errno
import io
import json
import tempfile

import pytest

from embedcache.data.conll import read_column_file
from embedcache.data.writers import (
    AtomicFile,
    OutputWriteError,
    inline_markup,
    spool_file,
    write_conll,
    write_jsonl,
    write_predictions,
)
from embedcache.models.labels import Span
from embedcache.models.predict import Prediction


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


def test_conll_writes_token_tab_tag_and_an_empty_line_after_each_sentence():
    stream = io.StringIO()
    write_conll([document(), Prediction(), sentence()], stream)  # the empty prediction writes nothing
    assert stream.getvalue() == (
        "Anna\tS-PER\nmoved\tO\nto\tO\nU.K.\tS-LOC\n-\tS-MISC\nbased\tO\nAcme\tS-ORG\n.\tO\n\n"
        "Bye\tO\n\n"
        "a\tDET\nbig\tADJ\ndog\tNOUN\n\n"
    )


def test_conll_output_reads_back_into_the_same_sentences(tmp_path):
    path = tmp_path / "out.conll"
    with path.open("w", encoding="utf-8") as stream:
        write_conll([document(), sentence()], stream)
    assert [s.tokens for s in read_column_file(path)] == [document().tokens[:8], ["Bye"], sentence().tokens]


def test_jsonl_writes_one_object_per_prediction_with_character_offsets():
    stream = io.StringIO()
    write_jsonl([document(), sentence()], stream)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert [(s["text"], s["start_char"], s["end_char"]) for s in first["spans"]] == [
        ("Anna", 0, 4), ("U.K.", 15, 19), ("-", 19, 20), ("Acme", 26, 30)
    ]  # fmt: skip
    assert second == {"text": None, "tokens": ["a", "big", "dog"], "tags": ["DET", "ADJ", "NOUN"],
                      "confidences": [1.0, 0.5, 0.25], "spans": []}  # fmt: skip


def test_inline_marks_spans_in_the_original_text_keeping_its_spacing():
    assert inline_markup(document(), "BIOES") == "[Anna]PER  moved to [U.K.]LOC[-]MISCbased [Acme]ORG. Bye"


def test_inline_writes_word_slash_tag_for_plain_tags_and_joins_tokens_without_text():
    assert inline_markup(sentence(), "plain") == "a/DET big/ADJ dog/NOUN"
    spans = Prediction(["New", "York", "rocks"], ["B-LOC", "I-LOC", "O"], [1, 1, 1], [Span(0, 2, "LOC")], [0])
    assert inline_markup(spans, "BIO") == "[New York]LOC rocks"


def test_write_predictions_picks_the_writer_and_refuses_unknown_formats():
    stream = io.StringIO()
    write_predictions([sentence()], stream, "inline", "plain")
    assert stream.getvalue() == "a/DET big/ADJ dog/NOUN\n"
    with pytest.raises(ValueError, match="unknown output format 'xml'"):
        write_predictions([sentence()], stream, "xml")  # type: ignore[arg-type]


def test_atomic_file_appears_whole_on_commit_and_not_at_all_otherwise(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), AtomicFile(target) as out:
        out.stream.write("half")
        raise RuntimeError("interrupted")
    with AtomicFile(target) as out:
        out.stream.write("not committed")
    assert target.read_text(encoding="utf-8") == "old"
    with AtomicFile(target) as out:
        out.stream.write("new")
        out.commit()
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("size", [10, 100_000], ids=["fails at commit", "fails while writing"])
def test_a_full_disk_leaves_the_old_file_and_no_temporary_and_names_the_target(
    tmp_path, outputs_on_a_full_disk, size
):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(OutputWriteError) as raised, AtomicFile(target) as out:
        out.stream.write("x" * size)
        out.commit()
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(target))
    assert raised.value.strerror == "No space left on device (nothing was written to it)"
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_full_temporary_directory_is_named_when_spooling(outputs_on_a_full_disk):
    with pytest.raises(OutputWriteError) as raised, spool_file() as spool:
        spool.write("x")
        spool.flush()
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, tempfile.gettempdir())
    assert "point TMPDIR at a disk with space" in raised.value.strerror
