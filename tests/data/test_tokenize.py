from flair.data import Sentence
from flair.splitter import SegtokSentenceSplitter
from hypothesis import given, settings
from hypothesis import strategies as st

from embedcache.data.tokenize import tokenize_document, tokenize_pretokenized

TEXT = "Apple is looking at buying a U.K. startup for $1 billion.  Isn't it?  Yes!"


def test_tokens_and_spacing_equal_flairs_segtok_pipeline():
    ours = tokenize_document(TEXT)
    flair = SegtokSentenceSplitter().split(TEXT)
    assert [s.tokens for s in ours] == [[t.text for t in s] for s in flair]
    assert [s.whitespace_after for s in ours] == [[t.whitespace_after for t in s] for s in flair]
    assert [s.offsets for s in ours] == [[s.start_position + t.start_position for t in s] for s in flair]


def test_offsets_index_the_input_even_with_zero_width_characters():
    text = "Zero\u200bwidth  and\u00a0odd\tspacing 😀 here."
    for sentence in tokenize_document(text):
        for token, offset in zip(sentence.tokens, sentence.offsets, strict=True):
            assert text[offset : offset + len(token)] == token


def test_pretokenized_lines_keep_their_tokens():
    sentence = tokenize_pretokenized("  New  York\tis big ")
    assert sentence.tokens == ["New", "York", "is", "big"]
    assert sentence.offsets == [2, 7, 12, 15]
    assert sentence.whitespace_after == [2, 1, 1, 0]
    assert Sentence(sentence.tokens).to_tokenized_string() == "New York is big"


def test_empty_and_blank_documents_give_no_sentences():
    assert tokenize_document("") == []
    assert tokenize_document(" \t\n ") == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_offsets_always_index_the_input(text):
    for sentence in tokenize_document(text):
        assert sentence.tokens
        for token, offset in zip(sentence.tokens, sentence.offsets, strict=True):
            assert text[offset : offset + len(token)] == token
