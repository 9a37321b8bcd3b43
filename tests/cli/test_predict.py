"""embedcache predict: every input × output format, input order, round trip, offsets, stdin, atomic output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from embedcache.data.conll import read_column_file
from embedcache.data.tokenize import tokenize_document
from embedcache.inference.inline import parse_inline
from embedcache.inference.tagger import SequenceTagger
from tests.cli.conftest import RunCli, conll_sentences

SENTENCES = [
    ["Anna", "lives", "in", "Rome", "."],
    ["Apple", "is", "looking", "at", "buying", "a", "U.K.", "startup", "for", "$", "1", "billion", "."],
    ["Bob", "works", "at", "Apple", "Inc.", "in", "New", "York", "."],
]
RAW_LINES = [
    "Anna lives in Rome. She likes it there!",
    "",
    "Apple is looking at buying a U.K. startup for $1 billion.",
]


def write_input(folder: Path, input_format: str) -> tuple[Path, list[tuple[str | None, list[list[str]]]]]:
    """An input file, and what it holds: per document its text (if any) and its sentences' tokens."""
    if input_format == "text":
        path = folder / "input.txt"
        path.write_text("\n".join(RAW_LINES) + "\n", encoding="utf-8")
        return path, [(line, [s.tokens for s in tokenize_document(line)]) for line in RAW_LINES]
    if input_format == "tokens":
        lines = ["  ".join(SENTENCES[0]), "\t".join(SENTENCES[1]), " ".join(SENTENCES[2]) + " "]
        path = folder / "input.tok"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path, [(line, [line.split()]) for line in lines]
    if input_format == "conll":
        path = folder / "input.conll"
        path.write_text("".join("".join(f"{t}\tO\n" for t in s) + "\n" for s in SENTENCES), encoding="utf-8")
    else:
        path = folder / "input.conllu"
        rows = ("\n".join(f"{i}\t{t}\t_\tX\t_\t_\t_\t_\t_\t_" for i, t in enumerate(s, 1)) for s in SENTENCES)
        path.write_text("# sent_id = 1\n" + "\n\n".join(rows) + "\n\n", encoding="utf-8")
    return path, [(None, [tokens]) for tokens in SENTENCES]


@pytest.mark.parametrize("format_out", ["conll", "jsonl", "inline"])
@pytest.mark.parametrize("format_in", ["text", "tokens", "conll", "conllu"])
def test_every_input_format_to_every_output_format(cli: RunCli, ner_model, tmp_path, format_in, format_out):
    path, documents = write_input(tmp_path, format_in)
    run = cli("predict", "-q", "--model", ner_model, path, "--format-out", format_out)  # format: by suffix
    assert (run.code, run.err) == (0, "")
    api_items = [text if format_in == "text" else doc[0] for text, doc in documents]
    expected_tags = [p.tags for p in SequenceTagger.load(ner_model).predict(api_items)]
    assert len({tag for tags in expected_tags for tag in tags}) >= 2  # varied tags, so mix-ups would show
    if format_out == "conll":
        sentences = conll_sentences(run.out)
        assert [[token for token, _ in s] for s in sentences] == [s for _, doc in documents for s in doc if s]
        assert [tag for s in sentences for _, tag in s] == [tag for tags in expected_tags for tag in tags]
    elif format_out == "jsonl":
        objects = [json.loads(line) for line in run.out.splitlines()]
        assert [o["text"] for o in objects] == [text for text, _ in documents]
        assert [o["tokens"] for o in objects] == [[t for s in doc for t in s] for _, doc in documents]
        assert [o["tags"] for o in objects] == expected_tags
    else:
        read = [parse_inline(line) for line in run.out.split("\n")[:-1]]
        plain = [text if text is not None else " ".join(doc[0]) for text, doc in documents]
        assert [text for text, _ in read] == plain  # only markup added, spacing kept
        assert any(stretches for _, stretches in read)


