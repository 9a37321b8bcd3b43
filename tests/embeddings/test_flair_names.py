"""Flair LM names resolve through Flair's table and cache folder offline; a missing one says where it goes."""

from __future__ import annotations

import flair
import pytest
import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings

import embedcache as ec
from embedcache.embeddings import flair_names
from embedcache.embeddings.checkpoints import UnsafeCheckpointError
from embedcache.embeddings.flair_names import FlairModelUnavailable, flair_lm_table, lookup_flair_lm
from tests.conftest import make_lm
from tests.models.flair_taggers import Exploit


@pytest.fixture
def flair_cache(tmp_path, monkeypatch):
    """An empty Flair cache folder, and no network: a download attempt fails as it would offline."""
    monkeypatch.setattr(flair, "cache_root", tmp_path / "flair-cache")

    def offline(url, cache_dir):
        raise ConnectionError(f"Failed to resolve '{url.split('/')[2]}'")

    monkeypatch.setattr(flair_names, "download", offline)
    return tmp_path / "flair-cache"


def test_the_table_is_flairs_own():
    table = flair_lm_table()
    assert len(table) >= 100
    assert table["news-forward"].endswith("/news-forward-0.4.1.pt")
    assert table["mix-backward"].endswith("/lm-mix-english-backward-v0.2rc.pt")


def test_a_cached_model_loads_offline_with_flairs_vectors(flair_cache):
    path = lookup_flair_lm("news-forward").path
    assert path == flair_cache / "embeddings" / "news-forward-0.4.1.pt"
    path.parent.mkdir(parents=True)
    make_lm(True, hidden_size=16, seed=4).save(path)
    ours = ec.CharLMEmbeddings("news-forward")
    theirs = FlairEmbeddings("news-forward")  # Flair finds the same file in its cache
    assert ours.name == "news-forward" and ours.lm.is_forward_lm
    sentence_a, sentence_b = Sentence("I love Berlin ."), Sentence("I love Berlin .")
    ours.embed(sentence_a)
    theirs.embed(sentence_b)
    assert all(
        torch.equal(a.get_embedding(), b.get_embedding()) for a, b in zip(sentence_a, sentence_b, strict=True)
    )


def test_flairs_language_aliases_and_case_resolve_too(flair_cache):
    assert lookup_flair_lm("German-Forward") == lookup_flair_lm("de-forward")
    assert lookup_flair_lm("en-impresso-hipe-v1-forward").is_lower


def test_a_model_neither_cached_nor_downloadable_says_where_to_put_it(flair_cache):
    with pytest.raises(FlairModelUnavailable) as error:
        ec.CharLMEmbeddings("mix-backward")
    message = str(error.value)
    assert message.startswith("mix-backward: Flair language model not in Flair's cache")
    assert "ConnectionError" in message
    assert "lm-mix-english-backward-v0.2rc.pt" in message  # the address
    assert str(flair_cache / "embeddings" / "lm-mix-english-backward-v0.2rc.pt") in message  # the path


def test_an_unknown_name_is_not_taken_for_a_file(flair_cache):
    with pytest.raises(
        FileNotFoundError, match=r"news-forwad: no such language model file, and not a Flair model"
    ):
        ec.CharLMEmbeddings("news-forwad")


def test_a_cached_file_is_still_read_by_the_safe_loader(flair_cache, capsys):
    path = lookup_flair_lm("news-backward").path
    path.parent.mkdir(parents=True)
    torch.save({"dictionary": Exploit()}, path)
    with pytest.raises(UnsafeCheckpointError):
        ec.CharLMEmbeddings("news-backward")
    assert "pwned" not in capsys.readouterr().out
