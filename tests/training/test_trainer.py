"""The trainer: storage modes, no LM calls once cached, resume equals an uninterrupted run, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch
from flair.embeddings import FlairEmbeddings, StackedEmbeddings
from gensim.models import KeyedVectors

import embedcache as ec
from embedcache.data.corpus import Corpus
from embedcache.data.datasets import WNUT17, UD_English_LinES
from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.training import Trainer, TrainingConfig
from embedcache.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from embedcache.training.trainer import _Run
from tests.conftest import make_lm


def make_tagger(
    corpus: Corpus, tag_type: str, scheme: str, hidden: int = 16, words: bool = False
) -> SequenceTagger:
    """Forward + backward random char LMs, plus (``words``) random vectors for the training vocabulary."""
    torch.manual_seed(0)
    tags = TagDictionary.from_sentences([s.tags for s in corpus.train], scheme=scheme)
    embeddings = [
        ec.CharLMEmbeddings(make_lm(True, hidden, seed=1)),
        ec.CharLMEmbeddings(make_lm(False, hidden, seed=2)),
    ]
    if words:
        vocabulary = sorted({token.lower() for sentence in corpus.train for token in sentence.tokens})
        vectors = KeyedVectors(32)
        vectors.add_vectors(vocabulary, np.random.default_rng(0).normal(size=(len(vocabulary), 32)))
        embeddings.append(ec.WordEmbeddings(vectors))
    return SequenceTagger(embeddings, tags, tag_type, hidden_size=16)


def count_lm_runs(tagger: SequenceTagger) -> list[int]:
    calls = [0]
    for embedder in tagger.embeddings.embedders:
        run = embedder.encoder.hidden_states

        def counted(strings, run=run):
            calls[0] += 1
            return run(strings)

        embedder.encoder.hidden_states = counted
    return calls


def lm_runs_per_epoch(calls: list[int], train: Callable[[], object]) -> list[int]:
    """How many LM runs ``calls`` counted during each epoch of ``train()`` (its dev evaluation included)."""
    per_epoch = []
    original = _Run._run_epoch

    def spy(run, *args):
        before = calls[0]
        original(run, *args)
        per_epoch.append(calls[0] - before)

    _Run._run_epoch = spy
    try:
        train()
    finally:
        _Run._run_epoch = original
    return per_epoch


@pytest.fixture(scope="module")
def lines(data_dir):
    return UD_English_LinES(data_dir / "ud_english_lines").subset(200, 60)


@pytest.fixture(scope="module")
def wnut(data_dir):
    return WNUT17(data_dir / "wnut17").subset(150, 40)


@pytest.mark.slow
def test_the_tagger_learns_upos_on_lines(lines, tmp_path):
    tagger = make_tagger(lines, "upos", "plain", hidden=32, words=True)
    result = Trainer(tagger, lines).train(tmp_path, storage_mode="gpu", max_epochs=8, progress=False)
    majority = max(sum(t == tag for s in lines.test for t in s.tags) for tag in tagger.tags.tags)
    n_test_tokens = sum(len(s) for s in lines.test)
    assert result.test.accuracy > majority / n_test_tokens + 0.1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    files = {p.name for p in tmp_path.iterdir()}
    assert {"best-model", "final-model", "results.json", "results.txt", "loss.tsv", "training.log"} <= files
    assert json.loads((tmp_path / "results.json").read_text())["test"]["accuracy"] == result.test.accuracy
    assert len((tmp_path / "loss.tsv").read_text().splitlines()) == 1 + len(result.history)


@pytest.mark.parametrize("mode", ["gpu", "cpu", "disk"])
def test_cached_modes_never_run_the_lms_after_the_cache_is_built(wnut, tmp_path, mode):
    tagger = make_tagger(wnut, "ner", "BIOES")
    calls = count_lm_runs(tagger)
    train = Trainer(tagger, wnut).train
    epoch_calls = lm_runs_per_epoch(
        calls, lambda: train(tmp_path, storage_mode=mode, max_epochs=2, progress=False)
    )
    assert epoch_calls == [0, 0]


def test_a_flair_stack_in_gpu_storage_runs_its_lms_only_to_build_the_cache(wnut, tmp_path):
    lms = [make_lm(True, 16, seed=1), make_lm(False, 16, seed=2)]
    calls = [0]
    for lm in lms:
        run = lm.forward

        def counted(*args, run=run, **kwargs):
            calls[0] += 1
            return run(*args, **kwargs)

        lm.forward = counted
    stack = StackedEmbeddings([FlairEmbeddings(lm) for lm in lms])
    tags = TagDictionary.from_sentences([s.tags for s in wnut.train], scheme="BIOES")
    tagger = SequenceTagger(stack, tags, "ner", hidden_size=16)
    assert [e.lm for e in tagger.embeddings.embedders] == lms  # Flair's own LM objects, adapted
    calls[0] = 0  # FlairEmbeddings embeds a dummy sentence when it is built
    train = Trainer(tagger, wnut).train
    epoch_calls = lm_runs_per_epoch(
        calls, lambda: train(tmp_path, storage_mode="gpu", max_epochs=3, progress=False)
    )
    assert epoch_calls == [0, 0, 0] and calls[0] > 0  # the LMs ran, for the cache build only
    reloaded = ec.SequenceTagger.load(tmp_path / "final-model")
    assert [type(e).__name__ for e in reloaded.embeddings.embedders] == ["CharLMEncoder"] * 2


def test_none_mode_runs_the_lms_every_epoch(wnut, tmp_path):
    tagger = make_tagger(wnut, "ner", "BIOES")
    calls = count_lm_runs(tagger)
    Trainer(tagger, wnut).train(
        tmp_path, storage_mode="none", max_epochs=2, mini_batch_size=50, progress=False
    )
    # Two LMs; 150 train sentences in batches of 50; 40 dev sentences in one batch. The test split is
    # tagged by the best model reloaded from disk, whose LMs are not counted here.
    assert calls[0] == 2 * (2 * 3) + 2 * (2 * 1)


def test_storage_mode_is_set_only_while_training(wnut, tmp_path):
    seen = []
    tagger = make_tagger(wnut.subset(20, 5), "ner", "BIOES")
    original = tagger.loss

    def spy(*args):
        seen.append(ec.get_storage_mode())
        return original(*args)

    tagger.loss = spy
    Trainer(tagger, wnut.subset(20, 5)).train(tmp_path, storage_mode="none", max_epochs=1, progress=False)
    assert set(seen) == {"none"} and ec.get_storage_mode() == "gpu"


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(wnut, tmp_path):
    small = wnut.subset(60, 20)
    straight = make_tagger(small, "ner", "BIOES")
    Trainer(straight, small).train(tmp_path / "a", storage_mode="cpu", max_epochs=3, progress=False, seed=3)

    interrupted = make_tagger(small, "ner", "BIOES")
    original = _Run._checkpoint

    def crash_after_second_epoch(run, epochs_done):
        original(run, epochs_done)
        if epochs_done == 2:
            raise KeyboardInterrupt

    _Run._checkpoint = crash_after_second_epoch
    try:
        with pytest.raises(KeyboardInterrupt):
            Trainer(interrupted, small).train(
                tmp_path / "b", storage_mode="cpu", max_epochs=3, progress=False, seed=3
            )
    finally:
        _Run._checkpoint = original
    resumed = make_tagger(small, "ner", "BIOES")
    result = Trainer(resumed, small).train(
        tmp_path / "b", storage_mode="cpu", max_epochs=3, progress=False, seed=3, resume=True
    )
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_empty_train_split_is_refused():
    tagger = SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8)), ["O", "X"], "pos", hidden_size=4)
    with pytest.raises(ValueError, match="train split has no sentence"):
        Trainer(tagger, Corpus(train=[], dev=[]))
    with pytest.raises(ValueError, match="train split has no sentence"):
        Trainer(tagger, Corpus(train=[TaggedSentence([], [])]))


def test_a_dev_label_never_seen_in_train_names_its_sentence():
    tagger = SequenceTagger(
        ec.CharLMEmbeddings(make_lm(True, 8)), ["O", "B-PER", "I-PER"], "ner", hidden_size=4
    )
    dev = [TaggedSentence(["Rome"], ["B-LOC"], source="dev.conll:7")]
    with pytest.raises(ValueError, match=r"dev\.conll:7: dev label 'LOC' never occurs in train"):
        Trainer(tagger, Corpus(train=[TaggedSentence(["Anna"], ["B-PER"])], dev=dev))


def test_bad_training_options_are_refused(wnut, tmp_path):
    tagger = make_tagger(wnut.subset(5, 2), "ner", "BIOES")
    with pytest.raises(ValueError, match="storage_mode"):
        Trainer(tagger, wnut.subset(5, 2)).train(tmp_path, storage_mode="ram")
    with pytest.raises(ValueError, match="optimizer"):
        Trainer(tagger, wnut.subset(5, 2)).train(tmp_path, optimizer="lbfgs")


def test_fine_tuned_lms_are_never_cached_and_do_change(wnut, tmp_path, caplog):
    small = wnut.subset(20, 5)
    all_tags = [s.tags for s in small.train + small.dev + small.test]
    tags = TagDictionary.from_sentences(all_tags, scheme="BIOES")
    lm = make_lm(True, 8, seed=4)
    before = lm.encoder.weight.detach().clone()
    tagger = SequenceTagger(ec.CharLMEmbeddings(lm, fine_tune=True), tags, "ner", hidden_size=4)
    Trainer(tagger, small).train(tmp_path, storage_mode="gpu", max_epochs=1, progress=False)
    assert "never cached" in caplog.text
    assert not torch.equal(before, tagger.embeddings.embedders[0].lm.encoder.weight.detach())


def test_sentences_without_tokens_are_skipped_with_a_warning(caplog):
    tagger = SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8)), ["O", "X"], "pos", hidden_size=4)
    corpus = Corpus(train=[TaggedSentence(["a"], ["X"]), TaggedSentence([], [])])
    assert len(Trainer(tagger, corpus).train_sentences) == 1
    assert "skipping 1 sentences with no tokens" in caplog.text


def tiny_tagger(corpus: Corpus, hidden_size: int = 4) -> SequenceTagger:
    tags = TagDictionary.from_sentences([s.tags for s in corpus.train + corpus.dev + corpus.test], "BIOES")
    return SequenceTagger(ec.CharLMEmbeddings(make_lm(True, 8)), tags, "ner", hidden_size=hidden_size)


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"hidden_size": 6}, "written with hidden_size=4, but this run has hidden_size=6"),
        ({"optimizer": "adamw"}, "written with optimizer='sgd', but this run has optimizer='adamw'"),
    ],
)
def test_resuming_with_other_settings_names_them_before_loading_anything(wnut, tmp_path, change, difference):
    small = wnut.subset(10, 3)
    Trainer(tiny_tagger(small), small).train(tmp_path, storage_mode="none", max_epochs=1, progress=False)
    tagger = tiny_tagger(small, change.get("hidden_size", 4))
    with pytest.raises(CheckpointError) as raised:
        Trainer(tagger, small).train(
            tmp_path, storage_mode="none", max_epochs=2, progress=False, resume=True,
            optimizer=change.get("optimizer", "sgd"),
        )  # fmt: skip
    assert str(raised.value) == (
        f"{tmp_path / 'checkpoint.pt'}: {difference}; resume with the checkpoint's settings, or delete it "
        "(or train into another output directory) to start over"
    )


def test_an_older_checkpoint_that_does_not_fit_is_a_checkpoint_error(wnut, tmp_path):
    small = wnut.subset(10, 3)
    Trainer(tiny_tagger(small), small).train(tmp_path, storage_mode="none", max_epochs=1, progress=False)
    state = load_checkpoint(tmp_path)
    del state["settings"]  # as written before checkpoints recorded them
    save_checkpoint(tmp_path, {k: v for k, v in state.items() if k != "version"})
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: does not fit this run's model or optimizer"):
        Trainer(tiny_tagger(small, 6), small).train(
            tmp_path, storage_mode="none", max_epochs=2, progress=False, resume=True
        )


def test_a_damaged_checkpoint_is_a_checkpoint_error_naming_it(wnut, tmp_path):
    small = wnut.subset(10, 3)
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: damaged checkpoint .* to start over$"):
        Trainer(tiny_tagger(small), small).train(
            tmp_path, storage_mode="none", max_epochs=1, progress=False, resume=True
        )


@pytest.mark.parametrize("budget", [-5, 1.5, "5"])
def test_a_memory_budget_that_is_no_number_of_bytes_is_refused(budget):
    with pytest.raises(
        ValueError, match="memory_budget_bytes must be a non-negative int of bytes or unset, got"
    ):
        TrainingConfig(memory_budget_bytes=budget)


def test_every_setting_reaches_the_run_and_training_json_lists_every_field(wnut, tmp_path):
    small = wnut.subset(10, 3)
    config = TrainingConfig(storage_mode="cpu", max_epochs=1, progress=False, weight_decay=0.25)
    seen = {}
    original = _Run._run_epoch

    def spy(run, *args):
        seen["weight_decay"] = run.optimizer.param_groups[0]["weight_decay"]
        seen["eval_batch_size"] = run.config.eval_batch_size
        original(run, *args)

    _Run._run_epoch = spy
    try:
        # A whole config, and keywords that replace some of its fields.
        Trainer(tiny_tagger(small), small).train(
            tmp_path, config, eval_batch_size=7, cache_dir=tmp_path / "c"
        )
    finally:
        _Run._run_epoch = original
    assert seen == {"weight_decay": 0.25, "eval_batch_size": 7}
    recorded = json.loads((tmp_path / "training.json").read_text())
    assert list(recorded) == list(TrainingConfig.__dataclass_fields__)
    assert (recorded["weight_decay"], recorded["eval_batch_size"]) == (0.25, 7)
    assert recorded["cache_dir"] == str(tmp_path / "c")  # a Path, kept as text
    with pytest.raises(TypeError, match="weight_decy"):
        Trainer(tiny_tagger(small), small).train(tmp_path, weight_decy=0.1)
