"""Sequence tagging models: the batched linear-chain CRF, tag dictionaries, tagging schemes and spans.

``available()`` lists the bundled models, which ``SequenceTagger.load(name)`` loads by name. Names are
imported on first use (:mod:`embedcache.lazy_imports`).
"""

from embedcache.lazy_imports import lazy_exports

_LABELS = (
    "Scheme", "Span", "SpanScheme", "TagDictionary", "UnknownTagError", "bio_to_bioes", "bioes_to_bio",
    "convert_scheme", "detect_scheme", "repair_bio", "spans_from_tags", "split_tag", "tags_from_spans",
)  # fmt: skip
_EXPORTS = {"CRF": ".crf", "available": ".catalog", **dict.fromkeys(_LABELS, ".labels")}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
