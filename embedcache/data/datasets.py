"""Dataset loaders: WNUT-17 NER and UD English-LinES UPOS, from a local folder or downloaded.

The folder defaults to ``$EMBEDCACHE_DATA/<dataset>`` (``EMBEDCACHE_DATA`` defaults to ``../shared/data``).
With ``download=True`` missing files are fetched from the public originals (GitHub repositories
``leondz/emerging_entities_17`` and ``UniversalDependencies/UD_English-LinES``) under the local names.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from embedcache.data.conll import read_column_file, read_conllu
from embedcache.data.corpus import Corpus

log = logging.getLogger(__name__)

WNUT17_URLS = {
    "train.conll": "https://raw.githubusercontent.com/leondz/emerging_entities_17/master/wnut17train.conll",
    "dev.conll": "https://raw.githubusercontent.com/leondz/emerging_entities_17/master/emerging.dev.conll",
    "test.conll": "https://raw.githubusercontent.com/leondz/emerging_entities_17/master/emerging.test.annotated",
}
_LINES = (
    "https://raw.githubusercontent.com/UniversalDependencies/UD_English-LinES/master/en_lines-ud-{}.conllu"
)
UD_LINES_URLS = {f"{split}.conllu": _LINES.format(split) for split in ("train", "dev", "test")}


def data_root() -> Path:
    """``$EMBEDCACHE_DATA``, or ``../shared/data`` relative to the working directory."""
    return Path(os.environ.get("EMBEDCACHE_DATA", Path("..") / "shared" / "data"))


def ensure_files(folder: Path, urls: dict[str, str], download: bool) -> None:
    """Check that every file is in ``folder``; fetch the missing ones when ``download`` is set.

    Raises:
        FileNotFoundError: a file is missing and ``download`` is False.
    """
    missing = [name for name in urls if not (folder / name).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"{folder}: missing {', '.join(missing)}; set EMBEDCACHE_DATA, pass root=..., or download=True"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name in missing:
        log.info("downloading %s", urls[name])
        with (
            urllib.request.urlopen(urls[name], timeout=60) as response,
            tempfile.NamedTemporaryFile(dir=folder, delete=False) as partial,
        ):
            shutil.copyfileobj(response, partial)
        os.replace(partial.name, folder / name)  # a download cut halfway never takes the real name


def WNUT17(root: str | Path | None = None, download: bool = False) -> Corpus:
    """WNUT-17 emerging entities (NER, BIO tags): 3,394 train, 1,009 dev, 1,287 test sentences."""
    folder = Path(root) if root is not None else data_root() / "wnut17"
    ensure_files(folder, WNUT17_URLS, download)
    splits = [list(read_column_file(folder / name)) for name in WNUT17_URLS]
    return Corpus(*splits, name="WNUT-17")


def UD_English_LinES(root: str | Path | None = None, download: bool = False) -> Corpus:
    """UD English-LinES with UPOS tags: 3,457 train, 1,118 dev, 1,121 test sentences."""
    folder = Path(root) if root is not None else data_root() / "ud_english_lines"
    ensure_files(folder, UD_LINES_URLS, download)
    splits = [list(read_conllu(folder / name)) for name in UD_LINES_URLS]
    return Corpus(*splits, name="UD English-LinES")


def ColumnCorpus(
    folder: str | Path, train: str, dev: str | None = None, test: str | None = None, tag_column: int = 1
) -> Corpus:
    """A corpus from CoNLL column files in ``folder`` (token in column 0)."""
    folder = Path(folder)

    def split(name: str | None) -> list:
        return list(read_column_file(folder / name, tag_column=tag_column)) if name else []

    return Corpus(split(train), split(dev), split(test), name=folder.name)
