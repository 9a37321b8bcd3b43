"""Hypothesis strategies for hostile text, and the settings every fuzz test of this package runs with.

The alphabet mixes arbitrary code points with the characters that break text tools: emoji and ZWJ
sequences, combining marks, right-to-left text and marks, zero-width characters, C0/C1 controls and NUL,
tabs and odd whitespace (vertical tab, form feed, NEL, line/paragraph separators, no-break and ideographic
spaces), a lone carriage return, and characters whose lower case is longer than themselves.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

HOSTILE_CHARACTERS = [
    "😀", "👩\u200d👩\u200d👧", "🇩🇪", "e\u0301", "\u0301", "שלום", "مرحبا", "\u200f", "\u202e", "\u200b",
    "\u200c", "\u200d", "\ufeff", "\x00", "\x01", "\x07", "\x1b", "\x1c", "\x7f", "\x85", "\u2028", "\u2029",
    "\t", "\x0b", "\x0c", "\r", " ", "\u00a0", "\u3000", "İ", "ß", "東京", "#", "-", ".", "U.K.", "don't",
    "a", "Z", "9", "_",
]  # fmt: skip

# Surrogates cannot be written to a UTF-8 file; everything else may appear.
any_character = st.characters(exclude_categories=["Cs"])
hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE_CHARACTERS), any_character), max_size=30).map(
    "".join
)


def hostile_token(excluded: str = "\n") -> st.SearchStrategy[str]:
    """A non-empty string of hostile characters, none of them in ``excluded``."""
    pieces = st.one_of(st.sampled_from(HOSTILE_CHARACTERS), any_character)
    token = st.lists(pieces, min_size=1, max_size=8).map("".join)
    return token.map(lambda text: "".join(c for c in text if c not in excluded)).filter(bool)


# Every fuzz test of the package: no deadline (the machine is shared), no example database in the working
# tree, and a number of examples that keeps the whole package well under a minute on 2 busy cores.
# EMBEDCACHE_FUZZ_SCALE multiplies it for a longer hunt (e.g. 20 before a release).
_SCALE = float(os.environ.get("EMBEDCACHE_FUZZ_SCALE", "1"))


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max(1, round(max_examples * _SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
