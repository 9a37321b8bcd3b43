"""``embedcache info``: what a model directory holds, read from its JSON alone (no weights are loaded)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from embedcache.cli.common import EXIT_OK, BadInput, resolve_model

EPILOG = """\
examples:
  embedcache info out/wnut17-ner/best-model
  embedcache info en-upos                 # the bundled model
  embedcache info MODEL --json            # config and model card as one JSON object

Prints the format version, the tags, the tagger's hyper-parameters, the embedders (character LMs with
their direction, size and options; word vectors with their vocabulary size) and the model card
(training data, license and citation, recipe, scores), without loading any weights.
"""


SUMMARY = "show a model's card, tags, embedders and hyper-parameters"
DESCRIPTION = "Show what a model directory holds: model card and configuration summary."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model directory or a bundled model name")
    parser.add_argument("--json", action="store_true", help="print config summary and card as JSON")


def run(args: argparse.Namespace) -> int:
    from embedcache.models.serialization import read_config

    directory = resolve_model(args.model)
    try:
        config = read_config(directory)
    except FileNotFoundError as error:
        raise BadInput(error) from error
    summary = model_summary(directory, config)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=1))
        return EXIT_OK
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
    return EXIT_OK


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
