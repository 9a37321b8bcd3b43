"""Dataset loaders: WNUT-17 NER, UD English-LinES and UD English-ESLSpok UPOS, from a folder or downloaded.

The folder defaults to ``$EMBEDCACHE_DATA/<dataset>`` (``EMBEDCACHE_DATA`` defaults to ``../shared/data``).
With ``download=True`` (or ``embedcache download NAME``) missing files are fetched from the public originals
(the GitHub repositories named in :data:`CORPORA`) under the local names.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from embedcache.atomic import write_atomic
from embedcache.data.conll import read_column_file, read_conllu
from embedcache.data.corpus import Corpus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusSource:
    """Where a corpus comes from and under which terms: what ``embedcache download`` fetches.

    Attributes:
        name: the folder under the data directory, and the name on the command line.
        title: the corpus's name for people.
        repository: the GitHub repository of the original.
        license: the license of the data.
        urls: local file name → the URL it is downloaded from.
    """

    name: str
    title: str
    repository: str
    license: str
    urls: dict[str, str]


def _ud_urls(repository: str, prefix: str) -> dict[str, str]:
    raw = f"https://raw.githubusercontent.com/{repository}/master/{prefix}-ud-{{}}.conllu"
    return {f"{split}.conllu": raw.format(split) for split in ("train", "dev", "test")}


_WNUT17 = "https://raw.githubusercontent.com/leondz/emerging_entities_17/master/"
_LINES, _ESLSPOK = "UniversalDependencies/UD_English-LinES", "UniversalDependencies/UD_English-ESLSpok"
CORPORA: dict[str, CorpusSource] = {
    source.name: source
    for source in [
        CorpusSource(
            "wnut17", "WNUT-17 Emerging and Rare Entities", "leondz/emerging_entities_17", "CC BY 4.0",
            {"train.conll": _WNUT17 + "wnut17train.conll", "dev.conll": _WNUT17 + "emerging.dev.conll",
             "test.conll": _WNUT17 + "emerging.test.annotated"},
        ),
        CorpusSource("ud_english_lines", "Universal Dependencies English-LinES", _LINES, "CC BY-SA 4.0",
                     _ud_urls(_LINES, "en_lines")),
        CorpusSource("ud_english_eslspok", "Universal Dependencies English-ESLSpok", _ESLSPOK, "CC BY-SA 4.0",
                     _ud_urls(_ESLSPOK, "en_eslspok")),
    ]
}  # fmt: skip
WNUT17_URLS = CORPORA["wnut17"].urls
UD_LINES_URLS = CORPORA["ud_english_lines"].urls
UD_ESLSPOK_URLS = CORPORA["ud_english_eslspok"].urls


def data_root() -> Path:
    """``$EMBEDCACHE_DATA``, or ``../shared/data`` relative to the working directory."""
    return Path(os.environ.get("EMBEDCACHE_DATA", Path("..") / "shared" / "data"))


def ensure_files(folder: Path, urls: dict[str, str], download: bool) -> list[str]:
    """Check that every file is in ``folder``; fetch the missing ones when ``download`` is set.

    Each download is written to a temporary file in ``folder`` and renamed when complete, so a download cut
    halfway never takes the real name (and its temporary file is removed).

    Returns:
        The names of the files downloaded (none when all were there).

    Raises:
        FileNotFoundError: a file is missing and ``download`` is False.
        OSError: a download failed (``urllib.error.URLError`` for the network).
    """
    missing = [name for name in urls if not (folder / name).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"{folder}: missing {', '.join(missing)}; set EMBEDCACHE_DATA, pass root=..., or download=True"
            " (on the command line: embedcache download)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in missing:
        log.info("downloading %s", urls[name])
        write_atomic(folder / name, _downloader(urls[name]))
    return missing


def _downloader(url: str) -> Callable[[Path], None]:
    def download(path: Path) -> None:
        with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as file:
            shutil.copyfileobj(response, file)

    return download


def WNUT17(root: str | Path | None = None, download: bool = False) -> Corpus:
    """WNUT-17 emerging entities (NER, BIO tags): 3,394 train, 1,009 dev, 1,287 test sentences."""
    folder = Path(root) if root is not None else data_root() / "wnut17"
    ensure_files(folder, WNUT17_URLS, download)
    train, dev, test = (list(read_column_file(folder / name)) for name in WNUT17_URLS)
    return Corpus(train, dev, test, name="WNUT-17")


def UD_English_LinES(root: str | Path | None = None, download: bool = False) -> Corpus:
    """UD English-LinES with UPOS tags: 3,457 train, 1,118 dev, 1,121 test sentences."""
    folder = Path(root) if root is not None else data_root() / "ud_english_lines"
    ensure_files(folder, UD_LINES_URLS, download)
    train, dev, test = (list(read_conllu(folder / name)) for name in UD_LINES_URLS)
    return Corpus(train, dev, test, name="UD English-LinES")


def UD_English_ESLSpok(root: str | Path | None = None, download: bool = False) -> Corpus:
    """UD English-ESLSpok (spoken second-language English) with UPOS tags: 1,856 train, 232 dev, 232 test
    sentences."""
    folder = Path(root) if root is not None else data_root() / "ud_english_eslspok"
    ensure_files(folder, UD_ESLSPOK_URLS, download)
    train, dev, test = (list(read_conllu(folder / name)) for name in UD_ESLSPOK_URLS)
    return Corpus(train, dev, test, name="UD English-ESLSpok")


def ColumnCorpus(
    folder: str | Path, train: str, dev: str | None = None, test: str | None = None, tag_column: int = 1
) -> Corpus:
    """A corpus from CoNLL column files in ``folder`` (token in column 0)."""
    folder = Path(folder)

    def split(name: str | None) -> list:
        return list(read_column_file(folder / name, tag_column=tag_column)) if name else []

    return Corpus(split(train), split(dev), split(test), name=folder.name)
