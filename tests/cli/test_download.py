"""embedcache download: every corpus's files land under their local names; no network (the fetch is faked)."""

from __future__ import annotations

import dataclasses
import io
import urllib.error
import urllib.request

import pytest

from embedcache.data.datasets import CORPORA
from tests.cli.conftest import RunCli


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs asked for; each "download" is the URL's own bytes, or a network error for a 'broken' URL."""
    urls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        urls.append(url)
        if "broken" in url:
            raise urllib.error.URLError("Temporary failure in name resolution")
        return io.BytesIO(url.encode())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return urls


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_each_corpus_downloads_its_three_splits_into_the_data_directory(cli: RunCli, fetched, tmp_path, name):
    run = cli("download", name, "--to", tmp_path)
    source = CORPORA[name]
    assert run.code == 0, run.err
    assert run.out == f"{source.title} ({source.license}): {', '.join(source.urls)} in {tmp_path / name}\n"
    assert fetched == list(source.urls.values())
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == sorted(
        source.urls
    )  # no temporary file left
    for local_name, url in source.urls.items():
        assert (tmp_path / name / local_name).read_text() == url
    assert all(url.startswith(f"https://raw.githubusercontent.com/{source.repository}/") for url in fetched)


def test_files_already_there_are_kept_and_not_fetched(cli: RunCli, fetched, tmp_path):
    folder = tmp_path / "wnut17"
    folder.mkdir()
    (folder / "train.conll").write_text("mine\tO\n")
    run = cli("download", "wnut17", "--to", tmp_path)
    assert run.code == 0 and f"note: {folder}: kept train.conll (already there)" in run.err
    assert (folder / "train.conll").read_text() == "mine\tO\n"
    assert [url.rsplit("/", 1)[1] for url in fetched] == ["emerging.dev.conll", "emerging.test.annotated"]


def test_the_default_directory_is_embedcache_data(cli: RunCli, fetched, tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDCACHE_DATA", str(tmp_path))
    assert cli("download", "ud_english_eslspok").code == 0
    assert sorted(p.name for p in (tmp_path / "ud_english_eslspok").iterdir()) == [
        "dev.conllu", "test.conllu", "train.conllu"
    ]  # fmt: skip


def test_a_network_error_is_one_line_with_code_2_and_leaves_no_partial_file(
    cli: RunCli, fetched, tmp_path, monkeypatch
):
    broken = {**CORPORA["wnut17"].urls, "dev.conll": "https://broken.invalid/dev.conll"}
    monkeypatch.setitem(CORPORA, "wnut17", dataclasses.replace(CORPORA["wnut17"], urls=broken))
    run = cli("download", "wnut17", "--to", tmp_path)
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "embedcache download: error: wnut17: download from leondz/emerging_entities_17 failed: "
        "Temporary failure in name resolution\n"
    )
    assert [p.name for p in (tmp_path / "wnut17").iterdir()] == ["train.conll"]  # fetched before the failure


def test_an_unknown_corpus_is_a_usage_error(cli: RunCli, fetched):
    run = cli("download", "conll2003")
    assert (run.code, run.err.count("\n"), fetched) == (2, 1, [])
    assert "invalid choice: 'conll2003'" in run.err
