"""The native sentence: token strings, optional tags, and the spacing needed to rebuild the text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

from embedcache.lazy_imports import is_instance_of

if TYPE_CHECKING:  # a Flair sentence exists only where Flair is imported already
    from flair.data import Sentence


@dataclass
class TaggedSentence:
    """One sentence as plain lists, cheap to hold by the hundred thousand (no per-token objects).

    Attributes:
        tokens: the token strings.
        tags: one tag per token (``None`` for unlabelled text).
        whitespace_after: spaces after each token (Flair's ``Token.whitespace_after``).
        source: ``"file:line"`` where the sentence starts, for error messages.
        offsets: character offset of each token in the source document (raw-text input only).
    """

    tokens: list[str]
    tags: list[str] | None = None
    whitespace_after: list[int] = field(default_factory=list)
    source: str = ""
    offsets: list[int] | None = None

    def __post_init__(self) -> None:
        if not self.whitespace_after:
            self.whitespace_after = [1] * len(self.tokens)
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise ValueError(f"{self.source}: {len(self.tokens)} tokens but {len(self.tags)} tags")

    def __len__(self) -> int:
        return len(self.tokens)

    def text(self) -> str:
        """The sentence text with its original spacing (no trailing space)."""
        spaced = (t + " " * w for t, w in zip(self.tokens, self.whitespace_after, strict=True))
        return "".join(spaced).rstrip(" ")


def is_flair_sentence(item: object) -> TypeGuard[Sentence]:
    """A ``flair.data.Sentence``, told without importing Flair (only Flair users have one)."""
    return is_instance_of(item, "flair.data", "Sentence")
