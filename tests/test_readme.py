"""The README's "Coming from Flair" code runs as written, on small stand-ins for the files it names."""

from __future__ import annotations

import re

import flair
from flair.datasets import ColumnCorpus
from flair.embeddings import FlairEmbeddings
from flair.models import SequenceTagger as FlairSequenceTagger

from embedcache.data import read_column_file
from embedcache.embeddings.flair_names import lookup_flair_lm
from tests.conftest import REPO_ROOT, make_lm
from tests.models.flair_taggers import write_columns


def readme_python(section: str) -> str:
    """The first ```python block under the ``## section`` heading of README.md."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", body, re.S).group(1)


def test_coming_from_flair_runs_as_written(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(flair, "cache_root", tmp_path / "flair-cache")
    for name, seed in (("news-forward", 1), ("news-backward", 2)):  # Flair's names, small random LMs
        path = lookup_flair_lm(name).path
        path.parent.mkdir(parents=True, exist_ok=True)
        make_lm(name.endswith("forward"), hidden_size=16, seed=seed).save(path)
    sentences = list(read_column_file(data_dir / "wnut17" / "train.conll"))
    (tmp_path / "wnut17").mkdir()
    for split, part in (("train", sentences[:60]), ("dev", sentences[60:80]), ("test", sentences[80:100])):
        write_columns(tmp_path / "wnut17" / f"{split}.txt", part)
    corpus = ColumnCorpus(tmp_path / "wnut17", {0: "text", 1: "ner"})
    flair_tagger = FlairSequenceTagger(
        FlairEmbeddings(make_lm(True, 8)), corpus.make_label_dictionary("ner"), "ner", hidden_size=8
    )
    (tmp_path / "flair-ner").mkdir()
    flair_tagger.save(tmp_path / "flair-ner" / "final-model.pt")

    exec(compile(readme_python("Coming from Flair"), "README.md", "exec"), {})

    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "['en-upos']"
    assert (tmp_path / "out" / "flair-ner" / "final-model" / "config.json").is_file()
    assert (tmp_path / "out" / "converted-ner" / "config.json").is_file()
