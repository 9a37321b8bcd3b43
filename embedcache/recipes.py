"""Tagger recipes: one TOML file says which corpus, embeddings, network and training make a model.

    embedcache train recipes/wnut17_ner.toml --set training.max_epochs=20
    embedcache train recipes/lines_upos.toml --smoke

The tables, read top to bottom like the procedure they describe:

- ``[data]``: ``dataset`` (``wnut17``, ``ud_english_lines`` or ``column``), ``root`` (default
  ``$EMBEDCACHE_DATA/<dataset>``), ``tag_type``, ``tag_scheme`` (``BIO``, ``BIOES`` or ``plain``); for
  ``column`` also ``train``, ``dev``, ``test`` (file names in ``root``) and ``tag_column``. ``license`` and
  ``citation`` are copied into the model card.
- ``[[embeddings]]``, concatenated in order: ``type = "charlm"`` with ``path`` (an embedcache LM without
  suffix, or a Flair ``.pt``), ``direction`` and the options of :class:`CharLMEmbeddings`; or
  ``type = "words"`` with ``path`` (word2vec, GloVe or fastText vectors).
- ``[model]``: the fields of :class:`TaggerConfig`; ``[training]``: the fields of :class:`TrainingConfig`.
- ``[smoke]``: how ``--smoke`` shrinks the run (:class:`SmokeSettings`). A smoke run writes under
  ``<output_dir>/smoke`` and uses small random LMs and word vectors in place of files that are missing.

Paths are relative to the working directory. ``--set key.path=value`` overrides any setting (list items by
index: ``embeddings.0.path=...``); values are read as TOML (``3``, ``true``, ``"x"``), else as strings, and
``none`` or ``null`` unsets (``training.clip=none``). The keys of ``[model]``, ``[training]`` and ``[smoke]``
are the fields of :class:`TaggerConfig`, :class:`TrainingConfig` and :class:`SmokeSettings`, checked with
:mod:`embedcache.config_fields`: a misspelt key names its file, line and the nearest valid key.
A recipe of ``kind = "charlm"`` (or with ``[forward]``/``[backward]`` tables) trains character LMs
(:mod:`embedcache.training.char_lm_recipe`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import string
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from flair.data import Dictionary
from flair.models import LanguageModel
from gensim.models import KeyedVectors

from embedcache.atomic import AtomicFile
from embedcache.config_fields import (
    Override,
    RecipeError,
    Table,
    apply_override,
    check_known,
    check_settings,
    field_defaults,
    parse_override,
    read_toml,
    settings_lines,
)
from embedcache.data import datasets
from embedcache.data.corpus import Corpus
from embedcache.embeddings import CharLMEmbeddings, TokenEmbedder, WordEmbeddings
from embedcache.embeddings.train_words import WordVectorConfig
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import TagDictionary
from embedcache.models.tagger import TaggerConfig
from embedcache.training import Trainer, TrainingConfig, TrainingResult
from embedcache.training.char_lm import CharLMConfig
from embedcache.training.char_lm_recipe import DERIVED_FIELDS, CharLMRecipeSettings
from embedcache.training.distributed import is_main_process

log = logging.getLogger(__name__)

RecipeKind = Literal["tagger", "charlm"]
_TABLES = ("data", "embeddings", "model", "training", "smoke")
_TOP_LEVEL_KEYS = {"kind", "name", "description", "output_dir", *_TABLES}
_DATA_KEYS = {"dataset", "root", "tag_type", "tag_scheme", "train", "dev", "test", "tag_column", "license",
              "citation"}  # fmt: skip
_CHARLM_OPTIONS = {"chars_per_chunk", "with_whitespace", "tokenized_lm", "is_lower", "fine_tune", "name"}
_WORDS_OPTIONS = {"format", "lowercase_fallback", "name"}
# [training] takes every field of TrainingConfig but progress, which is the command line's (--quiet).
_NOT_IN_RECIPES = ("progress",)
__all__ = [
    "RecipeError", "SmokeSettings", "TaggerRecipe", "load_corpus", "load_tagger_recipe", "random_char_lm",
    "random_word_vectors", "recipe_kind", "settings_reference", "train_tagger",
]  # fmt: skip


@dataclass(frozen=True)
class SmokeSettings:
    """How ``--smoke`` shrinks a run so that it finishes in seconds, whatever the recipe says."""

    train_sentences: int = 40
    eval_sentences: int = 20
    max_epochs: int = 1
    hidden_size: int = 16  # the tagger's LSTM
    lm_hidden_size: int = 16  # random LMs standing in for missing LM files
    word_dim: int = 16  # random word vectors standing in for a missing vector file


@dataclass(frozen=True)
class TaggerRecipe:
    """A checked tagger recipe, overrides applied; :func:`train_tagger` runs it."""

    source: Path
    name: str
    output_dir: Path
    data: dict[str, Any]
    embeddings: list[dict[str, Any]]
    model: dict[str, Any]
    training: dict[str, Any]
    smoke: SmokeSettings | None = None
    overrides: tuple[str, ...] = field(default=())


def recipe_kind(recipe: dict[str, Any], source: str | Path) -> RecipeKind:
    """``kind`` from the recipe; without one, ``charlm`` when it has ``[forward]``/``[backward]`` tables."""
    kind = recipe.get("kind")
    if kind is None:
        return "charlm" if "forward" in recipe or "backward" in recipe else "tagger"
    if kind not in ("tagger", "charlm"):
        raise RecipeError(f"{source}: kind = {kind!r}; a recipe is of kind 'tagger' or 'charlm'")
    return kind


def load_tagger_recipe(path: str | Path, overrides: Sequence[str] = (), smoke: bool = False) -> TaggerRecipe:
    """Read, override and check a tagger recipe; ``--set smoke=true`` is the same as ``smoke=True``.

    Raises:
        RecipeError: anything wrong, naming the recipe and the table or key (with its line).
    """
    source = Path(path)
    recipe = read_toml(source)
    assignments = tuple(parse_override(item) for item in overrides)
    for assignment in assignments:
        if assignment.key == "smoke":  # the switch, not the [smoke] table
            smoke = assignment.value is True
        else:
            apply_override(recipe, assignment)
    if recipe_kind(recipe, source) != "tagger":
        raise RecipeError(f"{source}: not a tagger recipe (kind = {recipe.get('kind')!r})")
    check_known(Table(source, None, assignments), recipe, _TOP_LEVEL_KEYS)
    tables = {name: _table(source, recipe, name) for name in ("data", "model", "training", "smoke")}
    check_known(Table(source, "data", assignments), tables["data"], _DATA_KEYS)
    for key in ("dataset", "tag_type"):
        if key not in tables["data"]:
            raise RecipeError(f"{source}: [data] needs {key!r}")
    model = check_settings(TaggerConfig, Table(source, "model", assignments), tables["model"], ("tag_type",))
    training = check_settings(
        TrainingConfig, Table(source, "training", assignments), tables["training"], _NOT_IN_RECIPES
    )
    try:
        TrainingConfig(**training)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{source}: [training] {error}") from error
    smoke_settings = check_settings(SmokeSettings, Table(source, "smoke", assignments), tables["smoke"])
    name = str(recipe.get("name", source.stem))
    output_dir = Path(recipe.get("output_dir", Path("out") / name))
    return TaggerRecipe(
        source=source,
        name=name,
        output_dir=output_dir / "smoke" if smoke else output_dir,
        data=tables["data"],
        embeddings=_check_embeddings(source, recipe.get("embeddings"), smoke, assignments),
        model=model,
        training=training,
        smoke=SmokeSettings(**smoke_settings) if smoke else None,
        overrides=tuple(overrides),
    )


def _table(source: Path, recipe: dict[str, Any], name: str) -> dict[str, Any]:
    table = recipe.get(name, {})
    if not isinstance(table, dict):
        raise RecipeError(f"{source}: {name} must be a table ([{name}]), got {table!r}")
    return table


def train_tagger(recipe: TaggerRecipe, progress: bool = True) -> TrainingResult:
    """Load the data, build the embeddings and the tagger, train, and put the scores in the model cards.

    Writes ``output_dir/best-model`` and ``output_dir/final-model`` (see :meth:`Trainer.train`).
    """
    corpus = load_corpus(recipe)
    tag_type, scheme = recipe.data["tag_type"], recipe.data.get("tag_scheme")
    try:
        # Tags of every split: a dev or test label that train lacks would stop the trainer (and in smoke
        # runs, with a few sentences per split, that is the rule rather than the exception).
        tags = TagDictionary.from_sentences(
            [s.tags or [] for s in corpus.train + corpus.dev + corpus.test], scheme
        )
    except ValueError as error:
        raise RecipeError(f"{recipe.source}: [data] tag_scheme = {scheme!r}: {error}") from error
    model = {**recipe.model, **({"hidden_size": recipe.smoke.hidden_size} if recipe.smoke else {})}
    training = {**recipe.training, **({"max_epochs": recipe.smoke.max_epochs} if recipe.smoke else {})}
    seed = training.get("seed", field_defaults(TrainingConfig)["seed"])
    # The trainer seeds shuffling and dropout; the initial weights are drawn here, from the same seed.
    with _seeded(seed):
        built = [
            _embedder(recipe, index, entry, corpus, seed) for index, entry in enumerate(recipe.embeddings)
        ]
        try:
            tagger = SequenceTagger([embedder for embedder, _ in built], tags, tag_type, **model)
            trainer = Trainer(tagger, corpus)
        except ValueError as error:
            raise RecipeError(f"{recipe.source}: {error}") from error
    stand_ins = [stand_in for _, stand_in in built]
    tagger.model_card = _model_card(recipe, corpus, tags, stand_ins, model, training)
    result = trainer.train(recipe.output_dir, progress=progress, **training)
    if is_main_process():  # under torchrun, rank 0 alone writes the models and their cards
        _record_scores(recipe.output_dir, result)
    return result


def load_corpus(recipe: TaggerRecipe) -> Corpus:
    """The recipe's corpus (cut to the smoke sizes in a smoke run)."""
    data, source = recipe.data, recipe.source
    dataset, root = data["dataset"], data.get("root")
    try:
        if dataset == "wnut17":
            corpus = datasets.WNUT17(root)
        elif dataset == "ud_english_lines":
            corpus = datasets.UD_English_LinES(root)
        elif dataset == "column":
            if root is None or "train" not in data:
                raise RecipeError(f"{source}: [data] dataset = 'column' needs root and train")
            corpus = datasets.ColumnCorpus(root, data["train"], data.get("dev"), data.get("test"),
                                           data.get("tag_column", 1))  # fmt: skip
        else:
            raise RecipeError(
                f"{source}: [data] dataset = {dataset!r}; choose 'wnut17', 'ud_english_lines' or 'column'"
            )
    except FileNotFoundError as error:
        missing = f"{error.filename}: {error.strerror}" if error.filename else str(error)
        raise RecipeError(f"{source}: [data] {missing}") from error
    if recipe.smoke is not None:
        corpus = corpus.subset(recipe.smoke.train_sentences, recipe.smoke.eval_sentences)
    return corpus


