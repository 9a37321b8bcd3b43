"""The text a character LM trains on, as ids: Flair's ``TextDataset`` reading, vectorised.

Every non-empty line is followed by the document delimiter ``"\\n"``; a backward LM reads the whole text
reversed. :func:`batchify` splits the ids batch-major: column ``b`` of the ``(T, B)`` tensor is the ``b``-th
contiguous ``1/B`` of the corpus, so consecutive chunks of a column continue each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from flair.data import Dictionary

from embedcache.embeddings.chars import CharIndex

DOCUMENT_DELIMITER = "\n"


def build_char_dictionary(text_lines: Iterable[str], min_count: int = 10) -> Dictionary:
    """A Flair character dictionary: ``<unk>`` (id 0), ``" "``, ``"\\n"``, then characters by frequency.

    Characters seen fewer than ``min_count`` times are left out (they read as ``<unk>``); ties in frequency
    are broken by code point, so the same text always gives the same ids.
    """
    counts: Counter[str] = Counter()
    for line in text_lines:
        counts.update(line)
    dictionary = Dictionary(add_unk=True)
    for character in (" ", DOCUMENT_DELIMITER):
        dictionary.add_item(character)
    for character, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if count >= min_count:
            dictionary.add_item(character)  # " " and "\n" again are no-ops
    return dictionary


def read_lines(text_path: str | Path, max_lines: int | None = None) -> list[str]:
    """The non-empty lines of a UTF-8 file (Flair skips empty documents too), at most ``max_lines``."""
    lines: list[str] = []
    with Path(text_path).open(encoding="utf-8") as text:
        for line in text:
            if max_lines is not None and len(lines) >= max_lines:
                break
            line = line.rstrip("\n")
            if line:
                lines.append(line)
    return lines


def read_text_lines(path: str | Path) -> list[str]:
    """The sentences of a CoNLL-U file (its ``# text =`` comments), or the non-empty lines of a text file."""
    if Path(path).suffix != ".conllu":
        return read_lines(path)
    prefix = "# text = "
    with Path(path).open(encoding="utf-8") as conllu:
        return [line[len(prefix) :].rstrip("\n") for line in conllu if line.startswith(prefix)]


def corpus_ids(lines: Sequence[str], dictionary: Dictionary, is_forward: bool) -> torch.Tensor:
    """``(n_chars,)`` int64 ids of the lines, each ended by the delimiter; reversed for a backward LM."""
    text = "".join(line + DOCUMENT_DELIMITER for line in lines)
    return torch.from_numpy(CharIndex(dictionary).ids_of(text if is_forward else text[::-1]))


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``(T, batch_size)``: column ``b`` is the ``b``-th contiguous slice of ``ids``; the remainder is cut."""
    steps = ids.numel() // batch_size
    if steps < 2:
        raise ValueError(f"{ids.numel()} characters are too few for batch_size={batch_size}")
    return ids[: steps * batch_size].view(batch_size, steps).t().contiguous()  # (T, B)
