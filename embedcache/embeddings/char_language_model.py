"""A character language model in plain torch: character embedding → LSTM (or GRU) → optional projection.

This is the network of Flair's ``LanguageModel`` (flair 0.15.1) without its decoder: embeddings read the
hidden states, never the next-character predictions. Its parameters have Flair's names (``encoder.*``,
``rnn.*``, ``proj.*``), so embedcache's LM files (:mod:`embedcache.embeddings.language_model`) load into
either class, and its ``init_hidden`` and ``forward`` take Flair's arguments, so
:class:`~embedcache.embeddings.charlm.CharLMEncoder` drives either. With the same weights and input, its
states are ``torch.equal`` to Flair's: the same torch modules run in the same order.

Why it exists: importing Flair takes seconds (it imports ``transformers``), and tagging with an embedcache
model needs nothing of Flair. Flair's class stays the path for Flair ``.pt`` checkpoints and LM training.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Flair's rnn_layers: recurrent_type (lower case) → (layer class, number of state tensors it carries).
RECURRENT_LAYERS: dict[str, tuple[type[nn.LSTM] | type[nn.GRU], int]] = {
    "lstm": (nn.LSTM, 2),
    "gru": (nn.GRU, 1),
}

Hidden = tuple[torch.Tensor, ...]
"""The recurrent state: ``(h, c)`` of an LSTM or ``(h,)`` of a GRU, each ``(layers, batch, hidden)``."""


class CharacterDictionary:
    """A character LM's characters in id order: the part of Flair's ``Dictionary`` a character LM uses.

    Items are kept UTF-8 encoded in :attr:`idx2item`, as Flair keeps them, so code that reads the items of
    either dictionary (character lookup, fingerprints, saving) sees the same bytes.

    Args:
        characters: the items in id order; a repeated item keeps its first id (as ``Dictionary.add_item``).
        add_unk: unknown characters map to id 0 (``<unk>``), as in Flair; else looking one up is an error.
    """

    def __init__(self, characters: Iterable[str], add_unk: bool = True) -> None:
        self.idx2item: list[bytes] = [item.encode("utf-8") for item in dict.fromkeys(characters)]
        self.item2idx: dict[bytes, int] = {item: idx for idx, item in enumerate(self.idx2item)}
        self.add_unk = add_unk

    def __len__(self) -> int:
        return len(self.idx2item)

    def get_items(self) -> list[str]:
        return [item.decode("utf-8") for item in self.idx2item]

    def get_idx_for_item(self, item: str) -> int:
        """The id of ``item``; 0 for an unknown item when :attr:`add_unk` (Flair's rule).

        Raises:
            KeyError: an unknown item and no ``<unk>``.
        """
        idx = self.item2idx.get(item.encode("utf-8"))
        if idx is not None:
            return idx
        if self.add_unk:
            return 0
        raise KeyError(f"{item!r} is not in the character dictionary, which has no <unk>")


class CharLanguageModel(nn.Module):
    """Flair's character LM network without the decoder, for embedding text.

    Args:
        dictionary: the characters (see :class:`CharacterDictionary`).
        is_forward_lm: reads text left to right (else right to left).
        hidden_size, nlayers: the recurrent layer's width and depth.
        embedding_size: the width of a character's vector.
        nout: width of the projection after the recurrent layer; ``None``: no projection.
        document_delimiter: the character Flair puts around every text the LM reads.
        dropout: dropout on the character vectors and outputs, and between recurrent layers (training only).
        recurrent_type: ``"LSTM"`` or ``"GRU"`` (any case).
    """

    def __init__(
        self,
        dictionary: CharacterDictionary,
        is_forward_lm: bool,
        hidden_size: int,
        nlayers: int,
        embedding_size: int = 100,
        nout: int | None = None,
        document_delimiter: str = "\n",
        dropout: float = 0.1,
        recurrent_type: str = "LSTM",
    ) -> None:
        super().__init__()
        if recurrent_type.lower() not in RECURRENT_LAYERS:
            raise ValueError(f"recurrent_type {recurrent_type!r} is not one of {list(RECURRENT_LAYERS)}")
        self.dictionary = dictionary
        self.is_forward_lm = is_forward_lm
        self.hidden_size = hidden_size
        self.nlayers = nlayers
        self.embedding_size = embedding_size
        self.nout = nout
        self.document_delimiter = document_delimiter
        self.dropout = dropout
        self.recurrent_type = recurrent_type
        layer, self.state_count = RECURRENT_LAYERS[recurrent_type.lower()]
        self.drop = nn.Dropout(dropout)
        # Flair's initialisation of the character vectors (uniform ±0.1). It also spares nn.Embedding's own
        # normal_ initialisation, which on the meta device (where models are sized before loading) imports
        # torch._dynamo: 1.5 s of start-up.
        self.encoder = nn.Embedding.from_pretrained(
            torch.empty(len(dictionary), embedding_size), freeze=False
        )
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        self.rnn = layer(embedding_size, hidden_size, nlayers, dropout=dropout if nlayers > 1 else 0.0)
        self.proj = nn.Linear(hidden_size, nout) if nout is not None else None

    def init_hidden(self, batch_size: int) -> Hidden:
        """The zero state for ``batch_size`` texts, on the device and in the dtype of the weights."""
        weight = self.encoder.weight.detach()
        shape = (self.nlayers, batch_size, self.hidden_size)
        return tuple(weight.new_zeros(shape) for _ in range(self.state_count))

    def forward(
        self, input: torch.Tensor, hidden: Hidden, decode: bool = False
    ) -> tuple[torch.Tensor, Hidden]:
        """States for ``(chars, batch)`` character ids, carrying ``hidden`` over from the previous chunk.

        Args:
            input: ``(chars, batch)`` int64 character ids.
            hidden: the state after the previous chunk (:meth:`init_hidden` before the first).
            decode: Flair's flag for next-character scores; this model has no decoder, so it must be False.

        Returns:
            ``(output, hidden)``: ``(chars, batch, nout or hidden_size)`` states and the state after them.
        """
        if decode:
            raise ValueError("CharLanguageModel has no decoder; Flair's LanguageModel predicts characters")
        emb = self.drop(self.encoder(input))  # (chars, B, E)
        self.rnn.flatten_parameters()  # as Flair: on CUDA, one contiguous weight block for cuDNN
        if self.state_count == 1:
            output, h = self.rnn(emb, hidden[0])
            hidden = (h,)
        else:
            output, hidden = self.rnn(emb, hidden)  # (chars, B, H)
        if self.proj is not None:
            output = self.proj(output)  # (chars, B, nout)
        return self.drop(output), hidden
