"""Flair's pretrained character-LM names (``news-forward``, ``mix-backward``, …) → files in Flair's cache.

Names resolve through Flair's own name table, so every name ``FlairEmbeddings`` accepts works here, and to
the file Flair itself keeps in its cache folder (``flair.cache_root / "embeddings"``), so a model a Flair
user already downloaded is found offline. The file is then read by the safe loader
(:func:`embedcache.embeddings.language_model.load_flair_checkpoint`), never unpickled in full.

Flair builds the table inside ``FlairEmbeddings.__init__`` rather than as a class attribute; it is read by
running that constructor up to the point where it first looks a name up, and stopping it there.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import flair
from flair.embeddings import FlairEmbeddings
from flair.embeddings.token import replace_with_language_code
from flair.file_utils import cached_path


class FlairModelUnavailable(FileNotFoundError):
    """A Flair LM name whose file is not in Flair's cache and could not be downloaded."""


@dataclass(frozen=True)
class FlairLMName:
    """Where Flair fetches a named LM from and where it keeps it."""

    name: str
    url: str
    cache_dir: Path  # relative to ``flair.cache_root``, as Flair's ``cached_path`` takes it
    is_lower: bool  # Flair lower-cases the text for these LMs (the CLEF-HIPE ones)

    @property
    def path(self) -> Path:
        """The file in Flair's cache (``flair.cache_root`` is read now: it can be changed at run time)."""
        return flair.cache_root / self.cache_dir / re.sub(r".+/", "", self.url)


class _TableRead(Exception):
    """Stops ``FlairEmbeddings.__init__`` once its name table is built."""


class _NameProbe(str):
    def lower(self) -> str:
        raise _TableRead


@functools.cache
def flair_lm_table() -> dict[str, str]:
    """Flair's ``name → URL`` table of pretrained character LMs, read from this Flair version."""
    probe = FlairEmbeddings.__new__(FlairEmbeddings)
    try:
        FlairEmbeddings.__init__(probe, _NameProbe("probe"))
    except _TableRead:
        return dict(probe.PRETRAINED_MODEL_ARCHIVE_MAP)
    raise RuntimeError("could not read FlairEmbeddings' table of model names from this Flair version")


def lookup_flair_lm(name: str) -> FlairLMName | None:
    """The Flair LM called ``name`` (case-insensitive, language names as Flair maps them), else None."""
    table = flair_lm_table()
    key = name.lower()
    if key not in table:
        key = replace_with_language_code(key)
    if key not in table:
        return None
    hipe = "impresso-hipe" in key  # Flair keeps these in a folder each and lower-cases their input
    return FlairLMName(key, table[key], Path("embeddings") / key if hipe else Path("embeddings"), hipe)


def flair_lm_file(model: FlairLMName) -> Path:
    """The LM's file in Flair's cache, downloaded there first (as Flair does) when missing.

    Raises:
        FlairModelUnavailable: not cached and the download failed; the message names the model, the
            address and the path to put the file at.
    """
    if model.path.is_file():
        return model.path
    try:
        return download(model.url, model.cache_dir)
    except Exception as error:  # no network, HTTP errors, a full disk: all mean "not available here"
        raise FlairModelUnavailable(
            f"{model.name}: Flair language model not in Flair's cache and it could not be downloaded "
            f"({type(error).__name__}: {' '.join(str(error).split())[:200]}); download {model.url} and put "
            f"it at {model.path}"
        ) from error


def download(url: str, cache_dir: Path) -> Path:
    """Flair's own download into its cache (a temporary file, then moved into place)."""
    return cached_path(url, cache_dir=cache_dir)


def known_names(limit: int = 6) -> str:
    """A few English names, for error messages."""
    english = [name for name in flair_lm_table() if name.startswith(("news-", "mix-"))]
    return ", ".join(english[:limit])
