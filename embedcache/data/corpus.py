"""A corpus is three lists of :class:`TaggedSentence`: train, dev and test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from embedcache.data.sentence import TaggedSentence

if TYPE_CHECKING:  # a Flair corpus exists only where Flair is imported already
    from flair.data import Corpus as FlairCorpus
    from flair.data import Sentence


@dataclass
class Corpus:
    """Train, dev and test splits of tagged sentences."""

    train: list[TaggedSentence]
    dev: list[TaggedSentence] = field(default_factory=list)
    test: list[TaggedSentence] = field(default_factory=list)
    name: str = "corpus"

    def __repr__(self) -> str:
        return f"Corpus({self.name}: {len(self.train)} train, {len(self.dev)} dev, {len(self.test)} test)"

    def subset(self, n_train: int, n_eval: int) -> Corpus:
        """The first ``n_train`` training and ``n_eval`` dev/test sentences (smoke runs)."""
        return Corpus(self.train[:n_train], self.dev[:n_eval], self.test[:n_eval], f"{self.name}[:{n_train}]")

    @classmethod
    def from_flair(cls, corpus: FlairCorpus, tag_type: str) -> Corpus:
        """Convert a Flair corpus; span labels (NER) become BIO tags, token labels (POS) stay as they are."""
        # Flair types its splits as torch Datasets, which iterate at run time but declare no __iter__.
        train, dev, test = (
            [from_flair_sentence(s, tag_type) for s in split] if split else []  # type: ignore[attr-defined]
            for split in (corpus.train, corpus.dev, corpus.test)
        )
        return cls(train, dev, test)


def from_flair_sentence(sentence: Sentence, tag_type: str) -> TaggedSentence:
    """Tokens, ``tag_type`` tags (BIO for spans, ``O`` where unlabelled) and spacing of a Flair sentence."""
    tokens = [token.text for token in sentence.tokens]
    tags = ["O"] * len(tokens)
    spans = sentence.get_spans(tag_type)
    if spans:
        for span in spans:
            first, last = span.tokens[0].idx - 1, span.tokens[-1].idx - 1
            label = span.get_label(tag_type).value
            tags[first] = f"B-{label}"
            tags[first + 1 : last + 1] = [f"I-{label}"] * (last - first)
    else:
        tags = [token.get_label(tag_type, "O").value for token in sentence.tokens]
    return TaggedSentence(tokens, tags, [t.whitespace_after for t in sentence.tokens])
