"""Tagging many inputs: normalise them, sort by length, batch, decode, and put results back in input order.

Inputs may be raw strings (documents: split into sentences and tokenised with segtok, as Flair), token
lists, :class:`~embedcache.data.TaggedSentence` objects, or ``flair.data.Sentence`` objects, which are
labelled the way Flair's ``SequenceTagger.predict`` labels them: earlier labels of the label name are
removed, spans (span schemes) or tokens (plain tags, but ``O`` and ``_``) get the new labels with their
scores, readable with ``sentence.get_spans(name)`` / ``token.get_label(name)``. One :class:`Prediction`
comes back per input.

One driver serves one tagger and a :class:`~embedcache.inference.pipeline.Pipeline` of several: a tagger is a
pipeline of one, and each batch is embedded once for all the pipeline's taggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from embedcache.data.sentence import TaggedSentence, is_flair_sentence
from embedcache.data.tokenize import tokenize_document
from embedcache.inference.predict_budget import (
    InputOverBudgetError,
    budgeted_batch_size,
    lm_input_chars,
)
from embedcache.inference.tagger_group import TaggerGroup
from embedcache.models.labels import Scheme, Span, flair_spans_from_tags, spans_from_tags
from embedcache.settings import StorageMode, storage_mode

if TYPE_CHECKING:
    from flair.data import Sentence

    from embedcache.models.tagger import TaggerNetwork

    PredictItem = str | Sequence[str] | TaggedSentence | Sentence
    PredictInput = PredictItem | Sequence[PredictItem]

log = logging.getLogger(__name__)

BatchCallback = Callable[[list[TaggedSentence]], object]
"""Called with the sentences of each tagged batch."""


@dataclass
class Prediction:
    """The tags of one input: a document (raw string, possibly several sentences) or one sentence.

    Attributes:
        tokens: all tokens, sentence after sentence.
        tags: one tag per token.
        confidences: the probability of each chosen tag (CRF marginal or softmax).
        spans: labelled spans of a span scheme (BIO, BIOES), token indices into ``tokens`` (never crossing a
            sentence boundary); none with plain tags, whose labels are the tags themselves.
        sentence_starts: index into ``tokens`` where each sentence starts.
        offsets: character offset of each token in ``text`` (raw-text and pre-tokenised-line input only).
        text: the input text, where there was one.
        source: where the input came from (``"file:line"``), where it was read from a file.
    """

    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    sentence_starts: list[int] = field(default_factory=list)
    offsets: list[int] | None = None
    text: str | None = None
    source: str | None = None

    def char_span(self, span: Span) -> tuple[int, int]:
        """``(start, end)`` character offsets of a span in :attr:`text`."""
        if self.offsets is None:
            raise ValueError("this prediction has no character offsets (the input was not text)")
        last = span.end - 1
        return self.offsets[span.start], self.offsets[last] + len(self.tokens[last])

    def sentence_bounds(self) -> list[tuple[int, int]]:
        """``(start, end)`` token indices of each sentence that has tokens."""
        starts = self.sentence_starts or [0]
        bounds = zip(starts, [*starts[1:], len(self.tokens)], strict=True)
        return [(start, end) for start, end in bounds if start < end]

    def to_json(self, scheme: Scheme = "BIO") -> dict[str, Any]:
        """A JSON-ready dict: text, tokens, tags, confidences, token offsets where known, and for span
        schemes the spans (with character offsets where known); plain tags have no spans besides the tags."""
        record: dict[str, Any] = {
            "text": self.text,
            "tokens": self.tokens,
            "tags": self.tags,
            "confidences": [round(c, 6) for c in self.confidences],
        }
        if self.offsets is not None:
            record["offsets"] = self.offsets
        if scheme != "plain":
            record["spans"] = [self._span_json(span) for span in self.spans]
        return record

    def _span_json(self, span: Span) -> dict[str, Any]:
        entry: dict[str, Any] = {"start": span.start, "end": span.end, "label": span.label}
        entry["score"] = None if span.score is None else round(span.score, 6)
        if self.offsets is not None:
            entry["start_char"], entry["end_char"] = self.char_span(span)
            entry["text"] = self.text[entry["start_char"] : entry["end_char"]] if self.text else None
        return entry


def _sentences_of(item: PredictItem, position: int) -> tuple[list[TaggedSentence], str | None]:
    """The sentences of one input item and its text (for character offsets)."""
    if isinstance(item, str):
        return tokenize_document(item, source=f"input {position}"), item
    if isinstance(item, TaggedSentence):
        return [item], None
    if is_flair_sentence(item):
        tokens = [token.text for token in item.tokens]
        return [TaggedSentence(tokens, None, [t.whitespace_after for t in item.tokens])], None
    if isinstance(item, Sequence) and all(isinstance(token, str) for token in item):
        return [TaggedSentence(list(item))], None
    raise TypeError(
        f"input {position}: expected a string, a list of token strings, a TaggedSentence or a flair "
        f"Sentence, got {type(item).__name__}"
    )


def _as_items(inputs: PredictInput) -> list[PredictItem]:
    if isinstance(inputs, (str, TaggedSentence)):
        return [inputs]
    if is_flair_sentence(inputs):
        return [inputs]
    items = list(inputs)
    if items and all(isinstance(token, str) for token in items) and not isinstance(inputs, list):
        return [items]  # a tuple of tokens is one sentence
    return items


Tagged = tuple[list[str], list[float]]
"""The tags of one sentence and the confidence of each."""


def tag_sentences(
    pipeline: TaggerGroup,
    sentences: list[TaggedSentence],
    batch_size: int = 32,
    progress: bool = False,
    on_batch: BatchCallback | None = None,
) -> list[list[Tagged]]:
    """Tags and confidences of each sentence by each tagger (``[sentence][tagger]``), in the order given;
    the storage mode is the caller's.

    Sentences go longest first (similar lengths share a batch: little padding). A CUDA out-of-memory error
    halves the batch size for this and every later batch (they are no longer), with a warning; a single
    sentence that does not fit re-raises it. ``on_batch`` is called with the sentences of each batch once
    they are tagged (a caller's own progress report).
    """
    results: list[list[Tagged]] = [[([], [])] * len(pipeline) for _ in sentences]
    order = sorted(range(len(sentences)), key=lambda i: -lm_input_chars(sentences[i]))
    bar = tqdm(total=len(sentences), unit="sent", disable=not progress, leave=False)
    start = 0
    while start < len(order):
        batch = order[start : start + batch_size]
        try:
            _tag_batch(pipeline, sentences, batch, results)
        except torch.cuda.OutOfMemoryError:
            if len(batch) == 1:
                raise
            batch_size = len(batch) // 2
            log.warning("out of memory on a batch of %d sentences: retrying with %d", len(batch), batch_size)
            torch.cuda.empty_cache()
            continue
        start += len(batch)
        bar.update(len(batch))
        if on_batch is not None:
            on_batch([sentences[i] for i in batch])
    bar.close()
    return results


def _tag_batch(
    pipeline: TaggerGroup, sentences: list[TaggedSentence], batch: list[int], results: list[list[Tagged]]
) -> None:
    """Tag the sentences ``batch`` indexes with every tagger and put the results into ``results``."""
    non_empty = [i for i in batch if len(sentences[i])]
    if not non_empty:
        return
    chosen = [sentences[i] for i in non_empty]
    inputs, lengths = pipeline.embed([s.tokens for s in chosen], [s.whitespace_after for s in chosen])
    for k, (tagger, padded) in enumerate(zip(pipeline.taggers, inputs, strict=True)):
        tag_ids, confidences = tagger.decode(padded, lengths)
        ids, confidence_lists = tag_ids.cpu().tolist(), confidences.cpu().tolist()
        for row, index in enumerate(non_empty):
            n = len(sentences[index])
            results[index][k] = (tagger.tags.decode(ids[row][:n]), confidence_lists[row][:n])


def predict(
    tagger: TaggerNetwork,
    inputs: PredictInput,
    batch_size: int = 32,
    mode: StorageMode = "none",
    device: str | torch.device | None = None,
    progress: bool = False,
    memory_budget_bytes: int | None = None,
    label_name: str | None = None,
    on_batch: BatchCallback | None = None,
) -> list[Prediction]:
    """Tag every input; results come back in input order, whatever the batch size.

    Args:
        tagger: the model.
        inputs: a raw string, a token list, a flair ``Sentence``, a ``TaggedSentence``, or a list of those.
        batch_size: sentences per forward pass.
        mode: the embedding storage mode while predicting (``"none"``: nothing is kept, no copies).
        device: move the tagger there first (``None``: where it is).
        progress: show a progress bar.
        memory_budget_bytes: a cap on the transient tensors (LM states, activations) of a batch: the batch
            size is lowered to fit (the arithmetic: :mod:`embedcache.inference.predict_budget`), and nothing
            is tagged if one input holds a sentence that alone needs more; ``None``: ``batch_size`` as given.
        label_name: the label type flair ``Sentence`` inputs get (replacing earlier labels of that type, as
            Flair does); ``None``: ``tagger.tag_type``.
        on_batch: called with the sentences of each batch once they are tagged (for a progress report).

    Returns:
        One :class:`Prediction` per input; flair ``Sentence`` inputs are labelled too.

    Raises:
        InputOverBudgetError: an input needs more than ``memory_budget_bytes`` (``position`` says which).
    """
    label_names = None if label_name is None else [label_name]
    per_input = predict_many(
        TaggerGroup([tagger]), inputs, batch_size, mode, device, progress, memory_budget_bytes, label_names,
        on_batch,
    )  # fmt: skip
    return [prediction for (prediction,) in per_input]


def predict_many(
    pipeline: TaggerGroup,
    inputs: PredictInput,
    batch_size: int = 32,
    mode: StorageMode = "none",
    device: str | torch.device | None = None,
    progress: bool = False,
    memory_budget_bytes: int | None = None,
    label_names: Sequence[str] | None = None,
    on_batch: BatchCallback | None = None,
) -> list[tuple[Prediction, ...]]:
    """:func:`predict` with every tagger of ``pipeline``: per input, one prediction per tagger (in order).

    ``label_names``: one label type per tagger for flair ``Sentence`` inputs (default: the tag types).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    taggers = pipeline.taggers
    if device is not None:
        for tagger in taggers:
            tagger.to(device)
    items = _as_items(inputs)
    per_item = [_sentences_of(item, position) for position, item in enumerate(items)]
    flat = [sentence for sentences, _ in per_item for sentence in sentences]
    if memory_budget_bytes is not None:
        try:
            batch_size = budgeted_batch_size(pipeline, flat, batch_size, memory_budget_bytes)
        except InputOverBudgetError as error:
            owners = [position for position, (sentences, _) in enumerate(per_item) for _ in sentences]
            raise InputOverBudgetError(owners[error.position], error.detail) from None
    was_training = [tagger.training for tagger in taggers]
    try:
        for tagger in taggers:
            tagger.eval()
        with storage_mode(mode), torch.no_grad():
            tagged = iter(tag_sentences(pipeline, flat, batch_size, progress, on_batch))
    finally:
        for tagger, training in zip(taggers, was_training, strict=True):
            tagger.train(training)
    readers = [_span_reader(tagger) for tagger in taggers]
    label_names = label_names or [tagger.tag_type for tagger in taggers]
    results = []
    for item, (sentences, text) in zip(items, per_item, strict=True):
        by_tagger = list(zip(*[next(tagged) for _ in sentences], strict=True)) or [()] * len(taggers)
        predictions = tuple(
            _assemble(sentences, list(tagged_k), read_spans, text)
            for tagged_k, read_spans in zip(by_tagger, readers, strict=True)
        )
        if is_flair_sentence(item):
            for tagger, prediction, name in zip(taggers, predictions, label_names, strict=True):
                _label_flair_sentence(item, prediction, name, tagger.tags.scheme)
        results.append(predictions)
    return results


SpanReader = Callable[[list[str], list[float]], list[Span]]


def _span_reader(tagger: TaggerNetwork) -> SpanReader:
    """How this tagger's spans are read from its tags: conlleval's way, or Flair's for converted models.

    Plain tags have no spans: a plain tag labels its token, and one-token "spans" would repeat the tags.
    """
    scheme = tagger.tags.scheme
    if scheme == "plain":
        return lambda tags, confidences: []
    if tagger.config.decoding == "flair":
        return flair_spans_from_tags
    return lambda tags, confidences: spans_from_tags(tags, scheme, confidences)


def _assemble(
    sentences: list[TaggedSentence],
    tagged: list[tuple[list[str], list[float]]],
    read_spans: SpanReader,
    text: str | None,
) -> Prediction:
    prediction = Prediction(text=text, offsets=[] if text is not None else None)
    for sentence, (tags, confidences) in zip(sentences, tagged, strict=True):
        start = len(prediction.tokens)
        prediction.sentence_starts.append(start)
        prediction.tokens += sentence.tokens
        prediction.tags += tags
        prediction.confidences += confidences
        spans = read_spans(tags, confidences)
        prediction.spans += [Span(s.start + start, s.end + start, s.label, s.score) for s in spans]
        if prediction.offsets is not None:
            prediction.offsets += sentence.offsets or []
    return prediction


def _label_flair_sentence(sentence: Sentence, prediction: Prediction, label_name: str, scheme: str) -> None:
    """Label as Flair's ``SequenceTagger.predict`` does: old labels of ``label_name`` go, then spans for span
    schemes, tokens for plain tags (Flair skips tokens tagged ``O`` or ``_``)."""
    sentence.remove_labels(label_name)
    if scheme == "plain":
        for token, tag, confidence in zip(
            sentence.tokens, prediction.tags, prediction.confidences, strict=True
        ):
            if tag not in ("O", "_"):
                token.add_label(label_name, tag, confidence)
        return
    for span in prediction.spans:
        sentence[span.start : span.end].add_label(label_name, span.label, span.score or 0.0)
