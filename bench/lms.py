"""The suites' character LMs, written as files both libraries read, so a fresh clone needs nothing trained.

:func:`write_char_lms` writes, for each direction, the layout the LM trainer writes to ``out/charlm``::

    FOLDER/forward.safetensors + forward.json   embedcache's LM files: ec.CharLMEmbeddings(FOLDER / "forward")
    FOLDER/forward.pt                           Flair's: FlairEmbeddings(str(FOLDER / "forward.pt"))

with the same weights in both. ``weights="random"``: the shape of :data:`bench.specs.RECIPE_LM` over the
recipe's character dictionary (that of the bundled model's LMs), seeded per direction
(:data:`bench.specs.LM_SEEDS`): for figures that depend on sizes only (time, bytes). ``weights="bundled"``:
the trained LMs of the bundled ``en-upos`` model (``recipes/charlm.toml``, 23 minutes per direction on a CPU
core): for figures that depend on the weights (F1, accuracy).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from flair.data import Dictionary
from flair.models import LanguageModel
from safetensors.torch import load_file

from bench.specs import LM_SEEDS, RECIPE_LM, CharLMSpec
from embedcache.embeddings.language_model import save_language_model
from embedcache.models.catalog import DEFAULT_MODEL, bundled_model_path

LMWeights = Literal["random", "bundled"]
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class CharLMFiles:
    """A folder of forward and backward LMs in both libraries' formats (see the module docstring)."""

    folder: Path
    weights: LMWeights

    def embedcache_path(self, direction: str) -> Path:
        """The path ``ec.CharLMEmbeddings`` takes (no suffix: the ``.safetensors`` and ``.json`` beside)."""
        return self.folder / direction

    def flair_path(self, direction: str) -> str:
        """The ``.pt`` file Flair's ``FlairEmbeddings`` takes."""
        return str(self.folder / f"{direction}.pt")


def describe(weights: LMWeights, spec: CharLMSpec = RECIPE_LM) -> str:
    """A Markdown phrase for a suite's record: which LMs it ran, and where they came from."""
    both = (
        "written by `bench.lms` into a temporary folder `LMS` for both libraries (Flair reads "
        "`LMS/forward.pt`, embedcache `LMS/forward.safetensors` + `.json`, and so for `backward`: "
    )
    if weights == "bundled":
        hidden = bundled_lm_hidden_size()
        return (
            f"the trained char LMs of the bundled `{DEFAULT_MODEL}` model (forward + backward, hidden "
            f"{hidden}; its model card says how they were trained), {both}the same weights)"
        )
    seeds = ", ".join(f"{direction} {seed}" for direction, seed in LM_SEEDS.items())
    return (
        f"random char LMs of the recipe's shape (`recipes/charlm.toml`: forward + backward, hidden "
        f"{spec.hidden_size}, character embedding {spec.embedding_size}, the bundled model's character "
        f"dictionary; seeds {seeds}), {both}the same weights): the time and the bytes depend on the LMs' "
        "sizes, not on their weights"
    )


def bundled_lm_hidden_size() -> int:
    """The hidden size of the bundled model's char LMs, as their configuration says."""
    config = json.loads(_bundled_lm_prefixes()["forward"].with_suffix(".json").read_text(encoding="utf-8"))
    return int(config["hidden_size"])


def _bundled_lm_prefixes() -> dict[str, Path]:
    """Direction → the bundled model's LM files (without suffix), read from their own configurations."""
    folder = bundled_model_path(DEFAULT_MODEL)
    prefixes = {}
    for config in sorted(folder.glob("embedding-*.json")):
        forward = json.loads(config.read_text(encoding="utf-8"))["is_forward_lm"]
        prefixes["forward" if forward else "backward"] = config.with_suffix("")
    if sorted(prefixes) != sorted(DIRECTIONS):
        raise FileNotFoundError(
            f"{folder}: expected a forward and a backward char LM, found {sorted(prefixes)}"
        )
    return prefixes


def _flair_dictionary(config: dict) -> Dictionary:
    """Flair's ``Dictionary`` of an embedcache LM configuration, ids as in the file (``<unk>`` first)."""
    dictionary = Dictionary(add_unk=False)
    for character in config["characters"]:
        dictionary.add_item(character)
    dictionary.add_unk = bool(config.get("add_unk", True))  # unknown characters read as id 0, Flair's rule
    return dictionary


def _flair_lm_from_files(prefix: Path) -> LanguageModel:
    """Flair's ``LanguageModel`` (no decoder: embeddings never decode) holding an embedcache LM's weights."""
    config = json.loads(prefix.with_suffix(".json").read_text(encoding="utf-8"))
    lm = LanguageModel(
        _flair_dictionary(config), config["is_forward_lm"], config["hidden_size"], config["nlayers"],
        config["embedding_size"], config["nout"], config["document_delimiter"], float(config["dropout"]),
        config["recurrent_type"], has_decoder=False,
    )  # fmt: skip
    lm.load_state_dict(load_file(str(prefix.with_suffix(".safetensors"))), strict=True)
    return lm.eval()


def random_recipe_lm(direction: str, spec: CharLMSpec = RECIPE_LM) -> LanguageModel:
    """A Flair LM of ``spec``'s shape over the recipe's dictionary, seeded by direction, in eval mode."""
    config = json.loads(_bundled_lm_prefixes()["forward"].with_suffix(".json").read_text(encoding="utf-8"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(LM_SEEDS[direction])
        lm = LanguageModel(
            _flair_dictionary(config), direction == "forward", spec.hidden_size, spec.nlayers,
            spec.embedding_size, dropout=0.0, has_decoder=False,
        )  # fmt: skip
    return lm.eval()


def write_char_lms(folder: Path, weights: LMWeights) -> CharLMFiles:
    """Write the forward and backward LMs into ``folder`` in both formats; see the module docstring."""
    folder.mkdir(parents=True, exist_ok=True)
    bundled = _bundled_lm_prefixes() if weights == "bundled" else {}
    for direction in DIRECTIONS:
        target = folder / direction
        if weights == "bundled":
            for suffix in (".json", ".safetensors"):
                shutil.copyfile(bundled[direction].with_suffix(suffix), target.with_suffix(suffix))
            lm = _flair_lm_from_files(bundled[direction])
        else:
            lm = random_recipe_lm(direction)
            save_language_model(lm, target)
        lm.save(target.with_suffix(".pt"))
    return CharLMFiles(folder, weights)
