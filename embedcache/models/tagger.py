"""The BiLSTM-CRF tagger network: padded token vectors → emissions → CRF (or softmax) → tags.

The network never sees Flair ``Token`` objects: it takes a padded ``(batch, tokens, D)`` float32 tensor and
the lengths, which come either straight from the embedders (``none`` storage) or from the
:class:`~embedcache.cache.EmbeddingCache` (``cpu``/``gpu``/``disk`` storage). Layer order and defaults
follow Flair's ``SequenceTagger`` (embedding dropouts → re-projection → BiLSTM → locked dropout → linear →
CRF) so that results are comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from embedcache.embeddings.gather import gather_padded
from embedcache.embeddings.stack import EmbeddingsLike, as_stack
from embedcache.models.crf import CRF
from embedcache.models.dropout import LockedDropout, WordDropout
from embedcache.models.labels import TagDictionary

Decoding = Literal["embedcache", "flair"]
"""How confidences and spans are read from the network's output.

``"embedcache"``: a token's confidence is the CRF posterior marginal of its tag (the softmax without a CRF),
and spans are read as conlleval reads them. ``"flair"``: Flair 0.15's reading, the largest softmax
probability of each step's Viterbi scores and ``flair.data.get_spans_from_bio``'s spans; a tagger converted
from Flair keeps it, so that it reports what Flair reports.
"""


class HeadRunner(Protocol):
    """Another runtime's :meth:`TaggerNetwork.emissions` for inference: padded vectors, lengths → scores."""

    name: str  # the runtime and precision, for reports ("onnx-int8")
    model_nbytes: int  # what it holds of the weights

    def __call__(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class TaggerConfig:
    """Everything that shapes the network besides the embeddings and the tags (saved with the model)."""

    tag_type: str
    hidden_size: int = 256
    rnn_layers: int = 1
    use_rnn: bool = True
    use_crf: bool = True
    reproject_embeddings: bool = True
    dropout: float = 0.0
    word_dropout: float = 0.05
    locked_dropout: float = 0.5
    decoding: Decoding = "embedcache"

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.rnn_layers < 1:
            raise ValueError("hidden_size and rnn_layers must be at least 1")
        if self.decoding not in ("embedcache", "flair"):
            raise ValueError(f"decoding must be 'embedcache' or 'flair', got {self.decoding!r}")
        for name in ("dropout", "word_dropout", "locked_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


class TaggerNetwork(torch.nn.Module):
    """The network of a :class:`~embedcache.inference.tagger.SequenceTagger`: embedders → BiLSTM → CRF.

    It embeds, scores, computes the loss and decodes padded batches; predicting text, saving and loading
    are the public class's, which delegates them to :mod:`embedcache.inference.predict` and
    :mod:`embedcache.models.serialization` (they import this module, never the other way).
    Takes the arguments of :class:`~embedcache.inference.tagger.SequenceTagger`.
    """

    def __init__(
        self,
        embeddings: EmbeddingsLike,
        tag_dictionary: TagDictionary | Sequence[str],
        tag_type: str,
        hidden_size: int = 256,
        use_crf: bool = True,
        use_rnn: bool = True,
        rnn_layers: int = 1,
        reproject_embeddings: bool = True,
        dropout: float = 0.0,
        word_dropout: float = 0.05,
        locked_dropout: float = 0.5,
        decoding: Decoding = "embedcache",
    ) -> None:
        super().__init__()
        self.config = TaggerConfig(
            tag_type, hidden_size, rnn_layers, use_rnn, use_crf, reproject_embeddings, dropout, word_dropout,
            locked_dropout, decoding,
        )  # fmt: skip
        self.embeddings = as_stack(embeddings)
        self.tags = TagDictionary.coerce(tag_dictionary)
        features = self.embeddings.embedding_length
        self.embedding_dropout = torch.nn.Sequential(
            torch.nn.Dropout(dropout), WordDropout(word_dropout), LockedDropout(locked_dropout)
        )
        self.reproject = torch.nn.Linear(features, features) if reproject_embeddings else torch.nn.Identity()
        self.rnn = (
            torch.nn.LSTM(features, hidden_size, rnn_layers, batch_first=True, bidirectional=True)
            if use_rnn
            else None
        )
        self.output_dropout = torch.nn.Sequential(torch.nn.Dropout(dropout), LockedDropout(locked_dropout))
        self.emission = torch.nn.Linear(2 * hidden_size if use_rnn else features, len(self.tags))
        self.crf = CRF(len(self.tags)) if use_crf else None
        self.model_card: dict[str, object] = {}  # training data, scores, provenance; saved as JSON
        # Set by embedcache.models.backends.use_backend: decode's scores from an ONNX Runtime graph.
        self.head_runner: HeadRunner | None = None

    @property
    def tag_type(self) -> str:
        return self.config.tag_type

    @property
    def device(self) -> torch.device:
        return self.emission.weight.device

    def hyperparameters(self) -> dict[str, object]:
        return asdict(self.config)

    def embed(
        self, sentences: Sequence[Sequence[str]], whitespace_after: Sequence[Sequence[int]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the embedders on a batch: the zero-padded ``(B, T, D)`` float32 input and ``(B,)`` lengths."""
        vectors = self.embeddings.embed_batch(sentences, whitespace_after)
        lengths = vectors.lengths
        rows = torch.arange(vectors.vectors.shape[0])
        padded = gather_padded(vectors.vectors, rows, lengths)  # (B, T, D)
        return padded.to(self.device, torch.float32, non_blocking=True), lengths

    def emissions(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(B, T, K)`` tag scores for a padded batch of token vectors ``(B, T, D)``."""
        x = self.reproject(self.embedding_dropout(padded.float()))  # (B, T, D)
        if self.rnn is not None:
            # Packing skips the pads; empty sentences are packed as length 1 and masked out later.
            packed = pack_padded_sequence(
                x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
            )
            output, _ = self.rnn(packed)
            x, _ = pad_packed_sequence(output, batch_first=True, total_length=padded.shape[1])  # (B, T, 2H)
        return self.emission(self.output_dropout(x))  # (B, T, K)

    def loss(self, padded: torch.Tensor, lengths: torch.Tensor, tag_ids: torch.Tensor) -> torch.Tensor:
        """Summed negative log-likelihood of the gold tags ``(B, T)`` over the batch, as Flair's loss."""
        scores = self.emissions(padded, lengths)
        mask = _mask(lengths, padded.shape[1], scores.device)
        tag_ids = tag_ids.to(scores.device)
        if self.crf is not None:
            return self.crf.neg_log_likelihood(scores, tag_ids, mask, reduction="sum")
        return torch.nn.functional.cross_entropy(scores[mask], tag_ids[mask], reduction="sum")

    @torch.no_grad()
    def decode(self, padded: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best tags and their confidences, both ``(B, T)`` (pads hold 0).

        The scores come from :attr:`head_runner` when a backend set one (the same scores, another runtime).
        With the CRF the confidence is the posterior marginal of the chosen tag (with ``decoding="flair"``,
        Flair's Viterbi confidence, see :meth:`CRF.viterbi_confidences`); without it, the softmax probability.
        """
        scores = (self.head_runner or self.emissions)(padded, lengths)
        mask = _mask(lengths, padded.shape[1], scores.device)
        if self.crf is not None and self.config.decoding == "flair":
            tag_ids, _ = self.crf.viterbi_decode(scores, mask)
            confidences = self.crf.viterbi_confidences(scores, mask)  # (B, T)
            return tag_ids, confidences
        if self.crf is not None:
            tag_ids, _ = self.crf.viterbi_decode(scores, mask)
            probabilities = self.crf.marginals(scores, mask)  # (B, T, K)
        else:
            probabilities = scores.softmax(-1)
            tag_ids = probabilities.argmax(-1)
        confidences = probabilities.gather(-1, tag_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
        return tag_ids.masked_fill(~mask, 0), confidences.masked_fill(~mask, 0.0)


def _mask(lengths: torch.Tensor, width: int, device: torch.device) -> torch.Tensor:
    return torch.arange(width, device=device) < lengths.to(device).unsqueeze(1)  # (B, T)
