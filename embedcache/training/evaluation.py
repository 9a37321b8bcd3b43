"""Scores: span-level precision/recall/F1 with seqeval for BIO/BIOES tasks, accuracy for plain tags; and
the decoding of a split that produces the tags to score.

Plain tags (UPOS) also get per-tag precision/recall/F1 and their most frequent confusions, which say
where a tagger goes wrong better than one accuracy figure does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from seqeval.metrics import classification_report

from embedcache.data.sentence import TaggedSentence
from embedcache.inference.tagger import SequenceTagger
from embedcache.models.labels import Scheme, convert_scheme
from embedcache.training.batches import BatchSource, length_sorted_batches


@dataclass
class Scores:
    """Evaluation of one split. ``main_score`` is micro F1 for span tasks and accuracy for plain tags."""

    main_score: float
    accuracy: float
    micro_f1: float | None = None
    macro_f1: float | None = None
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    n_sentences: int = 0
    n_tokens: int = 0
    confusions: list[dict[str, object]] = field(default_factory=list)  # plain tags: gold, predicted, count

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        """A readable report: per-type (or per-tag) precision/recall/F1/support, then the averages or the
        most frequent confusions."""
        lines = [f"sentences {self.n_sentences}, tokens {self.n_tokens}, accuracy {self.accuracy:.4f}"]
        if self.per_type:
            lines.append(f"{'type' if self.micro_f1 is not None else 'tag':<20} {'precision':>9} "
                         f"{'recall':>9} {'f1':>9} {'support':>8}")  # fmt: skip
        for name, row in self.per_type.items():
            lines.append(
                f"{name:<20} {row['precision']:>9.4f} {row['recall']:>9.4f} {row['f1-score']:>9.4f} "
                f"{int(row['support']):>8}"
            )
        if self.micro_f1 is not None:
            lines.append(f"micro F1 {self.micro_f1:.4f}, macro F1 {self.macro_f1:.4f}")
        if self.confusions:
            lines.append("most frequent confusions (gold -> predicted: count)")
            lines += [f"  {c['gold']} -> {c['predicted']}: {c['count']}" for c in self.confusions]
        return "\n".join(lines)


def evaluate_tags(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], scheme: Scheme
) -> Scores:
    """Compare predicted tags with gold tags, sentence by sentence.

    Span tasks are scored on BIO tags (both sides converted), as conlleval does; a gold label the model
    never saw in training simply counts as missed.
    """
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted, strict=True)):
        raise ValueError("gold and predicted tags must have the same sentences and lengths")
    if scheme != "plain":
        gold = [convert_scheme(tags, "BIO") for tags in gold]
        predicted = [convert_scheme(tags, "BIO") for tags in predicted]
    n_tokens = sum(len(tags) for tags in gold)
    correct = sum(g == p for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True))
    accuracy = correct / n_tokens if n_tokens else 0.0
    if scheme == "plain":
        pairs = Counter(
            (g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)
        )
        return Scores(
            accuracy, accuracy, per_type=per_tag_scores(pairs), n_sentences=len(gold), n_tokens=n_tokens,
            confusions=top_confusions(pairs, TOP_CONFUSIONS),
        )  # fmt: skip
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    averages = {key: report.pop(key) for key in list(report) if key.endswith("avg")}
    micro = float(averages["micro avg"]["f1-score"])
    return Scores(
        main_score=micro,
        accuracy=accuracy,
        micro_f1=micro,
        macro_f1=float(averages["macro avg"]["f1-score"]),
        per_type={name: {k: float(v) for k, v in row.items()} for name, row in sorted(report.items())},
        n_sentences=len(gold),
        n_tokens=n_tokens,
    )


TOP_CONFUSIONS = 10


def per_tag_scores(pairs: Counter[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and gold support of every tag, from counts of (gold, predicted) token pairs."""
    gold_counts: Counter[str] = Counter()
    predicted_counts: Counter[str] = Counter()
    for (gold, predicted), count in pairs.items():
        gold_counts[gold] += count
        predicted_counts[predicted] += count
    scores = {}
    for tag in sorted(gold_counts.keys() | predicted_counts.keys()):
        correct = pairs[(tag, tag)]
        precision = correct / predicted_counts[tag] if predicted_counts[tag] else 0.0
        recall = correct / gold_counts[tag] if gold_counts[tag] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[tag] = {"precision": precision, "recall": recall, "f1-score": f1, "support": gold_counts[tag]}
    return scores


def top_confusions(pairs: Counter[tuple[str, str]], n: int) -> list[dict[str, object]]:
    """The ``n`` most frequent (gold, predicted) pairs with different tags; ties in tag order."""
    errors = sorted(
        ((-count, gold, predicted) for (gold, predicted), count in pairs.items() if gold != predicted)
    )
    return [{"gold": gold, "predicted": predicted, "count": -count} for count, gold, predicted in errors[:n]]


def evaluate_tagger(
    tagger: SequenceTagger, sentences: Sequence[TaggedSentence], source: BatchSource, batch_size: int
) -> Scores:
    """Decode ``sentences`` (embedded by ``source``) with ``tagger``; score them against their gold tags."""
    was_training = tagger.training
    tagger.eval()
    predicted: list[list[str]] = [[] for _ in sentences]
    order = list(length_sorted_batches(sentences, batch_size))
    with torch.no_grad():
        for ids, (padded, lengths) in zip(order, source.batches(order), strict=True):
            tag_ids, _ = tagger.decode(padded, lengths)  # (B, T)
            for row, index in enumerate(ids):
                predicted[index] = tagger.tags.decode(tag_ids[row, : len(sentences[index])].tolist())
    tagger.train(was_training)
    return evaluate_tags([s.tags or [] for s in sentences], predicted, tagger.tags.scheme)
