"""Taggers of one shape in both libraries: the label dictionary Flair's tagger takes, and the check that the
two taggers a suite times have one shape and tag every token."""

from __future__ import annotations

from collections.abc import Sequence

from flair.data import Dictionary
from flair.models import SequenceTagger as FlairSequenceTagger

import embedcache as ec
from bench.inputs import Call
from bench.specs import BATCH_SIZE


def flair_span_dictionary(labels: Sequence[str]) -> Dictionary:
    """Flair's label dictionary of span labels, as ``make_label_dictionary`` marks NER labels: Flair's tagger
    expands them to the tags of its ``tag_format``."""
    dictionary = Dictionary(add_unk=False)
    for label in labels:
        dictionary.add_item(label)
    dictionary.span_labels = True
    return dictionary


def check_same_shape(ours: ec.SequenceTagger, theirs: FlairSequenceTagger, call: Call) -> None:
    """Refuse to time taggers of different shapes, or a predict that leaves tokens untagged."""
    ours_shape = (
        ours.embeddings.embedding_length,
        ours.rnn.hidden_size,
        len(ours.tags),
        ours.crf is not None,
    )
    theirs_tags = len(theirs.label_dictionary) - 2  # Flair's CRF adds <START> and <STOP>
    theirs_shape = (theirs.embeddings.embedding_length, theirs.rnn.hidden_size, theirs_tags, theirs.use_crf)
    if ours_shape != theirs_shape:
        raise RuntimeError(f"taggers differ (D, hidden, tags, CRF): {ours_shape} vs {theirs_shape}")
    predictions = ours.predict(call.sentences, batch_size=BATCH_SIZE)
    if [len(p.tags) for p in predictions] != [len(s) for s in call.sentences]:
        raise RuntimeError("embedcache's predict left tokens untagged; not timing it")
