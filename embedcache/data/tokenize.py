"""Raw text → sentences of tokens with character offsets, split and tokenised with segtok as Flair does.

Flair's ``SegtokSentenceSplitter`` + ``SegtokTokenizer``: ``segtok.segmenter.split_multi`` for sentences,
then ``split_single`` + ``word_tokenizer`` + ``split_contractions`` for tokens. Each token is then found in
the *original* text (Flair searches a copy with zero-width characters removed; we keep the input as is so
that every offset indexes the text the user gave).
"""

from __future__ import annotations

from segtok.segmenter import split_multi, split_single
from segtok.tokenizer import split_contractions, word_tokenizer

from embedcache.data.sentence import TaggedSentence


def segtok_words(text: str) -> list[str]:
    """Flair's ``SegtokTokenizer.run_tokenize``: the tokens of ``text``."""
    words: list[str] = []
    for sentence in split_single(text):
        words.extend(split_contractions(word_tokenizer(sentence)))
    return [word for word in words if word]


def locate(words: list[str], text: str, start: int = 0) -> list[int]:
    """Offsets of ``words`` found left to right in ``text`` from ``start``.

    Raises:
        ValueError: a word does not occur in the text (a tokeniser that rewrote characters).
    """
    offsets = []
    cursor = start
    for word in words:
        found = text.find(word, cursor)
        if found < 0:
            raise ValueError(f"token {word!r} not found in the text after offset {cursor}")
        offsets.append(found)
        cursor = found + len(word)
    return offsets


def spacing(words: list[str], offsets: list[int]) -> list[int]:
    """Flair's ``whitespace_after``: characters between a token and the next one; 0 after the last."""
    ends = [offset + len(word) for word, offset in zip(words, offsets, strict=True)]
    return [nxt - end for end, nxt in zip(ends, offsets[1:], strict=False)] + ([0] if words else [])


def tokenize_document(text: str, source: str = "") -> list[TaggedSentence]:
    """Split ``text`` into sentences of tokens; offsets index ``text`` itself.

    Args:
        text: one document (e.g. one input line).
        source: ``"file:line"`` of the document, kept on each sentence for error messages.
    """
    sentences = []
    cursor = 0
    for sentence_text in split_multi(text):
        start = text.find(sentence_text, cursor)
        words = segtok_words(sentence_text)
        if start < 0 or not words:
            continue
        offsets = locate(words, text, start)
        cursor = offsets[-1] + len(words[-1])
        sentences.append(TaggedSentence(words, None, spacing(words, offsets), source=source, offsets=offsets))
    return sentences


def tokenize_pretokenized(line: str, source: str = "") -> TaggedSentence:
    """One sentence from whitespace-separated tokens, with offsets into ``line``."""
    words = line.split()
    offsets = locate(words, line)
    return TaggedSentence(words, None, spacing(words, offsets), source=source, offsets=offsets)
