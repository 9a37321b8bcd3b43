"""``embedcache train``: run a recipe; tagger recipes here, character-LM recipes in the LM trainer."""

from __future__ import annotations

import argparse
import subprocess

from embedcache.cli.common import EXIT_OK, BadInput, add_max_memory_option, positive_int, show_progress

EPILOG = """\
examples:
  embedcache train recipes/wnut17_ner.toml
  embedcache train recipes/wnut17_ner.toml --set training.max_epochs=20 --set training.storage_mode=cpu
  embedcache train recipes/lines_upos.toml --smoke              # a tiny run in seconds
  embedcache train recipes/wnut17_ner.toml --nproc 2            # 2 ranks on this machine (torchrun)
  embedcache train recipes/charlm.toml --set direction=forward  # character LMs

A tagger recipe writes OUTPUT_DIR/best-model and OUTPUT_DIR/final-model (directories of JSON +
safetensors, loadable with 'embedcache predict --model'), results.json, results.txt, loss.tsv and
training.log. --smoke (same as --set smoke=true) trains on a few sentences for one epoch under
OUTPUT_DIR/smoke, with small random LMs and word vectors standing in for files that are missing.
--set takes dotted keys into the recipe's tables: data.root=..., model.hidden_size=64,
training.learning_rate=0.05, embeddings.0.path=...; values are read as TOML, else as text,
and none (or null) unsets a value (training.clip=none). The settings of each table are the fields of
its configuration (misspelt keys are named with the nearest valid one):
  [training]  embedcache.training.TrainingConfig   [model]  embedcache.models.tagger.TaggerConfig
  char LMs    embedcache.training.char_lm.CharLMConfig (+ text, out_dir, threads, name)
All of them, with defaults and types: recipes/README.md ("Settings").
"""


SUMMARY = "train a tagger or character LMs from a TOML recipe"
DESCRIPTION = "Train from a recipe (TOML): a tagger (e.g. recipes/wnut17_ner.toml) or character LMs."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the recipe file, e.g. recipes/wnut17_ner.toml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe setting (repeatable)",
    )
    parser.add_argument("--smoke", action="store_true", help="a seconds-long run on a tiny slice of the data")
    parser.add_argument(
        "--nproc",
        type=positive_int,
        metavar="N",
        help="train on N processes of this machine (DDP via torch.distributed.run; see 'Scaling out')",
    )
    add_max_memory_option(
        parser,
        "budget of the embedding cache in its storage mode (training.memory_budget_bytes); over it the run "
        "stops before embedding, or with --set training.on_over_budget=fallback moves to cpu, then disk",
    )


def run(args: argparse.Namespace) -> int:
    from embedcache.cache import CorruptCacheError
    from embedcache.cache.budget import OverBudgetError
    from embedcache.config_fields import read_toml
    from embedcache.recipes import load_tagger_recipe, recipe_kind, train_tagger
    from embedcache.training.checkpoint import CheckpointError
    from embedcache.training.distributed import is_main_process, launched_by_torchrun, torchrun_command

    progress = show_progress(args.quiet, args.progress)
    if recipe_kind(read_toml(args.recipe), args.recipe) == "charlm":
        if args.nproc is not None:
            raise BadInput(f"{args.recipe}: --nproc trains taggers only; character LMs train in one process")
        return _train_char_lms(args, progress)
    overrides = list(args.overrides)
    if args.max_memory is not None:
        overrides.append(f"training.memory_budget_bytes={args.max_memory}")
    recipe = load_tagger_recipe(args.recipe, overrides, smoke=args.smoke)  # bad input stops here, once
    if args.nproc is not None and args.nproc > 1 and not launched_by_torchrun():
        return subprocess.call(torchrun_command(args.nproc, _rank_arguments(args)))
    try:
        result = train_tagger(recipe, progress=progress)
    except OverBudgetError as error:  # raised before any LM work: a budget the user can raise
        raise BadInput(
            f"{args.recipe}: {error}; on the command line: a larger --max-memory, "
            "--set training.cache_dtype=float16 or --set training.on_over_budget=fallback"
        ) from error
    except (CheckpointError, CorruptCacheError) as error:  # a checkpoint that does not fit, a damaged cache
        raise BadInput(error) from error
    if not is_main_process():
        return EXIT_OK
    print(f"{recipe.name}: epochs run {result.epochs_run}, best dev score {result.best_dev_score:.4f}")
    if result.test is not None:
        print(f"test (best model):\n{result.test.table()}")
    print(f"models: {recipe.output_dir / 'best-model'}, {recipe.output_dir / 'final-model'}")
    return EXIT_OK


def _rank_arguments(args: argparse.Namespace) -> list[str]:
    """This command line for each rank: the same recipe and options, without ``--nproc``."""
    argv = ["train", args.recipe, *(f"--set={item}" for item in args.overrides)]
    argv += ["--smoke"] * args.smoke + ["--quiet"] * args.quiet + ["--debug"] * args.debug
    argv += [] if args.threads is None else [f"--threads={args.threads}"]
    return argv + ([] if args.max_memory is None else [f"--max-memory={args.max_memory}"])


def _train_char_lms(args: argparse.Namespace, progress: bool) -> int:
    from embedcache.training import char_lm_recipe  # only LM recipes need the LM trainer

    overrides = [*args.overrides, *(["smoke=true"] if args.smoke else [])]
    try:
        char_lm_recipe.recipe_configs(args.recipe, overrides)  # recipe errors are bad input, not crashes
    except (FileNotFoundError, ValueError) as error:
        raise BadInput(error) from error
    for direction, result in char_lm_recipe.train_from_recipe(args.recipe, overrides, progress).items():
        print(
            f"{direction} LM: {result.validation_bits_per_char:.3f} bits/char on validation; "
            f"{result.out_path}.{{safetensors,json,pt}}"
        )
    return EXIT_OK
