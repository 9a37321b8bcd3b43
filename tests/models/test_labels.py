"""Tag dictionaries, scheme detection and conversion, and spans cross-checked against seqeval."""

from __future__ import annotations

import json

import pytest
from flair.data import Dictionary, get_spans_from_bio
from hypothesis import given
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from embedcache.models.labels import (
    Span,
    TagDictionary,
    UnknownTagError,
    bio_to_bioes,
    bioes_to_bio,
    detect_scheme,
    flair_spans_from_tags,
    repair_bio,
    spans_from_tags,
    tags_from_spans,
)

LABELS = ["PER", "creative-work"]  # WNUT-17 types contain dashes
ANY_BIO_TAG = st.sampled_from(["O", *(f"{prefix}-{label}" for label in LABELS for prefix in "BI")])
ANY_BIOES_TAG = st.sampled_from(["O", *(f"{prefix}-{label}" for label in LABELS for prefix in "BIES")])


@st.composite
def well_formed_bio(draw: st.DrawFn) -> list[str]:
    """Runs of O and of spans ``B-X I-X*``, so every ``I-X`` continues a span of its own type."""
    tags: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            tags.append("O")
        else:
            label = draw(st.sampled_from(LABELS))
            tags += [f"B-{label}"] + [f"I-{label}"] * draw(st.integers(0, 3))
    return tags


def seqeval_spans(tags: list[str]) -> list[Span]:
    """seqeval's entities as spans: its end index is inclusive, ours exclusive."""
    return [Span(start, end + 1, label) for label, start, end in get_entities(list(tags))]


@pytest.mark.parametrize(
    ("bio", "bioes"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "E-PER", "O", "S-LOC"]),
        (["B-PER", "I-PER", "I-PER", "B-PER"], ["B-PER", "I-PER", "E-PER", "S-PER"]),
        (["O", "O"], ["O", "O"]),
        ([], []),
        (["B-creative-work", "I-creative-work"], ["B-creative-work", "E-creative-work"]),
    ],
)
def test_bio_bioes_examples(bio: list[str], bioes: list[str]) -> None:
    assert bio_to_bioes(bio) == bioes
    assert bioes_to_bio(bioes) == bio


@given(well_formed_bio())
def test_bio_round_trips_through_bioes(tags: list[str]) -> None:
    bioes = bio_to_bioes(tags)
    assert bioes_to_bio(bioes) == tags
    assert spans_from_tags(bioes, "BIOES") == spans_from_tags(tags, "BIO")
    assert repair_bio(tags) == tags


@pytest.mark.parametrize(
    ("ill_formed", "repaired"),
    [
        (["O", "I-PER", "I-PER"], ["O", "B-PER", "I-PER"]),
        (["B-PER", "I-LOC"], ["B-PER", "B-LOC"]),
        (["I-PER", "B-PER"], ["B-PER", "B-PER"]),
    ],
)
def test_ill_formed_bio_is_repaired_as_conlleval_reads_it(ill_formed: list[str], repaired: list[str]) -> None:
    assert repair_bio(ill_formed) == repaired


@given(st.lists(ANY_BIO_TAG, max_size=12))
def test_bio_spans_equal_seqeval(tags: list[str]) -> None:
    assert spans_from_tags(tags, "BIO") == seqeval_spans(tags)


@given(
    st.lists(
        st.tuples(st.one_of(ANY_BIOES_TAG, st.sampled_from(["_", "", "NOUN"])), st.floats(0, 1)), max_size=12
    )
)
def test_flair_span_reading_equals_flairs_own_even_when_ill_formed(tagged: list[tuple[str, float]]) -> None:
    tags, scores = [tag for tag, _ in tagged], [score for _, score in tagged]
    flair = [
        Span(indices[0], indices[-1] + 1, label, score)
        for indices, score, label in get_spans_from_bio(list(tags), list(scores))
    ]
    assert flair_spans_from_tags(tags, scores) == flair


@given(st.lists(ANY_BIOES_TAG, max_size=12))
def test_bioes_spans_equal_seqeval_even_when_ill_formed(tags: list[str]) -> None:
    assert spans_from_tags(tags, "BIOES") == seqeval_spans(tags)
    assert spans_from_tags(bio_to_bioes(tags), "BIOES") == seqeval_spans(tags)


def test_span_scores_are_the_mean_of_token_scores() -> None:
    spans = spans_from_tags(["B-PER", "I-PER", "O", "S-LOC"], "BIOES", scores=[0.5, 1.0, 0.1, 0.25])
    assert spans == [Span(0, 2, "PER", 0.75), Span(3, 4, "LOC", 0.25)]
    with pytest.raises(ValueError, match="one score per token"):
        spans_from_tags(["O"], "BIO", scores=[])


def test_plain_tags_give_one_span_per_token() -> None:
    tags = ["NOUN", "O", "B-ish"]
    spans = spans_from_tags(tags, "plain")
    assert spans == [Span(0, 1, "NOUN"), Span(2, 3, "B-ish")]
    assert tags_from_spans(spans, 3, "plain") == tags


def test_tags_from_spans_rejects_spans_outside_the_sequence() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        tags_from_spans([Span(1, 4, "PER")], 3, "BIO")


