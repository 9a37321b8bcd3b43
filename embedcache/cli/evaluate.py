"""``embedcache evaluate``: tag a gold-labelled file and score it (span F1 for BIO/BIOES, else accuracy)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Literal

from embedcache.atomic import AtomicFile
from embedcache.cli.common import (
    EXIT_OK,
    BadInput,
    add_runtime_options,
    checked_output,
    load_model,
    resolve_device,
    resolve_model,
    show_progress,
    stdin_bytes,
)
from embedcache.cli.feedback import Feedback
from embedcache.data.readers import STDIN, guess_format, read_documents
from embedcache.data.sentence import TaggedSentence

EPILOG = """\
examples:
  embedcache evaluate out/wnut17-ner/best-model $EMBEDCACHE_DATA/wnut17/test.conll
  embedcache evaluate out/lines-upos/best-model test.conllu --output scores.json
  embedcache evaluate MODEL dev.conll --json | jq .micro_f1

Gold tags: the last column of a CoNLL column file, UPOS of a CoNLL-U file. Span tasks are scored on
BIO spans with seqeval (micro/macro F1, per type), plain tags by accuracy, per-tag precision/recall/F1
and their 10 most frequent confusions. The table goes to stdout;
--output also writes the scores as JSON (atomically), --json prints the JSON instead of the table.
A progress bar (sentences, words/s) shows on stderr when it is a terminal or with --progress, and a
one-line summary (sentences, tokens, words/s) at the end; --quiet: neither.
"""


SUMMARY = "score a model on gold-labelled CoNLL or CoNLL-U data"
DESCRIPTION = "Tag a gold-labelled file with a model and print precision, recall, F1 and accuracy."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model directory or a bundled model name")
    parser.add_argument("data", help="the gold data ('-': stdin)")
    parser.add_argument(
        "--format", choices=("auto", "conll", "conllu"), default="auto", help="auto: by suffix"
    )
    parser.add_argument("-o", "--output", type=Path, help="also write the scores here as JSON")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")
    add_runtime_options(parser, batch_size=64)


def run(args: argparse.Namespace) -> int:
    from embedcache.inference.predict import predict
    from embedcache.models.backends import running_backend
    from embedcache.training.evaluation import evaluate_tags

    output = checked_output(args.output, [args.data]) if args.output is not None else None
    tagger = load_model(args.model, resolve_device(args.device), args.backend, args.int8, args.onnx_dir)
    sentences = _gold_sentences(args.data, args.format)
    with Feedback("evaluate", bar=show_progress(args.quiet, args.progress), quiet=args.quiet) as feedback:
        predictions = predict(
            tagger, sentences, args.batch_size, args.storage_mode, on_batch=feedback.batch_tagged
        )
    try:
        scores = evaluate_tags(
            [s.tags or [] for s in sentences], [p.tags for p in predictions], tagger.tags.scheme
        )
    except ValueError as error:  # gold tags that do not fit the model's scheme (POS data, NER model)
        raise BadInput(
            f"{args.data}: gold tags do not fit the model's {tagger.tags.scheme} tags: {error}"
        ) from error
    backend = running_backend(tagger)
    report = {"model": str(resolve_model(args.model)), "data": args.data, "scheme": tagger.tags.scheme,
              "backend": backend, **scores.to_json()}  # fmt: skip
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if output is not None:
        with AtomicFile(output) as out:
            out.stream.write(text + "\n")
            out.commit()
    print(text if args.json else f"{args.data}: {scores.table()}\nbackend: {backend}")
    feedback.summarize(None if output is None else str(output))
    return EXIT_OK


def _gold_sentences(data: str, format: str) -> list[TaggedSentence]:
    input_format = guess_format(data) if format == "auto" else format
    if input_format not in ("conll", "conllu"):
        raise BadInput(
            f"{data}: cannot tell the format from the name; pass --format conll or --format conllu"
        )
    stdin = stdin_bytes() if data == STDIN else None
    gold_format: Literal["conll", "conllu"] = "conll" if input_format == "conll" else "conllu"
    sentences = [document.sentence for document in read_documents(data, gold_format, stdin=stdin)]
    for sentence in sentences:
        if sentence is None or sentence.tags is None:
            raise BadInput(f"{data}: no gold tag column (one token per line needs token<TAB>tag)")
    if not sentences:
        raise BadInput(f"{data}: no sentences to evaluate on")
    # The loop above refused every None sentence.
    return sentences  # type: ignore[return-value]
