"""Where training batches come from: the embedding cache, or the embedders run on the fly.

Both give the tagger the same thing — a padded ``(B, T, D)`` float32 tensor on the compute device and the
lengths — so the training loop does not care which storage mode is in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import torch
from torch.nn.utils.rnn import pad_sequence

from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary, convert_scheme

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchSource(Protocol):
    def batch(self, sentence_ids: Sequence[int]) -> Batch: ...

    def batches(self, id_lists: Iterable[Sequence[int]], prefetch: bool = True) -> Iterator[Batch]:
        """:meth:`batch` for each list of ids; a cache assembles the next one while this one is used."""
        ...


class LiveEmbeddings:
    """Runs the embedders for every batch (``none`` storage, or embeddings that are fine-tuned)."""

    def __init__(self, tagger: SequenceTagger, sentences: Sequence[TaggedSentence]) -> None:
        self.tagger = tagger
        self.sentences = sentences

    def batch(self, sentence_ids: Sequence[int]) -> Batch:
        chosen = [self.sentences[i] for i in sentence_ids]
        return self.tagger.embed([s.tokens for s in chosen], [s.whitespace_after for s in chosen])

    def batches(self, id_lists: Iterable[Sequence[int]], prefetch: bool = True) -> Iterator[Batch]:
        """One batch after the other: the LMs run in this thread, nothing to prefetch."""
        return (self.batch(ids) for ids in id_lists)


class GoldTags:
    """Gold tag ids of a split, encoded once, padded per batch."""

    def __init__(self, sentences: Sequence[TaggedSentence], tags: TagDictionary) -> None:
        self.ids = [
            torch.tensor(tags.encode(_in_scheme(sentence, tags)), dtype=torch.int64) for sentence in sentences
        ]

    def batch(self, sentence_ids: Sequence[int]) -> torch.Tensor:
        return pad_sequence([self.ids[i] for i in sentence_ids], batch_first=True)  # (B, T)


def _in_scheme(sentence: TaggedSentence, tags: TagDictionary) -> list[str]:
    if sentence.tags is None:
        raise ValueError(f"{sentence.source or 'a sentence'}: no gold tags in a split used for training")
    return sentence.tags if tags.scheme == "plain" else convert_scheme(sentence.tags, tags.scheme)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[list[int]]:
    """Sentence ids in mini-batches, in a random order drawn from ``generator`` (file order without one)."""
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    return [order[start : start + batch_size] for start in range(0, n, batch_size)]


def optimizer_steps(
    batches: Sequence[list[int]], batches_everywhere: int, accumulate_steps: int
) -> list[list[tuple[list[int], float]]]:
    """Mini-batches grouped ``accumulate_steps`` at a time into optimiser steps, as ``(ids, weight)`` pairs.

    Under DDP every rank must run the same number of backward passes, or the ranks with more would wait for
    a gradient all-reduce that never comes. A rank whose shard yields fewer than ``batches_everywhere``
    batches (shards differ by at most one sentence) repeats its last batch with weight 0: it joins the
    all-reduce and adds nothing to the gradient.
    """
    fillers = [(batches[-1], 0.0)] * (batches_everywhere - len(batches))
    weighted = [(ids, 1.0) for ids in batches] + fillers
    return [weighted[start : start + accumulate_steps] for start in range(0, len(weighted), accumulate_steps)]


def length_sorted_batches(sentences: Sequence[TaggedSentence], batch_size: int) -> Iterator[list[int]]:
    """Sentence ids longest first, so that evaluation batches carry little padding."""
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
