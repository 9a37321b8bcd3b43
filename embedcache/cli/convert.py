"""``embedcache convert``: a trained Flair ``SequenceTagger`` file → an embedcache model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from embedcache.cli.common import EXIT_OK, BadInput, note

EPILOG = """\
examples:
  embedcache convert flair-ner/final-model.pt out/ner-from-flair
  embedcache predict --model out/ner-from-flair posts.txt
  embedcache convert untrusted.pt out/model --trust-pickle   # only for files whose origin you trust

The converted model predicts what Flair predicts (same tags; Flair's confidences and span reading) and runs
on embedcache's fast path. Its model card records the source file, its sha256 and the conversion date.

Safety: a Flair .pt file is a pickle. It is read with an allow-list (tensors, plain containers, Flair's
Dictionary, torch's version string), which runs nothing from the file. A file that needs more is refused;
--trust-pickle then unpickles it in full, which RUNS ANY CODE IT CONTAINS: use it only for files you trust.
"""

SUMMARY = "convert a trained Flair SequenceTagger (.pt) into an embedcache model"
DESCRIPTION = (
    "Convert a Flair SequenceTagger saved with SequenceTagger.save() into an embedcache model directory "
    "(safetensors + JSON). Supported: CRF and softmax taggers, BIOES/BIO/plain tags, 1+ BiLSTM layers or "
    "none, with FlairEmbeddings and WordEmbeddings (also inside StackedEmbeddings)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flair_model", type=Path, help="the Flair model file (.pt)")
    parser.add_argument("output", type=Path, help="the embedcache model directory to write")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="when the allow-list refuses the file, unpickle it fully: runs its code (trusted files only)",
    )


def run(args: argparse.Namespace) -> int:
    from embedcache.embeddings.checkpoints import UnsafeCheckpointError
    from embedcache.models.flair_conversion import FlairConversionError, convert_flair_tagger_file

    if not args.flair_model.is_file():
        raise BadInput(f"{args.flair_model}: no such file")
    output = _checked_model_directory(args.output)
    try:
        tagger = convert_flair_tagger_file(args.flair_model, output, trust_pickle=args.trust_pickle)
    except (UnsafeCheckpointError, FlairConversionError) as error:
        raise BadInput(error) from error
    note(
        f"{output}: {tagger.tag_type} tagger, {len(tagger.tags)} tags ({tagger.tags.scheme}), "
        f"{len(tagger.embeddings.embedders)} embedders, converted from {args.flair_model}",
        args.quiet,
    )
    return EXIT_OK


def _checked_model_directory(output: Path) -> Path:
    """The output: a new directory, or an embedcache model directory to replace; never another folder."""
    if output.is_file():
        raise BadInput(f"{output}: is a file; the output is a model directory")
    if output.is_dir() and any(output.iterdir()) and not (output / "config.json").is_file():
        raise BadInput(f"{output}: exists and is not an embedcache model; give a new directory")
    return output
