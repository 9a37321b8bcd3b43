"""Tag vocabularies, the BIO/BIOES tagging schemes, and the spans that tags encode.

Spans are read the way conlleval and seqeval read them, so our spans and seqeval's scores agree even on
ill-formed predictions: an ``I-X`` after ``O``, after ``E-``/``S-``, or after a tag of another type starts
a new span, and an ``E-X`` does the same after ``O``/``E-``/``S-``. Every scheme conversion goes through
spans, which repairs ill-formed input on the way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from embedcache.lazy_imports import is_instance_of

if TYPE_CHECKING:
    from flair.data import Dictionary

Scheme = Literal["BIO", "BIOES", "plain"]
SpanScheme = Literal["BIO", "BIOES"]

OUTSIDE = "O"
FLAIR_SPECIAL_TAGS = frozenset({"<unk>", "<START>", "<STOP>"})
_SPAN_PREFIXES = ("B", "I", "E", "S")
_PREFIXES_OF: dict[str, tuple[str, ...]] = {"BIO": ("B", "I"), "BIOES": ("B", "I", "E", "S")}
_JSON_FORMAT = "embedcache.tag_dictionary"
_JSON_VERSION = 1


@dataclass(frozen=True)
class Span:
    """Tokens ``start`` up to (excluding) ``end`` carry ``label``; ``score`` is the mean token confidence."""

    start: int
    end: int
    label: str
    score: float | None = None


class UnknownTagError(KeyError):
    """A tag that the dictionary does not hold; a ``KeyError`` so ``except KeyError`` still catches it."""

    def __init__(self, tag: str, known: Sequence[str]) -> None:
        super().__init__(tag)
        self.tag = tag
        self.known = list(known)

    def __str__(self) -> str:
        shown = ", ".join(self.known[:20]) + (", ..." if len(self.known) > 20 else "")
        return (
            f"tag {self.tag!r} is not in the tag dictionary ({len(self.known)} tags: {shown}); "
            "build the dictionary from data that contains it, or check the tag column and scheme"
        )


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", "")``; types may contain ``-`` (``B-creative-work``)."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, label = tag.partition("-")
    if prefix not in _SPAN_PREFIXES or not dash or not label:
        raise ValueError(f"tag {tag!r} is neither 'O' nor a B-/I-/E-/S- prefixed tag such as 'B-PER'")
    return prefix, label


def _is_span_tag(tag: str) -> bool:
    try:
        split_tag(tag)
    except ValueError:
        return False
    return True


def detect_scheme(tag_lists: Iterable[Sequence[str]]) -> Scheme:
    """The scheme of a corpus's tags.

    ``"plain"`` when any tag is neither ``O`` nor prefixed (POS-like tags), ``"BIOES"`` when any tag has an
    ``E-``/``S-`` prefix, else ``"BIO"`` (also for a corpus of only ``O``, the outside tag of both span
    schemes).
    """
    prefixes: set[str] = set()
    for tags in tag_lists:
        for tag in tags:
            if not _is_span_tag(tag):
                return "plain"
            prefixes.add(tag[0])
    return "BIOES" if prefixes & {"E", "S"} else "BIO"


def spans_from_tags(tags: Sequence[str], scheme: Scheme, scores: Sequence[float] | None = None) -> list[Span]:
    """The spans that a tag sequence encodes, read as conlleval/seqeval read them.

    Args:
        tags: one tag per token.
        scheme: ``"BIO"`` or ``"BIOES"`` (read alike, both prefix sets accepted); with ``"plain"`` every
            token not tagged ``O`` is a one-token span labelled with its whole tag.
        scores: optional per-token confidences; a span's score is their mean over its tokens, as in Flair.

    Example:
        >>> spans_from_tags(["B-PER", "I-PER", "O", "I-LOC"], "BIO")
        [Span(start=0, end=2, label='PER', score=None), Span(start=3, end=4, label='LOC', score=None)]
    """
    if scores is not None and len(scores) != len(tags):
        raise ValueError(f"got {len(scores)} scores for {len(tags)} tags; pass one score per token")
    bounds = _plain_bounds(tags) if scheme == "plain" else _span_bounds(tags)
    return [
        Span(start, end, label, None if scores is None else sum(scores[start:end]) / (end - start))
        for start, end, label in bounds
    ]


def flair_spans_from_tags(tags: Sequence[str], scores: Sequence[float] | None = None) -> list[Span]:
    """The spans Flair 0.15 reads from tags (``flair.data.get_spans_from_bio``), for converted models.

    Flair's reading differs from conlleval's on ill-formed sequences: only ``B-``/``S-``, or an ``I-`` (or a
    tag after an ``S-``) of another type, starts a new span; ``E-`` never closes one; a span's label is the
    type seen most often in it, its first tag counting 1.1. ``O``, ``_`` and the empty tag are outside.
    """
    spans: list[Span] = []
    start: int | None = None
    weights: dict[str, float] = {}  # votes for the label of the open span
    previous = "O-"
    for i, tag in enumerate([*tags, OUTSIDE]):
        tag = "O-" if tag in ("", OUTSIDE, "_") else tag
        inside = tag != "O-"
        starts = tag[:2] in ("B-", "S-") or (
            inside and previous[2:] != tag[2:] and (tag[:2] == "I-" or previous[2:] == "S-")
        )
        if start is not None and (starts or not inside):
            label = max(weights, key=weights.__getitem__)
            score = None if scores is None else sum(scores[start:i]) / (i - start)
            spans.append(Span(start, i, label, score))
            start, weights = None, {}
        if inside:
            start = i if start is None else start
            weights[tag[2:]] = weights.get(tag[2:], 0.0) + (1.1 if starts else 1.0)
        previous = tag
    return spans


def _plain_bounds(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    return [(i, i + 1, tag) for i, tag in enumerate(tags) if tag != OUTSIDE]


def _span_bounds(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    bounds = []
    start: int | None = None
    previous_prefix, previous_label = OUTSIDE, ""
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        # as in conlleval: only an I-/E- after a B-/I- of the same type extends a span
        continues = prefix in ("I", "E") and previous_prefix in ("B", "I") and label == previous_label
        if start is not None and not continues:
            bounds.append((start, i, previous_label))
            start = None
        if start is None and prefix != OUTSIDE:
            start = i
        previous_prefix, previous_label = prefix, label
    if start is not None:
        bounds.append((start, len(tags), previous_label))
    return bounds


def tags_from_spans(spans: Iterable[Span], length: int, scheme: Scheme) -> list[str]:
    """Tags for ``length`` tokens with ``O`` outside ``spans``; spans must not overlap.

    With ``"plain"`` every token of a span carries the span's label unchanged.
    """
    tags = [OUTSIDE] * length
    for span in spans:
        if not 0 <= span.start < span.end <= length:
            raise ValueError(f"{span} does not fit in a sequence of {length} tokens")
        if scheme == "plain":
            tags[span.start : span.end] = [span.label] * (span.end - span.start)
        elif scheme == "BIOES" and span.end - span.start == 1:
            tags[span.start] = f"S-{span.label}"
        else:
            inside = [f"I-{span.label}"] * (span.end - span.start - 1)
            tags[span.start : span.end] = [f"B-{span.label}", *inside]
            if scheme == "BIOES":
                tags[span.end - 1] = f"E-{span.label}"
    return tags


def convert_scheme(tags: Sequence[str], scheme: SpanScheme) -> list[str]:
    """Span tags (BIO, BIOES, or a mix, well-formed or not) rewritten well-formed in ``scheme``."""
    return tags_from_spans(spans_from_tags(tags, scheme), len(tags), scheme)


def bio_to_bioes(tags: Sequence[str]) -> list[str]:
    """``B-X I-X`` → ``B-X E-X``, a lone ``B-X`` → ``S-X``; ill-formed input is repaired first."""
    return convert_scheme(tags, "BIOES")


def bioes_to_bio(tags: Sequence[str]) -> list[str]:
    """``E-X`` → ``I-X``, ``S-X`` → ``B-X``; ill-formed input is repaired first."""
    return convert_scheme(tags, "BIO")


def repair_bio(tags: Sequence[str]) -> list[str]:
    """Well-formed BIO with the spans that conlleval reads, e.g. ``O I-X`` → ``O B-X``."""
    return convert_scheme(tags, "BIO")


class TagDictionary:
    """An ordered tag vocabulary: tag ids for the CRF, tags back for the spans.

    Example:
        >>> tags = TagDictionary.from_sentences([["B-PER", "I-PER", "O"]], scheme="BIOES")
        >>> tags.tags
        ['O', 'B-PER', 'I-PER', 'E-PER', 'S-PER']
        >>> tags.encode(["B-PER", "E-PER", "O"])
        [1, 3, 0]
    """

    def __init__(self, tags: Sequence[str], scheme: Scheme | None = None) -> None:
        self._tags = list(tags)
        self.scheme: Scheme = detect_scheme([self._tags]) if scheme is None else scheme
        self._index = {tag: i for i, tag in enumerate(self._tags)}
        if len(self._index) != len(self._tags):
            duplicates = sorted({tag for tag in self._tags if self._tags.count(tag) > 1})
            raise ValueError(f"tags must be unique, got duplicates {duplicates}")
        if self.scheme not in ("BIO", "BIOES", "plain"):
            raise ValueError(f"scheme must be 'BIO', 'BIOES' or 'plain', got {self.scheme!r}")
        if self.scheme != "plain":
            for tag in self._tags:
                if tag not in FLAIR_SPECIAL_TAGS:  # converted Flair taggers keep them: their CRF scores them
                    split_tag(tag)  # raises, naming the tag that does not fit a span scheme

    @property
    def tags(self) -> list[str]:
        """The tags in id order (a copy: the dictionary itself never changes)."""
        return list(self._tags)

    def __len__(self) -> int:
        return len(self._tags)

    def __contains__(self, tag: object) -> bool:
        return tag in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TagDictionary):
            return NotImplemented
        return self._tags == other._tags and self.scheme == other.scheme

    def __repr__(self) -> str:
        return f"TagDictionary({self._tags!r}, scheme={self.scheme!r})"

    def index(self, tag: str) -> int:
        """The id of ``tag``; raises :class:`UnknownTagError` naming it when absent."""
        try:
            return self._index[tag]
        except KeyError:
            raise UnknownTagError(tag, self._tags) from None

    def encode(self, tags: Iterable[str]) -> list[int]:
        return [self.index(tag) for tag in tags]

    def decode(self, ids: Iterable[int]) -> list[str]:
        decoded = []
        for tag_id in ids:
            if not 0 <= tag_id < len(self._tags):
                raise IndexError(
                    f"tag id {tag_id} is out of range for a dictionary of {len(self._tags)} tags"
                )
            decoded.append(self._tags[tag_id])
        return decoded

    def to_json(self) -> dict[str, Any]:
        """A plain, versioned dict for the model directory's JSON."""
        return {"format": _JSON_FORMAT, "version": _JSON_VERSION, "scheme": self.scheme, "tags": self.tags}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TagDictionary:
        if data.get("format") != _JSON_FORMAT:
            raise ValueError(
                f"not a tag dictionary: expected format {_JSON_FORMAT!r}, got {data.get('format')!r}"
            )
        if data.get("version") != _JSON_VERSION:
            raise ValueError(
                f"tag dictionary version {data.get('version')!r} is not supported (this embedcache reads "
                f"version {_JSON_VERSION}); upgrade embedcache or re-save the model"
            )
        return cls(data["tags"], data["scheme"])

    @classmethod
    def from_sentences(
        cls, tag_lists: Iterable[Sequence[str]], scheme: Scheme | None = None
    ) -> TagDictionary:
        """The dictionary for a corpus's tags in ``scheme``, by default the corpus's own scheme.

        Plain tags come sorted with ``O`` first. Span schemes hold ``O`` and then, per entity type in sorted
        order, every prefix of the scheme, whether or not the corpus shows it, so that tags converted from
        another split (an ``E-X`` where training only had ``S-X``) always encode.
        """
        tag_lists = [list(tags) for tags in tag_lists]
        source = detect_scheme(tag_lists)
        target = source if scheme is None else scheme
        corpus_tags = {tag for tags in tag_lists for tag in tags}
        if target == "plain":
            return cls(sorted(corpus_tags, key=lambda tag: (tag != OUTSIDE, tag)), "plain")
        if source == "plain":
            raise ValueError(
                f"cannot build a {target} dictionary: some tags are neither 'O' nor B-/I-/E-/S- prefixed "
                f"(e.g. {sorted(t for t in corpus_tags if not _is_span_tag(t))[:5]}); use scheme='plain'"
            )
        labels = {split_tag(tag)[1] for tag in corpus_tags} - {""}
        return cls.for_labels(sorted(labels), target)

    @classmethod
    def for_labels(cls, labels: Iterable[str], scheme: SpanScheme) -> TagDictionary:
        """``O`` then every ``scheme`` prefix of each span label, in the given label order."""
        return cls(
            [OUTSIDE, *(f"{prefix}-{label}" for label in labels for prefix in _PREFIXES_OF[scheme])], scheme
        )

    @classmethod
    def from_flair(cls, dictionary: Dictionary, scheme: Scheme | None = None) -> TagDictionary:
        """A Flair tag dictionary without its ``<unk>``/``<START>``/``<STOP>`` entries, in Flair's order.

        A Flair *span* dictionary (``span_labels``, holding types such as ``PER``) is expanded into tags of
        ``scheme`` (default ``"BIOES"``, Flair's ``tag_format`` default), as Flair's ``SequenceTagger`` does.
        """
        items = [item for item in dictionary.get_items() if item not in FLAIR_SPECIAL_TAGS]
        if not getattr(dictionary, "span_labels", False):
            return cls(items, scheme)
        target = "BIOES" if scheme is None else scheme
        if target == "plain":
            raise ValueError("a Flair span dictionary needs scheme 'BIO' or 'BIOES', got 'plain'")
        return cls.for_labels(items, target)

    @classmethod
    def coerce(cls, tags: TagDictionary | Dictionary | Sequence[str]) -> TagDictionary:
        """The tag set as users pass it: a :class:`TagDictionary`, a Flair dictionary, or tags in id order."""
        if isinstance(tags, TagDictionary):
            return tags
        if is_instance_of(tags, "flair.data", "Dictionary"):
            # is_instance_of cannot narrow to Flair's Dictionary without importing Flair.
            return cls.from_flair(tags)  # type: ignore[arg-type]
        if isinstance(tags, str):
            raise TypeError(f"expected a sequence of tags, got the string {tags!r}")
        if not isinstance(tags, Sequence):
            raise TypeError(f"expected a sequence of tags, got a {type(tags).__name__}")
        return cls(tags)