def test_inline_with_plain_tags_marks_every_token_even_touching_ones(cli: RunCli, pos_model):
    run = cli("predict", "--model", pos_model, "--format-out", "inline", "-q", stdin="a  big (dog)\n")
    assert re.fullmatch(r"\[a\|(\w+)\]  \[big\|(\w+)\] \[\(\|(\w+)\]\[dog\|(\w+)\]\[\)\|(\w+)\]\n", run.out)
    text, stretches = parse_inline(run.out.removesuffix("\n"))
    assert text == "a  big (dog)" and [text[start:end] for start, end, _ in stretches] == [
        "a",
        "big",
        "(",
        "dog",
        ")",
    ]
    assert {label for _, _, label in stretches} <= {"ADJ", "DET", "NOUN", "PUNCT", "VERB"}


def test_conll_of_raw_text_marks_each_line_and_its_sentences(cli: RunCli, ner_model, tmp_path):
    path, documents = write_input(tmp_path, "text")
    run = cli("predict", "--model", ner_model, path, "-q")
    comments = [line for line in run.out.split("\n") if line.startswith("# ")]
    assert comments == [
        f"# newdoc id = {path}:1", "# text = Anna lives in Rome.", "# text = She likes it there!",
        f"# newdoc id = {path}:2",  # the empty line: a document without sentences
        f"# newdoc id = {path}:3", f"# text = {RAW_LINES[2]}",
    ]  # fmt: skip
    assert [[t for t, _ in s] for s in conll_sentences(run.out)] == [s for _, doc in documents for s in doc]


def test_a_summary_line_ends_a_run_and_progress_shows_when_asked(cli: RunCli, ner_model, tmp_path):
    path, _ = write_input(tmp_path, "text")
    output = tmp_path / "tagged.conll"
    run = cli("predict", "--model", ner_model, path, "--output", output, "--progress")
    *bar, summary = run.err.rstrip("\n").split("\n")
    counts = "3 documents, 3 sentences, 23 tokens"
    assert re.fullmatch(rf"embedcache predict: {counts} in [\d.]+ s \([\d,]+ words/s\) -> {output}", summary)
    assert "3sent" in "".join(bar).replace(" ", "") and "words/s" in "".join(bar)
    assert cli("predict", "--model", ner_model, path, "--progress", "--quiet").err == ""


def social_media_lines(data_dir: Path, n: int) -> list[str]:
    lines = (data_dir / "text" / "social_media_en.txt").read_text(encoding="utf-8").split("\n")[:n]
    assert not any("\r" in line for line in lines)
    return lines


def test_output_keeps_input_order_across_chunks_and_batches(cli: RunCli, ner_model, tmp_path, data_dir):
    lines = social_media_lines(data_dir, 150)
    path = tmp_path / "posts.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = cli(
        "predict", "-m", ner_model, path, "--format-out", "jsonl", "--chunk-size", "7", "--batch-size", "3"
    )
    objects = [json.loads(line) for line in run.out.splitlines()]
    assert [o["text"] for o in objects] == lines
    reference = SequenceTagger.load(ner_model).predict(lines, batch_size=64)  # other batches, one chunk
    assert [o["tags"] for o in objects] == [p.tags for p in reference]


def test_conll_round_trip_keeps_every_token_and_sentence_boundary(cli: RunCli, ner_model, tmp_path, data_dir):
    gold = data_dir / "wnut17" / "dev.conll"  # has whitespace-only separator lines too
    output = tmp_path / "tagged.conll"
    run = cli("predict", "--model", ner_model, gold, "--output", output, "--chunk-size", "100")
    assert (run.code, run.out) == (0, "")
    tagged, expected = list(read_column_file(output)), list(read_column_file(gold))
    assert [s.tokens for s in tagged] == [s.tokens for s in expected]
    assert len(tagged) == 1009


def test_jsonl_span_offsets_index_the_raw_input(cli: RunCli, ner_model, tmp_path, data_dir):
    lines = social_media_lines(data_dir, 200)  # emoji, URLs, runs of spaces
    path = tmp_path / "posts.txt"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    run = cli("predict", "--model", ner_model, path, "--format-out", "jsonl")
    objects = [json.loads(line) for line in run.out.splitlines()]
    assert len(objects) == len(lines)
    n_spans = 0
    for line, result in zip(lines, objects, strict=True):
        for span in result["spans"]:
            first, last = result["tokens"][span["start"]], result["tokens"][span["end"] - 1]
            covered = line[span["start_char"] : span["end_char"]]
            assert covered == span["text"] and covered.startswith(first) and covered.endswith(last)
            n_spans += 1
    assert n_spans > 100


