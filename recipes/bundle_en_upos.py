"""Score a UPOS model on LinES dev/test and ESLSpok test, and (``--bundle``) write it as the bundled en-upos.

The bundled model stores its weights as float16 (the wheel's size); the scores in its model card are those
of the float16 weights, measured here after the conversion, so that the card says what users get.

    python recipes/bundle_en_upos.py en-upos --json out/en-upos-old-scores.json          # score a model
    python recipes/bundle_en_upos.py out/en-upos/best-model --bundle embedcache/models/bundled/en-upos

Data: $EMBEDCACHE_DATA (default ../shared/data).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import embedcache as ec
from embedcache.data.conll import read_conllu
from embedcache.data.datasets import data_root
from embedcache.training.evaluation import evaluate_tags

SPLITS = {
    "lines_dev": "ud_english_lines/dev.conllu",
    "lines_test": "ud_english_lines/test.conllu",
    "eslspok_test": "ud_english_eslspok/test.conllu",
}
LM_RECORDS = ("out/en-upos-charlm/forward-training.json", "out/en-upos-charlm/backward-training.json")


def score(tagger: ec.SequenceTagger) -> dict[str, Any]:
    """Accuracy, per-tag precision/recall/F1 and top confusions on each split, with words/s of predict."""
    scores = {}
    for split, relative in SPLITS.items():
        sentences = list(read_conllu(data_root() / relative))
        started = time.perf_counter()
        predictions = tagger.predict(sentences, batch_size=64)
        seconds = time.perf_counter() - started
        result = evaluate_tags([s.tags or [] for s in sentences], [p.tags for p in predictions], "plain")
        scores[split] = {**result.to_json(), "words_per_second": round(result.n_tokens / seconds)}
        rate = scores[split]["words_per_second"]
        print(f"{split}: accuracy {result.accuracy:.4f} ({result.n_tokens} tokens, {rate} words/s)")
    return scores


def lm_records() -> list[dict[str, Any]]:
    records = []
    for path in map(Path, LM_RECORDS):
        if path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            keep = ("steps", "train_chars_seen", "seconds", "validation_bits_per_char", "validation_curve")
            records.append({"file": str(path), **{k: record.get(k) for k in keep}})
    return records


def tagger_epochs(model: Path) -> list[dict[str, Any]]:
    """The per-epoch records (learning rate, train loss, dev score, seconds) of the run behind ``model``."""
    log = model.parent / "training.log"
    if not log.is_file():
        return []
    records = [ast.literal_eval(m.group(1)) for m in re.finditer(r"epoch \d+: (\{.*\})", log.read_text())]
    return [{k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for r in records]


def bundle(model: Path, target: Path) -> None:
    tagger = ec.SequenceTagger.load(model)
    with tempfile.TemporaryDirectory() as staging:
        tagger.save(Path(staging) / "half", half=True)  # score what users get: the float16 weights
        half = ec.SequenceTagger.load(Path(staging) / "half")
    card = dict(tagger.model_card)
    card["scores_of_the_bundled_float16_weights"] = score(half)
    card["description"] = (
        "English universal part-of-speech tagger (17 UPOS tags): BiLSTM-CRF over forward and backward "
        "character LMs (hidden 512, 85 minutes of one CPU core each) and fastText word vectors (64-d, "
        "character n-grams), trained on UD English-LinES. Weights stored as float16."
    )
    card["lm_and_word_vector_training_text"] = {
        "text": "WNUT-17 source social-media text (text/social_media_en.txt) and the running text of the "
        "UD English-LinES and UD English-ESLSpok training splits (never a dev or test split, never tags)",
        "licenses": "CC BY 4.0 (WNUT-17 text); CC BY-SA 4.0 (LinES, ESLSpok)",
        "citations": [
            "Leon Derczynski, Eric Nichols, Marieke van Erp, Nut Limsopatham (2017): Results of the WNUT2017 "
            "Shared Task on Novel and Emerging Entity Recognition",
            "Lars Ahrenberg (2007/2015): LinES, an English-Swedish parallel treebank (UD English-LinES)",
            "Kristopher Kyle, Masaki Eguchi, Aaron Miller, Theodore Sither (2022): A dependency treebank of "
            "spoken second language English (UD English-ESLSpok)",
        ],
    }
    card["char_lm_training"] = lm_records()
    card["tagger_epochs"] = tagger_epochs(model)
    card["how_produced"] = [
        "embedcache train recipes/en_upos_charlm.toml --set direction=forward  (and direction=backward)",
        "python -m embedcache.embeddings.train_words (see recipes/en_upos.toml for the arguments)",
        "embedcache train recipes/en_upos.toml",
        f"python recipes/bundle_en_upos.py {model} --bundle {target}",
    ]
    half.model_card = card
    half.save(target, half=True)
    print(f"wrote {target}: {sum(p.stat().st_size for p in target.iterdir()):,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model directory or a bundled model name")
    parser.add_argument(
        "--bundle", type=Path, help="write the model here, float16, with the scores in its card"
    )
    parser.add_argument("--json", type=Path, help="write the scores here")
    args = parser.parse_args()
    if args.bundle is not None:
        bundle(Path(args.model), args.bundle)
        return
    scores = score(ec.SequenceTagger.load(args.model))
    if args.json is not None:
        args.json.write_text(json.dumps(scores, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