def _check_embeddings(
    source: Path, embeddings: object, smoke: bool, overrides: tuple[Override, ...]
) -> list[dict[str, Any]]:
    """The ``[[embeddings]]`` entries, checked before any data is read: kinds, options, files."""
    if not isinstance(embeddings, list) or not embeddings or not all(isinstance(e, dict) for e in embeddings):
        raise RecipeError(f"{source}: needs at least one [[embeddings]] table")
    for index, entry in enumerate(embeddings):
        where, kind = f"embeddings[{index}]", entry.get("type")
        if kind not in ("charlm", "words") or not entry.get("path"):
            raise RecipeError(f"{source}: {where} needs type = 'charlm' or 'words' and a path")
        known = _CHARLM_OPTIONS | {"direction"} if kind == "charlm" else _WORDS_OPTIONS
        options = {k: v for k, v in entry.items() if k not in ("type", "path")}
        check_known(Table(source, "embeddings", overrides), options, known)
        if not smoke and not _embedding_file_exists(entry):
            hint = (
                "train it first (embedcache train recipes/charlm.toml)"
                if kind == "charlm"
                else "fix the path"
            )
            raise RecipeError(f"{source}: {where}: {entry['path']} not found; {hint}, or check with --smoke")
    return embeddings


def _embedding_file_exists(entry: dict[str, Any]) -> bool:
    path = Path(str(entry["path"]))
    return path.is_file() or (entry["type"] == "charlm" and path.with_suffix(".safetensors").is_file())


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Every draw from torch's CPU generator inside comes from ``seed``; its state is restored afterwards."""
    with torch.random.fork_rng(devices=[]):  # models are built on the CPU (and moved later)
        torch.random.default_generator.manual_seed(seed)
        yield


