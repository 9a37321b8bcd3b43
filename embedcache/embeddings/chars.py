"""Characters → a character LM dictionary's ids (Flair's or the native one), for a whole batch at once.

Flair converts every character with a Python dict lookup (``Dictionary.get_idx_for_items``). Here the batch is
joined into one string, decoded as UTF-32 code points by a single ``str.encode`` call and looked up with a
sorted-array search, so the cost per character is C-level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from flair.data import Dictionary

    from embedcache.embeddings.char_language_model import CharacterDictionary

# Flair maps characters missing from the dictionary to id 0 (``defaultdict(int)`` in get_idx_for_items),
# which is ``<unk>`` in every dictionary built with ``add_unk=True``.
FLAIR_UNKNOWN_ID = 0


class CharIndex:
    """Vectorised character lookup into a character LM's dictionary (a Flair ``Dictionary`` or native).

    Args:
        dictionary: the LM's character dictionary; only single-character items can match a character.
    """

    def __init__(self, dictionary: Dictionary | CharacterDictionary) -> None:
        codepoints, ids = [], []
        for idx, item in enumerate(dictionary.idx2item):
            text = item.decode("utf-8")
            if len(text) == 1:
                codepoints.append(ord(text))
                ids.append(idx)
        order = np.argsort(codepoints, kind="stable")
        self._codepoints = np.asarray(codepoints, dtype=np.int64)[order]  # (V,) sorted
        self._ids = np.asarray(ids, dtype=np.int64)[order]  # (V,)
        # Flair pads every string of a chunk with the id of " ".
        self.padding_id: int = dictionary.get_idx_for_item(" ")

    def ids_of(self, text: str) -> np.ndarray:
        """``(len(text),)`` int64 ids of the characters of ``text``; unknown characters get id 0."""
        # surrogatepass: a lone surrogate is one code point to Python (and to Flair), not an encoding error.
        codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        if self._codepoints.size == 0:
            return np.full(codepoints.shape, FLAIR_UNKNOWN_ID, dtype=np.int64)
        slot = np.searchsorted(self._codepoints, codepoints).clip(max=self._codepoints.size - 1)
        return np.where(self._codepoints[slot] == codepoints, self._ids[slot], FLAIR_UNKNOWN_ID)

    def encode_padded(self, strings: Sequence[str]) -> torch.Tensor:
        """Ids of ``strings`` as a ``(batch, max_len)`` int64 tensor, right-padded with the id of ``" "``."""
        lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=len(strings))
        width = int(lengths.max()) if lengths.size else 0
        padded = np.full((len(strings), width), self.padding_id, dtype=np.int64)  # (B, L)
        ids = self.ids_of("".join(strings))  # (total_chars,)
        rows = np.repeat(np.arange(len(strings)), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(ids.size) - np.repeat(starts, lengths)
        padded[rows, cols] = ids
        return torch.from_numpy(padded)