def test_stdin_is_read_without_inputs_and_for_a_dash(cli: RunCli, ner_model, tmp_path):
    path = tmp_path / "b.tok"
    path.write_text("from the file\n", encoding="utf-8")
    alone = cli("predict", "--model", ner_model, "--format-in", "tokens", stdin="from stdin\n")
    both = cli("predict", "--model", ner_model, "--format-in", "tokens", "-", path, stdin="from stdin\n")
    assert [[t for t, _ in s] for s in conll_sentences(alone.out)] == [["from", "stdin"]]
    assert [[t for t, _ in s] for s in conll_sentences(both.out)] == [
        ["from", "stdin"],
        ["from", "the", "file"],
    ]


def test_conll_from_stdin_names_stdin_and_line_in_errors(cli: RunCli, ner_model):
    good = cli("predict", "--model", ner_model, "--format-in", "conll", stdin="a\tO\nb\tO\n\nc\tO\n")
    bad = cli("predict", "--model", ner_model, "--format-in", "conll", stdin="a\tO\nb\n")
    assert [[t for t, _ in s] for s in conll_sentences(good.out)] == [["a", "b"], ["c"]]
    assert (bad.code, bad.out) == (2, "")
    assert bad.err.startswith("embedcache predict: error: <stdin>:2: expected at least 2 columns")


def test_the_issue_example_is_tagged_from_stdin(cli: RunCli, ner_model):
    run = cli(
        "predict", "--model", ner_model, stdin="Apple is looking at buying a U.K. startup for $1 billion .\n"
    )
    assert run.code == 0
    assert [t for s in conll_sentences(run.out) for t, _ in s] == SENTENCES[1]


def test_output_file_replaces_the_old_one_whole_and_leaves_no_temporary_file(
    cli: RunCli, ner_model, tmp_path
):
    path = tmp_path / "in.txt"
    path.write_text("Anna lives in Rome.\nBob too.\n", encoding="utf-8")
    output = tmp_path / "out" / "tagged.conll"
    output.parent.mkdir()
    output.write_text("old\n", encoding="utf-8")
    run = cli("predict", "--model", ner_model, path, "--output", output, "--quiet")
    assert (run.code, run.out, run.err) == (0, "", "")
    assert output.read_text(encoding="utf-8") == cli("predict", "--model", ner_model, path).out
    assert [p.name for p in output.parent.iterdir()] == ["tagged.conll"]


@pytest.mark.parametrize("to_file", [True, False])
def test_a_failing_input_is_left_out_whole_and_the_others_are_written(
    cli: RunCli, ner_model, tmp_path, to_file
):
    first, middle, last = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    first.write_text("First file .\n", encoding="utf-8")
    middle.write_bytes(b"Fine line .\nAnother fine line .\ncaf\xe9 noir\n")  # Latin-1 on line 3
    last.write_text("Last file .\n", encoding="utf-8")
    output = tmp_path / "tagged.conll"
    args = ["predict", "--model", ner_model, first, middle, last, "--chunk-size", "1"]
    run = cli(*args, "--output", output) if to_file else cli(*args)
    written = output.read_text(encoding="utf-8") if to_file else run.out
    assert [[t for t, _ in s] for s in conll_sentences(written)] == [
        ["First", "file", "."],
        ["Last", "file", "."],
    ]
    assert run.code == 2
    assert run.err.splitlines() == [run.err.strip()] and f"{middle}:3: not UTF-8" in run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt"] + (
        ["tagged.conll"] * to_file
    )


def test_when_every_input_fails_an_existing_output_is_left_as_it_was(cli: RunCli, ner_model, tmp_path):
    output = tmp_path / "tagged.conll"
    output.write_text("kept\n", encoding="utf-8")
    run = cli("predict", "--model", ner_model, tmp_path / "missing.txt", "--output", output)
    assert run.code == 2
    assert output.read_text(encoding="utf-8") == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tagged.conll"]
