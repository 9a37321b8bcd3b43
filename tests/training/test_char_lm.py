"""Character-LM training: it learns, the backward LM reads reversed text, its files load here and in Flair."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from flair.data import Sentence
from flair.embeddings import FlairEmbeddings

import embedcache as ec
from embedcache.embeddings.language_model import load_language_model
from embedcache.training import char_lm, char_lm_corpus, char_lm_recipe
from embedcache.training.char_lm import CharLMConfig, fit_char_lm
from embedcache.training.char_lm_corpus import build_char_dictionary, corpus_ids
from embedcache.training.char_lm_recipe import recipe_configs, train_from_recipe
from tests.conftest import REPO_ROOT

TOKENS = [["I", "love", "Berlin", "!"], ["lol", "@user", "that", "was", "sooo", "good", "😂"]]
TINY = dict(hidden_size=32, embedding_size=16, sequence_length=50, batch_size=16, eval_every_steps=1000)


def social_text(data_dir: Path) -> Path:
    return data_dir / "text" / "social_media_en.txt"


@pytest.fixture(scope="module", params=["forward", "backward"])
def trained(request, data_dir, tmp_path_factory):
    config = CharLMConfig(
        text_path=str(social_text(data_dir)),
        out_path=str(tmp_path_factory.mktemp("lm") / request.param),
        is_forward=request.param == "forward",
        max_lines=1000,
        max_steps=40,
        learning_rate=0.01,
        validation_fraction=0.05,
        **TINY,
    )
    return fit_char_lm(config, progress=False)


def test_training_lowers_the_validation_loss(trained):
    assert trained.steps == 40
    assert trained.validation_bits_per_char < trained.initial_validation_bits_per_char - 1.5


def test_every_file_is_written_and_nothing_is_left_staged(trained):
    out = trained.out_path
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == sorted(
        f"{out.name}{s}" for s in (".json", ".pt", ".safetensors", "-training.json", "-resume.pt")
    )


def test_model_is_saved_at_every_evaluation_and_at_the_end(data_dir, tmp_path, monkeypatch):
    saves = []
    monkeypatch.setattr(char_lm, "save_trained_lm", lambda r, c, state: saves.append((r.steps, r.finished)))
    config = CharLMConfig(
        text_path=str(social_text(data_dir)), out_path=str(tmp_path / "lm"), max_lines=300, max_steps=20,
        **{**TINY, "eval_every_steps": 10},
    )  # fmt: skip
    fit_char_lm(config, progress=False)
    assert saves == [(10, False), (20, False), (20, True)]


def test_safetensors_lm_gives_the_in_memory_vectors(trained):
    loaded = load_language_model(trained.out_path)
    assert loaded.is_forward_lm == trained.lm.is_forward_lm
    expected = ec.CharLMEncoder(trained.lm).embed_batch(TOKENS).vectors
    assert torch.equal(ec.CharLMEncoder(loaded).embed_batch(TOKENS).vectors, expected)


def test_flair_checkpoint_loads_safely_and_in_flair(trained):
    checkpoint = trained.out_path.with_suffix(".pt")
    expected = ec.CharLMEncoder(trained.lm).embed_batch(TOKENS[:1]).vectors
    ours = ec.CharLMEmbeddings(checkpoint)
    assert torch.equal(ours.embed_batch(TOKENS[:1]).vectors, expected)
    flair = FlairEmbeddings(str(checkpoint))
    sentence = Sentence(TOKENS[0])
    flair.embed(sentence)
    assert torch.equal(torch.stack([token.get_embedding() for token in sentence]), expected)


def test_char_dictionary_is_unk_space_newline_then_by_frequency():
    dictionary = build_char_dictionary(["bba", "c", "aab"], min_count=1)
    assert dictionary.get_items() == ["<unk>", " ", "\n", "a", "b", "c"]  # a, b: 3 each, tie by code point
    frequent = build_char_dictionary(["bba", "c", "aab"], min_count=2)
    assert frequent.get_items() == ["<unk>", " ", "\n", "a", "b"]


def test_backward_corpus_is_the_whole_text_reversed():
    dictionary = build_char_dictionary(["ab", "c"], min_count=1)
    index = {item: i for i, item in enumerate(dictionary.get_items())}
    assert corpus_ids(["ab", "c"], dictionary, True).tolist() == [index[c] for c in "ab\nc\n"]
    assert corpus_ids(["ab", "c"], dictionary, False).tolist() == [index[c] for c in "\nc\nba"]
    assert corpus_ids(["a?"], dictionary, True).tolist() == [index["a"], 0, index["\n"]]  # unknown → <unk>


@pytest.mark.parametrize(("is_forward", "context", "expected"), [(True, "\nab", "c"), (False, "\ndcb", "a")])
def test_lm_learns_the_direction_it_reads(tmp_path, is_forward, context, expected):
    # After "b", "abcd" continues with "c"; read backwards ("dcba") it continues with "a".
    text = tmp_path / "abcd.txt"
    text.write_text("abcd\n" * 400, encoding="utf-8")
    config = CharLMConfig(
        text_path=str(text), out_path=str(tmp_path / "lm"), is_forward=is_forward, min_char_count=1,
        max_steps=60, learning_rate=0.02, dropout=0.0, seed=0, **TINY,
    )  # fmt: skip
    lm = fit_char_lm(config, progress=False).lm
    ids = torch.tensor([[lm.dictionary.get_idx_for_item(c)] for c in context])  # (S, 1)
    logits, _, _ = lm(ids, lm.init_hidden(1))  # (S, 1, V)
    assert lm.dictionary.get_item_for_index(int(logits[-1, 0].argmax())) == expected


def test_recipe_smoke_run_trains_both_directions(data_dir, tmp_path):
    overrides = {"smoke": "true", "out_dir": str(tmp_path), "text": str(social_text(data_dir))}
    results = train_from_recipe(REPO_ROOT / "recipes" / "charlm.toml", overrides, progress=False)
    assert sorted(results) == ["backward", "forward"]
    for direction, result in results.items():
        assert result.out_path.parent == tmp_path / "smoke"
        assert result.lm.hidden_size == 32 and result.steps == 30
        assert result.validation_bits_per_char < result.initial_validation_bits_per_char
        assert load_language_model(result.out_path).is_forward_lm == (direction == "forward")
        assert json.loads(Path(f"{result.out_path}-training.json").read_text())["finished"] is True


def test_recipe_overrides_and_direction(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('text = "/x.txt"\nmax_steps = 5\n[forward]\nhidden_size = 8\n[backward]\n')
    configs, threads = recipe_configs(recipe, {"direction": "forward", "batch_size": "4", "seed": "3"})
    assert threads == 1 and len(configs) == 1
    assert (configs[0].is_forward, configs[0].hidden_size, configs[0].batch_size) == (True, 8, 4)
    (config,), _ = recipe_configs(recipe, {"direction": "backward", "backward.time_budget_s": "2"})
    assert (config.is_forward, config.hidden_size, config.time_budget_s) == (False, 256, 2.0)


GOOD = 'text = "t"\nmax_steps = 5\n[forward]\n'


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (
            GOOD + "hiden_size = 8\n",
            {},
            r"r\.toml:4: \[forward\] unknown key 'hiden_size'; did you mean 'hidden_size'",
        ),
        (
            'text = "t"\nmax_steps = "many"\n[forward]\n',
            {},
            r"r\.toml:2: max_steps = 'many' should be an int",
        ),
        (GOOD, {"hidden": "3"}, r"r\.toml: --set hidden=3: unknown key 'hidden'; did you mean 'hidden_size'"),
        (GOOD, {"backward.seed": "3"}, r"r\.toml: --set backward\.seed=3: no \[backward\] table"),
        (GOOD, {"optimizer": "lbfgs"}, r"optimizer = 'lbfgs'"),
        ('text = "t"\n[forward]\n', {}, r"r\.toml \[forward\]: set max_steps or time_budget_s"),
        (GOOD + "[backward]\n", {"name": "lm"}, r"r\.toml: both directions would write .*lm"),
    ],
)
def test_bad_recipe_names_the_key_and_the_file(tmp_path, text, overrides, message):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    with pytest.raises(ValueError, match=message):
        recipe_configs(recipe, overrides)


def test_command_line_trains_and_reports_bad_keys_without_a_traceback(data_dir, tmp_path, capsys):
    recipe = str(REPO_ROOT / "recipes" / "charlm.toml")
    text = f"text={social_text(data_dir)}"
    char_lm_recipe.main([recipe, "smoke=true", "direction=forward", f"out_dir={tmp_path}", text])
    assert load_language_model(tmp_path / "smoke" / "forward").is_forward_lm
    with pytest.raises(SystemExit) as exit_info:
        char_lm_recipe.main([recipe, "hiden_size=3"])
    assert exit_info.value.code == 2
    assert "charlm.toml: --set hiden_size=3: unknown key 'hiden_size'; did you mean 'hidden_size'?" in (
        capsys.readouterr().err
    )


def test_a_stopped_run_resumes_to_the_weights_of_an_unstopped_one(data_dir, tmp_path, monkeypatch):
    settings = dict(
        text_path=str(social_text(data_dir)), max_lines=300, max_steps=20, **{**TINY, "eval_every_steps": 5}
    )
    whole = fit_char_lm(CharLMConfig(out_path=str(tmp_path / "whole"), **settings), progress=False)

    real_save, saves = char_lm.save_trained_lm, []

    def save_then_stop(result, config, state=None):
        real_save(result, config, state)
        saves.append(result.steps)
        if result.steps == 10:
            raise KeyboardInterrupt  # the process is stopped right after its second save

    monkeypatch.setattr(char_lm, "save_trained_lm", save_then_stop)
    stopped = CharLMConfig(out_path=str(tmp_path / "parts"), **settings)
    with pytest.raises(KeyboardInterrupt):
        fit_char_lm(stopped, progress=False)
    resumed = fit_char_lm(dataclasses.replace(stopped, resume=True), progress=False)

    assert saves == [5, 10, 15, 20, 20]  # the second process started at step 10
    assert resumed.steps == 20 and resumed.train_chars_seen == whole.train_chars_seen
    for name, weights in whole.lm.state_dict().items():
        assert torch.equal(resumed.lm.state_dict()[name], weights), name
    record = json.loads((tmp_path / "parts-training.json").read_text())
    assert [point["step"] for point in record["validation_curve"]] == [5, 10, 15, 20, 20]


def test_resume_refuses_a_run_with_other_settings(data_dir, tmp_path):
    settings = dict(
        text_path=str(social_text(data_dir)), out_path=str(tmp_path / "lm"), max_lines=300, **TINY
    )
    fit_char_lm(CharLMConfig(max_steps=4, **{**settings, "eval_every_steps": 2}), progress=False)
    longer = CharLMConfig(max_steps=6, resume=True, **{**settings, "eval_every_steps": 2})
    assert fit_char_lm(longer, progress=False).steps == 6  # a longer end condition is allowed
    with pytest.raises(ValueError, match=r"lm-resume.pt: cannot resume.*hidden_size"):
        fit_char_lm(dataclasses.replace(longer, hidden_size=64, max_steps=8), progress=False)


def test_treebank_text_is_added_to_training_only(data_dir, tmp_path):
    conllu = data_dir / "ud_english_eslspok" / "train.conllu"
    base = CharLMConfig(text_path=str(social_text(data_dir)), out_path=str(tmp_path / "lm"), max_lines=300,
                        max_steps=1, **TINY)  # fmt: skip
    _, train, validation = char_lm.prepare_corpus(base)
    _, train_more, validation_more = char_lm.prepare_corpus(
        dataclasses.replace(base, extra_texts=(str(conllu),))
    )
    sentences = char_lm_corpus.read_text_lines(conllu)
    assert len(sentences) == 1856 and not any(s.startswith("#") for s in sentences)
    assert validation_more.shape == validation.shape  # the same validation text (ids follow the dictionary)
    added = sum(len(s) + 1 for s in sentences)
    assert abs(train_more.numel() - train.numel() - added) < base.batch_size * 2