def _stand_in_seed(seed: int, index: int) -> int:
    """The seed of the random stand-in for ``embeddings[index]`` in a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _embedder(
    recipe: TaggerRecipe, index: int, entry: dict[str, Any], corpus: Corpus, seed: int
) -> tuple[TokenEmbedder, bool]:
    """One embedder of the recipe, and whether it is a random stand-in for a missing file (smoke runs)."""
    path, is_lm = Path(str(entry["path"])), entry["type"] == "charlm"
    options = {k: v for k, v in entry.items() if k not in ("type", "path", "direction")}
    if _embedding_file_exists(entry):
        try:
            return (CharLMEmbeddings(path, **options) if is_lm else WordEmbeddings(path, **options)), False
        except (OSError, ValueError) as error:
            raise RecipeError(f"{recipe.source}: embeddings[{index}]: cannot load {path}: {error}") from error
    if recipe.smoke is None:  # load_tagger_recipe stops a full run earlier; this is a recipe built by hand
        raise RecipeError(f"{recipe.source}: embeddings[{index}]: {path} not found")
    log.warning(
        "embeddings[%d]: %s not found; a random stand-in takes its place in this smoke run", index, path
    )
    if is_lm:
        is_forward = entry.get("direction", "forward") == "forward"
        lm = random_char_lm(is_forward, recipe.smoke.lm_hidden_size, seed=_stand_in_seed(seed, index))
        options.setdefault("name", f"random-{'forward' if is_forward else 'backward'}-lm")
        return CharLMEmbeddings(lm, **options), True
    vocabulary = {token.lower() for sentence in corpus.train for token in sentence.tokens}
    vectors = random_word_vectors(vocabulary, recipe.smoke.word_dim, seed=_stand_in_seed(seed, index))
    return WordEmbeddings(vectors, name=options.get("name", "random-words")), True


def random_char_lm(is_forward: bool, hidden_size: int, seed: int = 0) -> LanguageModel:
    """A random-initialised character LM over printable ASCII, reproducible from ``seed`` (a stand-in)."""
    dictionary = Dictionary()  # <unk> first, as in Flair's LMs
    for character in string.printable:
        dictionary.add_item(character)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LanguageModel(dictionary, is_forward, hidden_size, nlayers=1, embedding_size=16).eval()


def random_word_vectors(vocabulary: set[str], dim: int, seed: int = 0) -> KeyedVectors:
    """Random ``dim``-d vectors for ``vocabulary``, reproducible from ``seed`` (a stand-in)."""
    words = sorted(vocabulary)
    vectors = KeyedVectors(dim)
    vectors.add_vectors(words, np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32))
    return vectors


def _model_card(
    recipe: TaggerRecipe,
    corpus: Corpus,
    tags: TagDictionary,
    stand_ins: list[bool],
    model: dict[str, Any],
    training: dict[str, Any],
) -> dict[str, Any]:
    """What the model is, where its data comes from (with license and citation) and how it was made."""
    from embedcache.version import __version__

    return {
        "name": recipe.name,
        "task": {"tag_type": recipe.data["tag_type"], "scheme": tags.scheme, "tags": len(tags)},
        "data": {
            "dataset": recipe.data["dataset"],
            "sentences": {"train": len(corpus.train), "dev": len(corpus.dev), "test": len(corpus.test)},
            "license": recipe.data.get("license"),
            "citation": recipe.data.get("citation"),
        },
        "embeddings": [
            {"type": entry["type"], "path": entry["path"], "random_stand_in": stand_in}
            for entry, stand_in in zip(recipe.embeddings, stand_ins, strict=True)
        ],
        "model": model,
        "training": training,
        "smoke": asdict(recipe.smoke) if recipe.smoke else None,
        "recipe": str(recipe.source),
        "overrides": list(recipe.overrides),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "embedcache_version": __version__,
    }


def _record_scores(output_dir: Path, result: TrainingResult) -> None:
    """Add the run's scores to the model cards that the trainer wrote (each file replaced atomically)."""
    scores = {
        "best_dev_score": result.best_dev_score,
        "test_of_best_model": result.test.to_json() if result.test else None,
        "epochs": result.epochs_run,
    }
    for model in ("best-model", "final-model"):
        card_path = output_dir / model / "model_card.json"
        if card_path.is_file():
            card = json.loads(card_path.read_text(encoding="utf-8"))
            with AtomicFile(card_path) as out:
                out.stream.write(json.dumps({**card, "scores": scores}, ensure_ascii=False, indent=1))
                out.commit()


def settings_reference() -> str:
    """Every setting of every recipe table, with default and type, from the configurations themselves.

    ``recipes/README.md`` ("Settings") holds this text; a test keeps the two the same.
    """
    tables = [
        ("Tagger `[training]` (`embedcache.training.TrainingConfig`)", TrainingConfig, _NOT_IN_RECIPES),
        ("Tagger `[model]` (`embedcache.models.tagger.TaggerConfig`)", TaggerConfig, ("tag_type",)),
        ("Tagger `[smoke]` (`embedcache.recipes.SmokeSettings`)", SmokeSettings, ()),
        ("Char-LM recipes (`embedcache.training.char_lm.CharLMConfig`)", CharLMConfig, DERIVED_FIELDS),
        ("Char-LM recipes, the recipe's own keys (`CharLMRecipeSettings`)", CharLMRecipeSettings, ()),
        ("Word vectors, one `--option` each (`embedcache.embeddings.train_words.WordVectorConfig`)",
         WordVectorConfig, ()),
    ]  # fmt: skip
    blocks = [
        f"{title}:\n\n```toml\n" + "\n".join(settings_lines(config, exclude)) + "\n```"
        for title, config, exclude in tables
    ]
    return "\n\n".join(blocks) + "\n"
