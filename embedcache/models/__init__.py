"""Sequence tagging models: the batched linear-chain CRF, tag dictionaries, tagging schemes and spans.

``available()`` lists the bundled models, which ``SequenceTagger.load(name)`` loads by name.
"""

from embedcache.models.catalog import available
from embedcache.models.crf import CRF
from embedcache.models.labels import (
    Scheme,
    Span,
    SpanScheme,
    TagDictionary,
    UnknownTagError,
    bio_to_bioes,
    bioes_to_bio,
    convert_scheme,
    detect_scheme,
    repair_bio,
    spans_from_tags,
    split_tag,
    tags_from_spans,
)

__all__ = [
    "CRF",
    "Scheme",
    "Span",
    "SpanScheme",
    "TagDictionary",
    "UnknownTagError",
    "available",
    "bio_to_bioes",
    "bioes_to_bio",
    "convert_scheme",
    "detect_scheme",
    "repair_bio",
    "spans_from_tags",
    "split_tag",
    "tags_from_spans",
]
