"""``embedcache info``: what model directories hold, read from their JSON alone; with ``--memory`` the bytes
their weights take together (loaded on the CPU as one pipeline, each distinct LM counted once)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedcache.cli.common import EXIT_OK, BadInput, describe_weight_bytes, load_pipeline, resolve_model

if TYPE_CHECKING:
    from embedcache.inference.tagger_group import WeightBytes

EPILOG = """\
examples:
  embedcache info out/wnut17-ner/best-model
  embedcache info en-upos                 # the bundled model
  embedcache info MODEL --json            # config and model card as one JSON object
  embedcache info en-upos NER_DIR --memory   # weight bytes: shared LMs once, then each tagger

Prints the format version, the tags, the tagger's hyper-parameters, the embedders (character LMs with
their direction, size and options; word vectors with their vocabulary size) and the model card
(training data, license and citation, recipe, scores), without loading any weights. --memory loads
the models on the CPU, as 'embedcache predict --model A --model B' would, and reports the bytes of the
shared embedders (each distinct LM once), of each tagger's own layers, the total, and what the models
take loaded one by one. --json with several models: {"models": [...]} (and "weights" with --memory).
"""


SUMMARY = "show a model's card, tags, embedders and hyper-parameters"
DESCRIPTION = "Show what a model directory holds: model card and configuration summary."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="a model directory or a bundled model name"
    )
    parser.add_argument("--json", action="store_true", help="print config summary and card as JSON")
    parser.add_argument(
        "--memory", action="store_true", help="load the models and report their weight bytes (see below)"
    )


def run(args: argparse.Namespace) -> int:
    described = [_describe(model) for model in args.models]
    weights = _weight_bytes(args.models) if args.memory else None
    if args.json:
        summaries = [summary for _, _, summary in described]
        shown: dict[str, Any] = summaries[0] if len(summaries) == 1 else {"models": summaries}
        if weights is not None:
            shown["weights"] = asdict(weights) | {"total": weights.total}
        print(json.dumps(shown, ensure_ascii=False, indent=1))
        return EXIT_OK
    for index, (directory, config, summary) in enumerate(described):
        print("" if index == 0 else "\n", end="")
        _print_summary(directory, config, summary)
    if weights is not None:
        print("weights (in memory)")
        print("\n".join(f"  {line}" for line in describe_weight_bytes(weights)))
    return EXIT_OK


def _describe(model: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A model's directory, its config and its summary."""
    from embedcache.models.serialization import read_config

    directory = resolve_model(model)
    try:
        config = read_config(directory)
    except FileNotFoundError as error:
        raise BadInput(error) from error
    return directory, config, model_summary(directory, config)


def _weight_bytes(models: list[str]) -> WeightBytes:
    import torch

    return load_pipeline(models, torch.device("cpu")).weight_nbytes()


def _print_summary(directory: Path, config: dict[str, Any], summary: dict[str, Any]) -> None:
    tags = summary["tags"]
    print(f"model       {directory}")
    saved_by = config.get("embedcache_version")
    print(f"format      {config['format']} v{config['format_version']} (saved by embedcache {saved_by})")
    print(
        f"tags        {summary['tag_type']}, {tags['scheme']}, {len(tags['tags'])}: {' '.join(tags['tags'])}"
    )
    print("tagger      " + " ".join(f"{k}={v}" for k, v in summary["tagger"].items()))
    print("embeddings")
    for index, entry in enumerate(summary["embeddings"]):
        print(f"  {index}  " + " ".join(f"{k}={v}" for k, v in entry.items()))
    card = summary["model_card"]
    print("model card" + ("" if card else "  (none)"))
    for key, value in card.items():
        print(
            f"  {key}: {json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value}"
        )


def model_summary(directory: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Tags, hyper-parameters, embedders and model card of a model directory, from its JSON files."""
    from embedcache.models.serialization import ModelFormatError, read_model_card

    try:
        tagger = dict(config["tagger"])
        return {
            "tag_type": tagger.pop("tag_type"),
            "tags": {"scheme": config["tags"]["scheme"], "tags": list(config["tags"]["tags"])},
            "tagger": tagger,
            "embeddings": [_embedder_summary(directory, entry) for entry in config["embeddings"]],
            "model_card": read_model_card(directory),
        }
    except ModelFormatError:
        raise
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise ModelFormatError(f"{directory}: damaged or incomplete model: {error!r}") from error


def _embedder_summary(directory: Path, entry: dict[str, Any]) -> dict[str, Any]:
    if entry["type"] == "charlm":
        lm = _read_json(directory / f"{entry['file']}.json")
        options = {k: entry[k] for k in ("with_whitespace", "tokenized_lm", "is_lower", "chars_per_chunk")}
        direction = "forward" if lm["is_forward_lm"] else "backward"
        return {"type": "charlm", "direction": direction, "hidden_size": lm["hidden_size"],
                "layers": lm["nlayers"], "characters": len(lm["characters"]), "name": entry.get("name"),
                **options}  # fmt: skip
    params = entry["params"]
    return {"type": entry["type"], "words": len(params["vocabulary"]), "dim": params["embedding_length"],
            "subword": params["subword"] is not None, "name": params.get("name")}  # fmt: skip


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