def test_span_tags_must_be_prefixed() -> None:
    with pytest.raises(ValueError, match="'PER'"):
        spans_from_tags(["PER"], "BIO")


@pytest.mark.parametrize(
    ("tag_lists", "scheme"),
    [
        ([["B-PER", "I-PER"], ["O"]], "BIO"),
        ([["B-PER", "E-PER"], ["S-LOC"]], "BIOES"),
        ([["NOUN", "VERB"], ["PUNCT"]], "plain"),
        ([["B-PER", "NOUN"]], "plain"),
        ([["O"], []], "BIO"),
    ],
)
def test_detect_scheme(tag_lists: list[list[str]], scheme: str) -> None:
    assert detect_scheme(tag_lists) == scheme


def test_dictionary_from_sentences_in_the_corpus_scheme() -> None:
    tags = TagDictionary.from_sentences([["B-PER", "I-PER", "O"], ["B-LOC"]])
    assert tags.scheme == "BIO"
    assert tags.tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert len(tags) == 5 and "I-LOC" in tags and "E-LOC" not in tags
    assert tags.encode(["O", "B-PER", "I-PER"]) == [0, 3, 4]
    assert tags.decode([4, 1, 0]) == ["I-PER", "B-LOC", "O"]
    assert tags.index("I-LOC") == 2


def test_dictionary_from_sentences_converted_to_bioes() -> None:
    tags = TagDictionary.from_sentences([["B-PER", "O"]], scheme="BIOES")
    assert tags.tags == ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


def test_plain_dictionary_is_sorted_with_o_first() -> None:
    tags = TagDictionary.from_sentences([["VERB", "O", "ADJ"], ["NOUN"]])
    assert tags.scheme == "plain"
    assert tags.tags == ["O", "ADJ", "NOUN", "VERB"]


def test_plain_corpus_cannot_become_a_span_dictionary() -> None:
    with pytest.raises(ValueError, match="scheme='plain'"):
        TagDictionary.from_sentences([["NOUN"]], scheme="BIO")


def test_unknown_tags_and_ids_are_reported_clearly() -> None:
    tags = TagDictionary(["O", "B-PER", "I-PER"])
    with pytest.raises(KeyError) as caught:
        tags.encode(["O", "B-LOC"])
    assert isinstance(caught.value, UnknownTagError)
    assert "'B-LOC' is not in the tag dictionary" in str(caught.value)
    with pytest.raises(IndexError, match="tag id 3"):
        tags.decode([3])
    with pytest.raises(IndexError, match="tag id -1"):
        tags.decode([-1])


@pytest.mark.parametrize(
    ("tags", "scheme", "message"),
    [
        (["O", "O"], "BIO", "duplicates"),
        (["O", "PER"], "BIO", "'PER'"),
        (["O"], "IOB2", "scheme must be"),
    ],
)
def test_invalid_dictionaries_are_rejected(tags: list[str], scheme: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TagDictionary(tags, scheme)  # type: ignore[arg-type]


def test_json_round_trip() -> None:
    tags = TagDictionary.from_sentences([["B-creative-work", "O"]], scheme="BIOES")
    data = json.loads(json.dumps(tags.to_json()))
    assert data["version"] == 1
    assert TagDictionary.from_json(data) == tags


@pytest.mark.parametrize(
    ("change", "message"),
    [({"version": 99}, "version 99 is not supported"), ({"format": "other"}, "not a tag dictionary")],
)
def test_json_of_another_format_or_version_is_refused(change: dict, message: str) -> None:
    data = TagDictionary(["O", "B-X", "I-X"]).to_json() | change
    with pytest.raises(ValueError, match=message):
        TagDictionary.from_json(data)


def test_from_flair_tag_dictionary_drops_special_tags() -> None:
    flair_tags = Dictionary()  # <unk> first, as Flair's make_label_dictionary gives it
    for tag in ["O", "S-PER", "B-PER", "E-PER", "I-PER", "<START>", "<STOP>"]:
        flair_tags.add_item(tag)
    tags = TagDictionary.from_flair(flair_tags)
    assert tags.tags == ["O", "S-PER", "B-PER", "E-PER", "I-PER"]
    assert tags.scheme == "BIOES"


def test_from_flair_span_dictionary_expands_types_like_flair() -> None:
    flair_types = Dictionary()
    flair_types.add_item("PER")
    flair_types.add_item("LOC")
    flair_types.span_labels = True
    assert TagDictionary.from_flair(flair_types).tags == [
        "O",
        *("B-PER", "I-PER", "E-PER", "S-PER"),
        *("B-LOC", "I-LOC", "E-LOC", "S-LOC"),
    ]
    assert TagDictionary.from_flair(flair_types, "BIO").tags == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_coerce_accepts_what_users_pass() -> None:
    tags = TagDictionary(["NOUN", "VERB"])
    flair_tags = Dictionary(add_unk=False)
    flair_tags.add_item("NOUN")
    flair_tags.add_item("VERB")
    assert TagDictionary.coerce(tags) is tags
    assert TagDictionary.coerce(flair_tags) == tags
    assert TagDictionary.coerce(["NOUN", "VERB"]) == tags
    with pytest.raises(TypeError, match="string"):
        TagDictionary.coerce("NOUN")  # type: ignore[arg-type]
