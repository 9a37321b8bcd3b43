"""One recipe loader and one key=value parser for every trainer: values, types, and located errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from embedcache.config_fields import RecipeError, Table, checked_value, parse_value
from embedcache.recipes import load_tagger_recipe, settings_reference
from embedcache.training import TrainingConfig
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("raw", "value"),
    [("3", 3), ("2e-3", 2e-3), ("true", True), ('"x"', "x"), ("out/a b", "out/a b"),
     ('["a", "b"]', ["a", "b"]), ("none", None), ("null", None), ("None", None)],
)  # fmt: skip
def test_a_command_line_value_is_read_as_toml_and_none_or_null_unsets(raw, value):
    assert parse_value(raw) == value


def test_values_are_checked_against_the_field_type_and_converted():
    table = Table(Path("r.toml"), "training")
    storage = Literal["none", "cpu"]
    assert checked_value("storage_mode", None, storage, table) == "none"  # `none` is a choice here, not unset
    assert checked_value("clip", None, float | None, table) is None
    assert checked_value("clip", 3, float | None, table) == 3.0 and isinstance(
        checked_value("clip", 3, float, table), float
    )
    assert checked_value("extra_texts", ["a"], tuple[str, ...], table) == ("a",)
    with pytest.raises(RecipeError, match=r"r\.toml: \[training\] max_epochs = True should be an int"):
        checked_value("max_epochs", True, int, table)
    with pytest.raises(RecipeError, match=r"storage_mode = 'ram' should be one of 'none', 'cpu'"):
        checked_value("storage_mode", "ram", storage, table)


def test_a_misspelt_key_in_a_recipe_names_the_file_the_line_and_the_nearest_key(tmp_path):
    recipe = (REPO_ROOT / "recipes" / "lines_upos.toml").read_text(encoding="utf-8")
    path = tmp_path / "r.toml"
    path.write_text(recipe.replace("[training]\n", "[training]\nweight_decy = 0.1\n", 1), encoding="utf-8")
    line = path.read_text(encoding="utf-8").splitlines().index("weight_decy = 0.1") + 1
    expected = rf"r\.toml:{line}: \[training\] unknown key 'weight_decy'; did you mean 'weight_decay'\?"
    with pytest.raises(RecipeError, match=expected):
        load_tagger_recipe(path, smoke=True)


def test_every_training_field_is_settable_from_a_recipe_and_the_command_line():
    overrides = ["training.weight_decay=0.01", "training.eval_batch_size=8", "training.storage_mode=none",
                 "training.clip=none"]  # fmt: skip
    recipe = load_tagger_recipe(REPO_ROOT / "recipes" / "lines_upos.toml", overrides, smoke=True)
    assert {k: recipe.training[k] for k in ("weight_decay", "eval_batch_size", "storage_mode", "clip")} == {
        "weight_decay": 0.01, "eval_batch_size": 8, "storage_mode": "none", "clip": None,
    }  # fmt: skip
    TrainingConfig(**recipe.training)  # what train_tagger passes on


def test_the_recipe_readme_lists_every_setting_as_the_configurations_define_them():
    readme = (REPO_ROOT / "recipes" / "README.md").read_text(encoding="utf-8")
    assert settings_reference() in readme, "regenerate with embedcache.recipes.settings_reference()"
