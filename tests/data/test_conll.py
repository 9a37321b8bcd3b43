import contextlib
import tracemalloc
from collections.abc import Callable

import pytest

from embedcache.data import DataFormatError, TaggedSentence, read_column_file, read_conllu
from embedcache.data.conll import MAX_LINE_BYTES, decoded_lines
from embedcache.data.readers import read_documents


def test_wnut17_splits_have_the_documented_sentence_counts(data_dir):
    counts = {
        split: len(list(read_column_file(data_dir / "wnut17" / f"{split}.conll")))
        for split in ("train", "dev", "test")
    }
    assert counts == {"train": 3394, "dev": 1009, "test": 1287}


def test_ud_lines_splits_have_the_documented_sentence_counts(data_dir):
    counts = {
        s: len(list(read_conllu(data_dir / "ud_english_lines" / f"{s}.conllu")))
        for s in ("train", "dev", "test")
    }
    assert counts == {"train": 3457, "dev": 1118, "test": 1121}


def test_whitespace_only_lines_end_sentences_and_sources_name_the_line(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("Anna\tB-per\nlives\tO\n\t\nin\tO\n  \n\nParis\tB-loc\n", encoding="utf-8")
    sentences = list(read_column_file(path))
    assert [s.tokens for s in sentences] == [["Anna", "lives"], ["in"], ["Paris"]]
    assert [s.tags for s in sentences] == [["B-per", "O"], ["O"], ["B-loc"]]
    assert [s.source for s in sentences] == [f"{path}:1", f"{path}:4", f"{path}:7"]


def test_a_line_with_too_few_columns_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Anna\tB-per\nlives\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.conll:2: expected at least 2 columns, found 1"):
        list(read_column_file(path))


def test_undecodable_bytes_name_the_file(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes("café\tO\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.conll:1: not UTF-8"):
        list(read_column_file(path))


def test_conllu_skips_ranges_and_empty_nodes_and_reads_space_after(tmp_path):
    path = tmp_path / "a.conllu"
    rows = [
        "# text = Don't go.",
        "1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_",
        "1\tDo\tdo\tAUX\t_\t_\t0\troot\t_\tSpaceAfter=No",
        "2\tn't\tnot\tPART\t_\t_\t1\tadvmod\t_\t_",
        "2.1\tx\tx\tX\t_\t_\t_\t_\t_\t_",
        "3\tgo\tgo\tVERB\t_\t_\t1\tconj\t_\tSpaceAfter=No",
        "4\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_",
    ]
    path.write_text("\n".join(rows) + "\n\n", encoding="utf-8")
    [sentence] = read_conllu(path)
    assert sentence.tokens == ["Do", "n't", "go", "."]
    assert sentence.tags == ["AUX", "PART", "VERB", "PUNCT"]
    assert sentence.text() == "Don't go."


def test_conllu_line_with_wrong_field_count_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text("1\tDo\tdo\tAUX\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.conllu:1: expected 10 tab-separated fields, found 4"):
        list(read_conllu(path))


def test_tags_must_match_tokens():
    with pytest.raises(ValueError, match="x:3: 2 tokens but 1 tags"):
        TaggedSentence(["a", "b"], ["O"], source="x:3")


def peak_traced_bytes(read: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(DataFormatError):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("input_format", ["text", "tokens", "conll"])
def test_a_line_over_the_limit_is_refused_with_its_number_without_reading_it_whole(tmp_path, input_format):
    path = tmp_path / "long.txt"
    path.write_bytes(b"a b\n" + b"x" * (8 * MAX_LINE_BYTES) + b"\nc d\n")  # line 2: 8 MiB
    with pytest.raises(DataFormatError) as raised:
        list(read_documents(path, input_format))
    assert str(raised.value) == (
        f"{path}:2: line longer than 1,048,576 bytes (the most read as one line); split it into shorter lines"
    )
    assert peak_traced_bytes(lambda: list(read_documents(path, input_format))) < 3 * MAX_LINE_BYTES


def test_a_line_of_exactly_the_limit_is_read(tmp_path):
    path = tmp_path / "limit.txt"
    path.write_bytes(b"y" * MAX_LINE_BYTES + b"\n" + b"z" * MAX_LINE_BYTES)
    assert [len(d.text) for d in read_documents(path, "text")] == [MAX_LINE_BYTES, MAX_LINE_BYTES]


@pytest.mark.parametrize(("input_format", "content"), [("text", b"Hi there .\rBye .\r"),
                                                       ("conll", b"Anna\tB-PER\rlives\tO\r\r")])  # fmt: skip
def test_carriage_returns_alone_as_line_endings_are_refused_clearly(tmp_path, input_format, content):
    path = tmp_path / "classic-mac.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as raised:
        list(read_documents(path, input_format))
    assert str(raised.value) == (
        f"{path}:1: the lines end in a carriage return (\\r) alone, not in \\n; convert them first, "
        "e.g. tr '\\r' '\\n' < INPUT > CONVERTED"
    )


def test_dev_zero_is_refused_at_line_1_in_bounded_memory():
    with open("/dev/zero", "rb") as zeros, pytest.raises(DataFormatError, match=r"^/dev/zero:1: line longer"):
        list(decoded_lines(zeros, "/dev/zero"))


def test_conllu_style_comments_before_a_sentence_are_skipped_and_hash_tokens_kept(tmp_path):
    path = tmp_path / "tagged.conll"
    path.write_text(
        "# newdoc id = in.txt:1\n# text = #a b\n#a\tO\nb\tO\n\n# newdoc\n# newdoc id = in.txt:3\n#\tX\n\n",
        encoding="utf-8",
    )
    assert [(s.tokens, s.source) for s in read_column_file(path)] == [
        (["#a", "b"], f"{path}:3"),
        (["#"], f"{path}:8"),
    ]
    spaced = tmp_path / "spaced.conll"  # space-separated columns: "# O" is the token "#" tagged O
    spaced.write_text("# O\nx O\n", encoding="utf-8")
    assert [(s.tokens, s.tags) for s in read_column_file(spaced)] == [(["#", "x"], ["O", "O"])]
