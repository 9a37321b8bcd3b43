"""Inline markup: the input text with its tags written into it, readable and exactly reversible.

Every tagged stretch of the text is written ``[STRETCH|LABEL]`` and everything else as it was, spacing
included:

- span schemes (BIO, BIOES): each span, ``[Apple Inc.|ORG] is looking at [U.K.|LOC][-|MISC]based``;
- plain tags (POS): each token, ``[Apple|PROPN] [is|AUX] [(|PUNCT][and|CCONJ]``; tokens that touch in the
  text touch in the markup, and the brackets still show where each one ends.

In the text and in labels, ``\\``, ``[``, ``]`` and ``|`` are written ``\\\\``, ``\\[``, ``\\]`` and ``\\|``,
so a bracket or bar of the text never reads as markup. :func:`parse_inline` reverses
:func:`inline_markup`: it gives back the text and each stretch's character offsets and label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: data sits upstream of models at run time
    from embedcache.inference.predict import Prediction
    from embedcache.models.labels import Scheme

_ESCAPES = str.maketrans({"\\": "\\\\", "[": "\\[", "]": "\\]", "|": "\\|"})

Stretch = tuple[int, int, str]
"""``(start, end, label)``: characters ``start`` to ``end`` (exclusive) of the text carry ``label``."""


def escape(text: str) -> str:
    """``text`` with the markup characters backslash-escaped."""
    return text.translate(_ESCAPES)


def inline_markup(prediction: Prediction, scheme: Scheme = "BIO") -> str:
    """The input text with the prediction's spans (or, for ``plain`` tags, tokens) marked in it.

    Predictions without a text (token or CoNLL input) are written as their tokens joined by single spaces.
    """
    text, offsets = _text_and_offsets(prediction)
    tokens = prediction.tokens
    if scheme == "plain":
        stretches = [(o, o + len(t), tag) for t, o, tag in zip(tokens, offsets, prediction.tags, strict=True)]
    else:
        stretches = [
            (offsets[s.start], offsets[s.end - 1] + len(tokens[s.end - 1]), s.label) for s in prediction.spans
        ]
    pieces, cursor = [], 0
    for start, end, label in stretches:
        pieces += [escape(text[cursor:start]), "[", escape(text[start:end]), "|", escape(label), "]"]
        cursor = end
    pieces.append(escape(text[cursor:]))
    return "".join(pieces)


def _text_and_offsets(prediction: Prediction) -> tuple[str, list[int]]:
    if prediction.text is not None and prediction.offsets is not None:
        return prediction.text, prediction.offsets
    offsets, cursor = [], 0
    for token in prediction.tokens:
        offsets.append(cursor)
        cursor += len(token) + 1
    return " ".join(prediction.tokens), offsets


def parse_inline(markup: str) -> tuple[str, list[Stretch]]:
    """The text and the marked stretches of one line of :func:`inline_markup` output.

    Example:
        >>> parse_inline("[Anna|PER] moved to [U.K.|LOC]")
        ('Anna moved to U.K.', [(0, 4, 'PER'), (14, 18, 'LOC')])

    Raises:
        ValueError: the line is not well-formed markup (the message gives the character position).
    """
    text: list[str] = []
    label: list[str] | None = None  # the label being read, inside "|...]"
    stretches: list[Stretch] = []
    start: int | None = None  # where the open stretch starts in the text
    characters = iter(enumerate(markup))
    for position, character in characters:
        target = text if label is None else label
        if character == "\\":
            escaped = next(characters, None)
            if escaped is None:
                raise ValueError(f"inline markup ends in a lone backslash at character {position}")
            target.append(escaped[1])
        elif character == "[" and start is None:
            start = len(text)
        elif character == "|" and start is not None and label is None:
            label = []
        elif character == "]" and label is not None:
            # A label opens only after a stretch's start, so start is set here.
            stretches.append((start, len(text), "".join(label)))  # type: ignore[arg-type]
            start, label = None, None
        elif character in "[]|":
            raise ValueError(f"unexpected {character!r} at character {position} of the inline markup")
        else:
            target.append(character)
    if start is not None:
        raise ValueError("inline markup ends inside a [stretch|label]")
    return "".join(text), stretches
