"""Character-LM recipes: which LMs to train, from one TOML file and ``key=value`` overrides.

Top-level keys apply to both directions; a ``[forward]`` or ``[backward]`` table holds the settings of one
direction, and its presence asks for that direction. The keys are the fields of :class:`CharLMConfig`
(less ``text_path``, ``out_path`` and ``is_forward``, which the recipe derives) and of
:class:`CharLMRecipeSettings`.
Overrides take ``key=value`` or ``forward.key=value``; ``direction=forward`` trains one direction;
``smoke=true`` makes a tiny run (2,000 lines, 30 steps, hidden 32) under ``<out_dir>/smoke``. The file is
read and checked by :mod:`embedcache.config_fields`, as tagger recipes are.

Example:
    python -m embedcache.training.char_lm_recipe recipes/charlm.toml direction=forward smoke=true
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embedcache.config_fields import (
    Override,
    RecipeError,
    Table,
    check_settings,
    field_types,
    parse_override,
    read_toml,
    unknown_key,
)
from embedcache.data.datasets import data_root
from embedcache.training.char_lm import CharLMConfig, CharLMResult, fit_char_lm

DIRECTIONS = ("forward", "backward")
# What the recipe derives, per direction: not settable as such.
DERIVED_FIELDS = ("text_path", "out_path", "is_forward")
# What --smoke sets (before the other overrides, which still win over it).
_SMOKE = {"max_lines": 2000, "max_steps": 30, "time_budget_s": None, "hidden_size": 32,
          "embedding_size": 16, "sequence_length": 50, "batch_size": 16, "eval_every_steps": 10}  # fmt: skip


@dataclass(frozen=True)
class CharLMRecipeSettings:
    """The keys of an LM recipe that are not :class:`CharLMConfig` fields."""

    text: str | None = None  # the training text, relative to $EMBEDCACHE_DATA (required)
    out_dir: str = "out/charlm"  # each direction writes <out_dir>/<name>.*
    threads: int = 1  # torch intra-op threads; run the two directions as two processes
    name: str | None = None  # the file name of a direction's LM (default: the direction)


def recipe_keys() -> dict[str, Any]:
    """Every key an LM recipe takes, with its type."""
    lm = {k: v for k, v in field_types(CharLMConfig).items() if k not in DERIVED_FIELDS}
    return {**lm, **field_types(CharLMRecipeSettings)}


def _checked(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked against the fields of both dataclasses, converted to their types."""
    known = recipe_keys()
    for key in values:
        if key not in known:
            raise unknown_key(table, key, known)
    recipe_only = {k: v for k, v in values.items() if k in field_types(CharLMRecipeSettings)}
    lm = {k: v for k, v in values.items() if k not in recipe_only}
    return {
        **check_settings(CharLMConfig, table, lm, DERIVED_FIELDS),
        **check_settings(CharLMRecipeSettings, table, recipe_only),
    }


def recipe_configs(
    path: str | Path, overrides: Mapping[str, str] | Sequence[str] = ()
) -> tuple[list[CharLMConfig], int]:
    """The LM configurations a recipe asks for, and its ``threads``, after ``key=value`` overrides.

    Raises:
        RecipeError: bad TOML, an unknown key or a value of the wrong type (with file, line and the nearest
            valid key), a direction the recipe lacks, or settings that :class:`CharLMConfig` refuses.
    """
    path = Path(path)
    recipe = read_toml(path)
    assignments = [
        parse_override(item if isinstance(overrides, Sequence) else f"{item}={overrides[item]}")
        for item in overrides
    ]
    switches = {a.key: a for a in assignments if a.key in ("smoke", "direction")}
    assignments = [a for a in assignments if a.key not in switches]
    sections = {d: recipe.pop(d) for d in DIRECTIONS if isinstance(recipe.get(d), dict)}
    shared = _checked(Table(path, None, tuple(assignments)), recipe)
    per_direction = {d: _checked(Table(path, d, tuple(assignments)), s) for d, s in sections.items()}
    smoke = _switch_smoke(path, switches.get("smoke"))
    wanted = switches["direction"].raw.strip() if "direction" in switches else None
    if wanted is not None and wanted not in per_direction:
        raise RecipeError(f"{path}: direction={wanted!r}, but the recipe has [{'], ['.join(per_direction)}]")
    smoke_settings = (
        [Override(key, "none" if v is None else str(v)) for key, v in _SMOKE.items()] if smoke else []
    )
    for assignment in [*smoke_settings, *assignments]:
        _apply(path, assignment, shared, per_direction)
    directions = [wanted] if wanted else list(per_direction)
    configs = [_config(path, d, {**shared, **per_direction[d]}, smoke) for d in directions]
    if not configs:
        raise RecipeError(f"{path}: no [forward] or [backward] table: nothing to train")
    if len({c.out_path for c in configs}) < len(configs):
        raise RecipeError(
            f"{path}: both directions would write {configs[0].out_path}; give them different names"
        )
    return configs, int(shared.get("threads", 1))


