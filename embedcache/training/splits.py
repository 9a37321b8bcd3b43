"""The splits a tagger trains on, checked before any epoch: sentences with tokens, gold tags it can output."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger

log = logging.getLogger(__name__)


def non_empty(sentences: Sequence[TaggedSentence], split: str) -> list[TaggedSentence]:
    """The sentences with at least one token (the others are skipped, with a warning)."""
    kept = [s for s in sentences if len(s)]
    if len(kept) < len(sentences):
        log.warning("%s: skipping %d sentences with no tokens", split, len(sentences) - len(kept))
    return kept


def check_tags_known(sentences: Sequence[TaggedSentence], tagger: SequenceTagger, split: str) -> None:
    """A gold tag the model cannot output is a data error worth stopping for: name where it is."""
    known = tag_types(tagger.tags.tags, tagger.tags.scheme)
    for sentence in sentences:
        if sentence.tags is None:
            raise ValueError(f"{sentence.source or split}: sentence without gold tags in the {split} split")
        unknown = tag_types(sentence.tags, tagger.tags.scheme) - known
        if unknown:
            raise ValueError(
                f"{sentence.source or split}: {split} label {sorted(unknown)[0]!r} never occurs in train, so "
                "the model cannot predict it; fix the data or build the tag dictionary from all splits"
            )


def tag_types(tags: Sequence[str], scheme: str) -> set[str]:
    """Plain tags as they are; span tags by their type (``B-PER`` and ``E-PER`` are both ``PER``)."""
    if scheme == "plain":
        return set(tags)
    return {tag.partition("-")[2] for tag in tags if tag != "O"}
