"""Memory budgets: training stops or falls back before embedding, predict sizes its batches to the budget.

Everything runs on the CPU with simulated budgets: the byte arithmetic is exact, so the tests assert the
chosen batch sizes, placements and messages, and that results equal those of an unbudgeted run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

import embedcache as ec
from embedcache.cache.budget import OverBudgetError
from embedcache.cli import main
from embedcache.cli.common import memory_size
from embedcache.data.corpus import Corpus
from embedcache.data.datasets import WNUT17
from embedcache.data.sentence import TaggedSentence
from embedcache.inference.predict import predict
from embedcache.inference.predict_budget import (
    InputOverBudgetError,
    budgeted_batch_size,
    sentence_nbytes,
    transient_widths,
)
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.training import Trainer
from tests import peak_rss
from tests.conftest import REPO_ROOT, make_lm
from tests.training.test_trainer import count_lm_runs

LM_HIDDEN, TAGGER_HIDDEN = 16, 8


def two_lm_tagger(tags: TagDictionary, tag_type: str) -> SequenceTagger:
    """Forward + backward hidden-16 LMs (D = 32), BiLSTM of 8, CRF."""
    torch.manual_seed(0)
    embeddings = [ec.CharLMEmbeddings(make_lm(True, LM_HIDDEN, seed=1)),
                  ec.CharLMEmbeddings(make_lm(False, LM_HIDDEN, seed=2))]  # fmt: skip
    return SequenceTagger(embeddings, tags, tag_type, hidden_size=TAGGER_HIDDEN)


@pytest.fixture(scope="module")
def wnut(data_dir: Path) -> Corpus:
    return WNUT17(data_dir / "wnut17").subset(30, 8)


@pytest.fixture(scope="module")
def pos_tagger() -> SequenceTagger:
    tagger = two_lm_tagger(TagDictionary(["O", "X", "Y", "Z"], "plain"), "pos")
    torch.nn.init.normal_(tagger.emission.weight, std=30.0)  # varied tags, so that mix-ups show
    return tagger.eval()


def lm_chars(sentence: TaggedSentence) -> int:
    """What the LM reads: a start marker, then every token and a space."""
    return 1 + sum(len(token) + 1 for token in sentence.tokens)


def batch_sizes_seen(tagger: SequenceTagger, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    embed = tagger.embed

    def spy(sentences, whitespace_after=None):
        sizes.append(len(sentences))
        return embed(sentences, whitespace_after)

    monkeypatch.setattr(tagger, "embed", spy)
    return sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1.5 GiB", 3 * 2**29), ("3kb", 3000)],
)
def test_sizes_on_the_command_line(text: str, expected: int) -> None:
    assert memory_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "2 GBs", "-1", "0", "1e9"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected a size"):
        memory_size(text)


def test_bytes_per_sentence_are_lm_states_plus_token_activations(pos_tagger: SequenceTagger) -> None:
    # 4 bytes × (chars × 2 × 16 (one LM's states, twice) + tokens × (5 × D + 8 × BiLSTM + 4 × tags + 512))
    assert transient_widths(pos_tagger) == (32, 752)
    assert sentence_nbytes(pos_tagger, 10, 3) == 4 * (10 * 32 + 3 * (5 * 32 + 8 * 8 + 4 * 4 + 512)) == 10304


def test_predict_batch_size_follows_the_budget_and_results_do_not_change(
    pos_tagger: SequenceTagger,
    wnut: Corpus,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sentences = wnut.train  # 30 sentences
    per_sentence = sentence_nbytes(pos_tagger, max(map(lm_chars, sentences)), max(len(s) for s in sentences))
    reference = predict(pos_tagger, sentences, batch_size=32)
    sizes = batch_sizes_seen(pos_tagger, monkeypatch)
    with caplog.at_level(logging.INFO, logger="embedcache.inference.predict_budget"):
        budgeted = pos_tagger.predict(sentences, batch_size=32, memory_budget_bytes=7 * per_sentence + 3)
    assert sizes == [7, 7, 7, 7, 2]
    assert "batch size 7 (requested 32)" in caplog.text
    assert f"needs {per_sentence:,} bytes" in caplog.text
    assert len({tag for p in reference for tag in p.tags}) >= 2
    assert [p.tags for p in budgeted] == [p.tags for p in reference]
    for got, expected in zip(budgeted, reference, strict=True):  # batch shapes may change float rounding
        assert got.confidences == pytest.approx(expected.confidences, abs=1e-4)


def test_a_budget_above_the_batch_keeps_the_batch_size(pos_tagger: SequenceTagger, wnut: Corpus) -> None:
    assert budgeted_batch_size(pos_tagger, wnut.train, 16, 10**12) == 16


def test_an_input_with_a_sentence_over_the_budget_is_refused_with_the_arithmetic(
    pos_tagger: SequenceTagger, wnut: Corpus
) -> None:
    short, long = ["Hi", "there"], ["word"] * 100  # 9 and 501 LM characters
    budget = sentence_nbytes(pos_tagger, 501, 100) - 1
    with pytest.raises(InputOverBudgetError) as raised:
        predict(pos_tagger, [short, "Fine. And this?", long, short], memory_budget_bytes=budget)
    assert raised.value.position == 2
    assert str(raised.value) == (
        "input 2: a sentence of 100 tokens needs 364,928 bytes to tag = 4 × (501 LM characters × 32 + 100 "
        "tokens × 752), over the memory budget of 364,927 bytes; split it into shorter sentences or raise "
        "the budget"
    )
    assert len(predict(pos_tagger, [short, long], memory_budget_bytes=budget + 1)) == 2
    with pytest.raises(ValueError, match="positive int of bytes"):
        budgeted_batch_size(pos_tagger, wnut.train, 16, 0)


def test_out_of_memory_halves_the_batch_and_retries(
    pos_tagger: SequenceTagger,
    wnut: Corpus,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sentences = wnut.train[:20]
    reference = predict(pos_tagger, sentences, batch_size=16)
    embed = pos_tagger.embed
    attempts: list[int] = []

    def at_most_three(batch, whitespace_after=None):
        attempts.append(len(batch))
        if len(batch) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return embed(batch, whitespace_after)

    monkeypatch.setattr(pos_tagger, "embed", at_most_three)
    with caplog.at_level(logging.WARNING, logger="embedcache.inference.predict"):
        retried = predict(pos_tagger, sentences, batch_size=16)
    # 16 fails, 8 fails, 4 fails; then ten batches of 2 (later batches keep the halved size).
    assert attempts == [16, 8, 4] + [2] * 10
    assert caplog.text.count("out of memory on a batch of") == 3
    assert "out of memory on a batch of 4 sentences: retrying with 2" in caplog.text
    assert [p.tags for p in retried] == [p.tags for p in reference]


def test_out_of_memory_on_a_single_sentence_is_raised(
    pos_tagger: SequenceTagger, wnut: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_fits(batch, whitespace_after=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(pos_tagger, "embed", never_fits)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        predict(pos_tagger, wnut.train[:3], batch_size=2)


def ner_tagger(corpus: Corpus) -> SequenceTagger:
    all_tags = [s.tags for s in corpus.train + corpus.dev + corpus.test]
    return two_lm_tagger(TagDictionary.from_sentences(all_tags, scheme="BIOES"), "ner")


def cache_nbytes(sentences: Sequence[TaggedSentence]) -> int:
    """float32 cache of a split: (tokens + 1 padding row) × D 32 × 4 bytes."""
    return (sum(len(s) for s in sentences) + 1) * 32 * 4


def train_cache_nbytes(corpus: Corpus) -> int:
    return cache_nbytes(corpus.train)


def dev_cache_nbytes(corpus: Corpus) -> int:
    return cache_nbytes(corpus.dev)


def test_training_over_budget_fails_before_any_lm_work(wnut: Corpus, tmp_path: Path) -> None:
    small = wnut.subset(20, 5)
    tagger = ner_tagger(small)
    runs = count_lm_runs(tagger)
    needed = train_cache_nbytes(small) + dev_cache_nbytes(small)
    with pytest.raises(OverBudgetError) as error:
        Trainer(tagger, small).train(
            tmp_path, storage_mode="gpu", max_epochs=1, progress=False, memory_budget_bytes=needed - 1
        )
    message = str(error.value)
    assert f"needs {needed:,} bytes, over memory_budget_bytes ('gpu': {needed - 1:,} bytes)" in message
    assert runs == [0]
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "final-model").exists()


def test_training_over_budget_falls_back_to_cpu_with_a_warning_and_trains_the_same(
    wnut: Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    small = wnut.subset(20, 5)
    needed = train_cache_nbytes(small) + dev_cache_nbytes(small)
    budgeted = ner_tagger(small)
    with caplog.at_level(logging.WARNING, logger="embedcache.cache.budget"):
        Trainer(budgeted, small).train(
            tmp_path / "budget", storage_mode="gpu", max_epochs=2, progress=False,
            memory_budget_bytes=needed - 1, on_over_budget="fallback",
        )  # fmt: skip
    over = f"needs {needed:,} bytes, over the 'gpu' budget of {needed - 1:,} bytes; using placement 'cpu'"
    assert over in caplog.text
    on_cpu = ner_tagger(small)
    Trainer(on_cpu, small).train(tmp_path / "cpu", storage_mode="cpu", max_epochs=2, progress=False)
    for (name, a), (_, b) in zip(budgeted.state_dict().items(), on_cpu.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_the_training_budget_covers_the_train_and_dev_caches_together(wnut: Corpus, tmp_path: Path) -> None:
    small = wnut.subset(20, 5)
    with pytest.raises(OverBudgetError):
        Trainer(ner_tagger(small), small).train(
            tmp_path, storage_mode="gpu", max_epochs=1, progress=False,
            memory_budget_bytes=train_cache_nbytes(small) + dev_cache_nbytes(small) - 1,
        )  # fmt: skip


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_predict_with_max_memory_gives_the_same_output(
    pos_tagger: SequenceTagger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pos_tagger.save(tmp_path / "model")
    text = tmp_path / "in.txt"
    text.write_text("Anna went to Rome on Monday .\nThe cat sat on the mat .\nHi\n", encoding="utf-8")
    plain = run_cli(capsys, "predict", "--model", tmp_path / "model", text, "-q")
    budgeted = run_cli(capsys, "predict", "--model", tmp_path / "model", text, "--max-memory", "64KiB", "-q")
    assert plain[0] == budgeted[0] == 0, budgeted[2]
    assert budgeted[1] == plain[1] and plain[1].count("\t") == 15
    code, out, err = run_cli(capsys, "predict", "--model", tmp_path / "model", text, "--max-memory", "lots")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--max-memory: expected a size" in err


def test_cli_train_max_memory_reaches_the_trainer_and_over_budget_is_bad_input(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EMBEDCACHE_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)  # no LM files here: the smoke run uses random stand-ins
    recipe = REPO_ROOT / "recipes" / "lines_upos.toml"
    code, _, err = run_cli(
        capsys, "train", recipe, "--smoke", "--set", f"output_dir={tmp_path}", "--max-memory", "1kB", "-q"
    )
    assert code == 2
    [error] = [line for line in err.splitlines() if "error" in line]  # the others: random LM stand-ins
    assert error.startswith(f"embedcache train: error: {recipe}: the embedding cache needs")
    assert error.endswith("or --set training.on_over_budget=fallback")
    assert "over memory_budget_bytes ('gpu': 1,000 bytes)" in err
    assert json.loads((tmp_path / "smoke" / "training.json").read_text())["memory_budget_bytes"] == 1000


def test_cli_refuses_an_input_over_the_budget_and_tags_the_others(
    pos_tagger: SequenceTagger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pos_tagger.save(tmp_path / "model")
    long, short = tmp_path / "long.txt", tmp_path / "short.txt"
    long.write_text("fine .\n" + "word " * 2000 + "\n", encoding="utf-8")
    short.write_text("Anna went to Rome .\n", encoding="utf-8")
    code, out, err = run_cli(
        capsys, "predict", "--model", tmp_path / "model", long, short, "--max-memory", "1MB"
    )
    assert code == 2
    assert err == (
        f"embedcache predict: error: {long}:2: a sentence of 2,000 tokens needs 7,296,128 bytes to tag = "
        "4 × (10,001 LM characters × 32 + 2,000 tokens × 752), over the memory budget of 1,000,000 bytes; "
        "split it into shorter sentences or raise the budget (--max-memory)\n"
    )
    tokens = [line.split("\t")[0] for line in out.splitlines() if not line.startswith("# ")]  # no comments
    assert tokens == ["Anna", "went", "to", "Rome", ".", ""]


PEAK_DRIVER = """
import random, sys
import torch
from embedcache.cli.common import load_model
from embedcache.inference.predict import predict
from embedcache.inference.predict_budget import sentence_nbytes
from tests.peak_rss import peak_growth, reset_peak

torch.set_num_threads(1)
tagger = load_model(None, torch.device("cpu"))  # the bundled model: real LM and BiLSTM sizes
predict(tagger, [["warm", "up", "."]])
words = random.Random(0).choices(["the", "cat", "sat", "on", "mat", "Apple", "is", "buying"], k=3000)
budget = sentence_nbytes(tagger, 1 + sum(len(w) + 1 for w in words), len(words))  # just enough
before = reset_peak()
predict(tagger, [words], memory_budget_bytes=budget)
print(budget, peak_growth(before))
"""


@pytest.mark.slow
@pytest.mark.skipif(not peak_rss.SUPPORTED, reason="needs Linux's peak RSS reset")
def test_the_budget_is_a_cap_on_the_measured_peak_of_a_long_sentence() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_DRIVER], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    budget, growth = map(int, result.stdout.split())
    assert budget > 50_000_000  # a sentence of 3,000 tokens with the bundled model: ~90 MB
    assert growth <= budget