def _switch_smoke(path: Path, assignment: Override | None) -> bool:
    if assignment is None:
        return False
    if not isinstance(assignment.value, bool):
        raise RecipeError(f"{path}: {assignment}: expected smoke=true or smoke=false")
    return assignment.value


def _apply(path: Path, assignment: Override, shared: dict[str, Any], per_direction: dict[str, Any]) -> None:
    """Set one override: ``key`` in every direction, ``forward.key`` in one."""
    direction, _, key = assignment.key.rpartition(".")
    if direction and direction not in per_direction:
        raise RecipeError(f"{path}: {assignment}: no [{direction}] table in the recipe")
    table = Table(path, direction or None, (assignment,))
    value = _checked(table, {key: assignment.value})[key]
    for target in [per_direction[direction]] if direction else [shared, *per_direction.values()]:
        target[key] = value


def _config(path: Path, direction: str, settings: dict[str, Any], smoke: bool) -> CharLMConfig:
    """One direction's :class:`CharLMConfig`: paths resolved, the recipe's own keys taken out."""
    recipe = CharLMRecipeSettings(**{k: settings.pop(k) for k in list(settings) if k in _recipe_only()})
    if recipe.text is None:
        raise RecipeError(f"{path}: no 'text' (the training text, relative to $EMBEDCACHE_DATA)")
    out_dir, name = Path(recipe.out_dir), recipe.name or direction
    extra = [Path(p) for p in settings.pop("extra_texts", ())]
    settings["extra_texts"] = tuple(str(p if p.is_absolute() else data_root() / p) for p in extra)
    text = Path(recipe.text)
    try:
        return CharLMConfig(
            text_path=str(text if text.is_absolute() else data_root() / text),
            out_path=str(out_dir / "smoke" / name if smoke else out_dir / name),
            is_forward=direction == "forward",
            **settings,
        )
    except ValueError as error:
        raise RecipeError(f"{path} [{direction}]: {error}") from error


def _recipe_only() -> set[str]:
    return {f.name for f in dataclasses.fields(CharLMRecipeSettings)}


def train_from_recipe(
    path: str | Path, overrides: Mapping[str, str] | Sequence[str] = (), progress: bool = True
) -> dict[str, CharLMResult]:
    """Train every LM of a recipe (see :func:`recipe_configs`), one after the other; results by direction."""
    configs, threads = recipe_configs(path, overrides)
    torch.set_num_threads(threads)
    return {("forward" if c.is_forward else "backward"): fit_char_lm(c, progress) for c in configs}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m embedcache.training.char_lm_recipe RECIPE [key=value ...]`` (``embedcache train`` too)."""
    parser = argparse.ArgumentParser(
        prog="python -m embedcache.training.char_lm_recipe", description="Train character LMs from a recipe."
    )
    parser.add_argument("recipe", type=Path, help="e.g. recipes/charlm.toml")
    parser.add_argument("overrides", nargs="*", help="key=value, forward.key=value, direction=, smoke=true")
    args = parser.parse_args(argv)
    try:  # a bad recipe is a usage error: a message, not a traceback
        configs, threads = recipe_configs(args.recipe, args.overrides)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    for config in configs:
        fit_char_lm(config)


if __name__ == "__main__":
    main()
