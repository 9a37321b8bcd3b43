"""A linear-chain CRF whose training and decoding stay batched on the compute device.

Flair's CRF decodes one sentence at a time on the host and models sentence boundaries with ``<START>`` and
``<STOP>`` pseudo-tags. This CRF keeps every step a ``(B, K)`` or ``(B, K, K)`` tensor operation, so the
only Python loop runs over time steps, and scores boundaries with explicit ``start_transitions`` and
``end_transitions`` vectors, so the tag set holds real tags only.

Sequences are left-aligned: ``mask[b]`` is ``True`` for the first ``length[b]`` steps and ``False`` after.
A masked step carries the running scores forward unchanged, which makes a padded sequence score exactly as
it would alone. A fully masked row (length 0) has log-likelihood 0, path score 0 and all-zero marginals.

All arithmetic runs in at least float32: half-precision emissions are cast up, since the forward algorithm
sums long chains of scores whose rounding error fp16/bf16 would amplify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class _Potentials:
    """All scores of one call in one compute dtype; emissions are zero at padded steps."""

    emissions: torch.Tensor  # (B, T, K)
    transitions: torch.Tensor  # (K, K)
    start: torch.Tensor  # (K,)
    end: torch.Tensor  # (K,)


class CRF(nn.Module):
    """Linear-chain conditional random field over ``num_tags`` tags.

    The score of a tag path ``y`` of length ``L`` is
    ``start[y_0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_{L-1}]``.

    Example:
        >>> crf = CRF(num_tags=5)
        >>> emissions = torch.randn(2, 7, 5)  # (B, T, K), e.g. from a BiLSTM
        >>> mask = torch.arange(7) < torch.tensor([[7], [4]])  # (B, T) lengths 7 and 4
        >>> loss = crf.neg_log_likelihood(emissions, torch.zeros(2, 7, dtype=torch.long), mask)
        >>> tags, scores = crf.viterbi_decode(emissions, mask)  # (B, T), (B,)
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"a CRF needs at least one tag, got num_tags={num_tags}")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))  # [i, j]: tag j follows tag i
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small uniform scores, so that early training is driven by the emissions rather than the chain."""
        for parameter in (self.transitions, self.start_transitions, self.end_transitions):
            nn.init.uniform_(parameter, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-probability of each gold tag path: its score minus the log partition function.

        Args:
            emissions: ``(B, T, K)`` per-token tag scores, any float dtype.
            tags: ``(B, T)`` int64 gold tags; values at padded steps are ignored.
            mask: ``(B, T)`` bool prefix mask of real tokens.

        Returns:
            ``(B,)`` log-likelihoods, 0 for fully masked rows.
        """
        self._check_shapes(emissions, mask)
        if tags.shape != mask.shape:
            raise ValueError(f"tags have shape {tuple(tags.shape)} but the mask has {tuple(mask.shape)}")
        potentials = self._potentials(emissions, mask)
        if emissions.shape[1] == 0:
            return potentials.emissions.new_zeros(emissions.shape[0])
        gold = _path_score(potentials, tags.masked_fill(~mask, 0), mask)
        return gold - _log_partition(potentials, mask)

    def neg_log_likelihood(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor,
        reduction: Literal["sum", "mean"] = "sum",
    ) -> torch.Tensor:
        """The training loss: negated :meth:`log_likelihood`, summed or averaged over the batch.

        ``"mean"`` divides by the number of non-empty sequences, so fully masked rows that fill up a batch
        do not dilute the loss.
        """
        loss = -self.log_likelihood(emissions, tags, mask).sum()
        if reduction == "sum":
            return loss
        if reduction == "mean":
            return loss / mask.any(dim=1).sum().clamp(min=1)
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")

    def viterbi_decode(
        self, emissions: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The highest-scoring tag path of every sequence, found and backtracked on the emissions' device.

        Args:
            emissions: ``(B, T, K)`` per-token tag scores.
            mask: ``(B, T)`` bool prefix mask of real tokens.

        Returns:
            ``(tags, scores)``: ``(B, T)`` int64 best paths with 0 at padded steps, and ``(B,)`` their
            scores (0 for fully masked rows).
        """
        self._check_shapes(emissions, mask)
        potentials = self._potentials(emissions, mask)
        batch_size, steps, _ = emissions.shape
        if steps == 0:
            return mask.new_zeros((batch_size, 0), dtype=torch.long), potentials.emissions.new_zeros(
                batch_size
            )
        step_scores, backpointers = _viterbi_forward(potentials, mask)
        path_scores, tag = (step_scores[-1] + potentials.end).max(dim=1)  # (B,), (B,)
        path = [tag]
        for pointers in reversed(backpointers):
            tag = pointers.gather(1, tag.unsqueeze(1)).squeeze(1)  # (B,)
            path.append(tag)
        best_tags = torch.stack(path[::-1], dim=1).masked_fill(~mask, 0)  # (B, T)
        return best_tags, path_scores.masked_fill(~mask.any(dim=1), 0.0)

    def viterbi_confidences(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Flair 0.15's token confidence: the largest softmax probability of each step's Viterbi scores.

        ``max_k softmax(score_t)[k]``, where ``score_t[k]`` is the best score of a path over steps ``0..t``
        ending in tag ``k``. Not a probability of the chosen tag (that is :meth:`marginals`); kept so that a
        tagger converted from Flair reports the scores Flair reports.

        Returns:
            ``(B, T)`` confidences, 0 at padded steps.
        """
        self._check_shapes(emissions, mask)
        potentials = self._potentials(emissions, mask)
        if emissions.shape[1] == 0:
            return potentials.emissions.new_zeros(emissions.shape[:2])
        step_scores, _ = _viterbi_forward(potentials, mask)
        confidences = torch.stack(step_scores, dim=1).softmax(dim=2).amax(dim=2)  # (B, T)
        return confidences.masked_fill(~mask, 0.0)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Posterior probability of every tag at every token, by the forward-backward algorithm.

        Used as per-tag confidence at prediction time: unlike a Viterbi score, it is a probability.

        Returns:
            ``(B, T, K)`` probabilities summing to 1 over ``K`` at real tokens, 0 at padded steps.
        """
        self._check_shapes(emissions, mask)
        potentials = self._potentials(emissions, mask)
        if emissions.shape[1] == 0:
            return potentials.emissions.clone()
        alphas = torch.stack(_forward_alphas(potentials, mask), dim=1)  # (B, T, K)
        betas = torch.stack(_backward_betas(potentials, mask), dim=1)  # (B, T, K)
        log_z = torch.logsumexp(alphas[:, -1] + potentials.end, dim=1)  # (B,)
        posteriors = torch.exp(alphas + betas - log_z[:, None, None])  # (B, T, K)
        return posteriors.masked_fill(~mask.unsqueeze(2), 0.0)

    def _check_shapes(self, emissions: torch.Tensor, mask: torch.Tensor) -> None:
        if emissions.dim() != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(
                f"emissions must have shape (batch, steps, {self.num_tags}), got {tuple(emissions.shape)}"
            )
        if mask.shape != emissions.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be a bool tensor of shape {tuple(emissions.shape[:2])}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )

    def _potentials(self, emissions: torch.Tensor, mask: torch.Tensor) -> _Potentials:
        """Scores cast to a common dtype of at least float32, emissions zeroed where masked.

        Zeroing keeps whatever sits in the padding (even inf or NaN) out of both results and gradients.
        """
        dtype = torch.promote_types(
            torch.promote_types(emissions.dtype, self.transitions.dtype), torch.float32
        )
        return _Potentials(
            emissions=emissions.to(dtype).masked_fill(~mask.unsqueeze(2), 0.0),
            transitions=self.transitions.to(dtype),
            start=self.start_transitions.to(dtype),
            end=self.end_transitions.to(dtype),
        )


def _viterbi_forward(
    potentials: _Potentials, mask: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Best-path scores per step and the back-pointers between steps.

    Returns:
        ``(scores, backpointers)``: ``scores[t]`` is ``(B, K)``, the best score of a path over steps ``0..t``
        ending in each tag (carried unchanged past a sequence's end); ``backpointers[t - 1]`` is ``(B, K)``,
        the previous tag of that path (at padded steps the tag itself, so backtracking carries the last real
        tag back).
    """
    emissions = potentials.emissions
    batch_size, steps, num_tags = emissions.shape
    stay = torch.arange(num_tags, device=emissions.device).expand(batch_size, num_tags)  # (B, K)
    score = potentials.start + emissions[:, 0]  # (B, K)
    scores, backpointers = [score], []
    for t in range(1, steps):
        # Summed in Flair's order, (emission + transition) + score, so that a converted Flair tagger's
        # scores round as Flair's do: (B, 1, K_next) + (K_prev, K_next) + (B, K_prev, 1)
        candidates = (emissions[:, t].unsqueeze(1) + potentials.transitions) + score.unsqueeze(2)
        best, best_previous = candidates.max(dim=1)  # (B, K) each
        step_mask = mask[:, t].unsqueeze(1)  # (B, 1)
        score = torch.where(step_mask, best, score)
        backpointers.append(torch.where(step_mask, best_previous, stay))
        scores.append(score)
    return scores, backpointers


def _path_score(potentials: _Potentials, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` scores of the given tag paths; ``tags`` must hold valid ids everywhere, padding included."""
    lengths = mask.sum(dim=1)  # (B,)
    weights = mask.to(potentials.emissions.dtype)  # (B, T)
    emitted = potentials.emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
    moved = potentials.transitions[tags[:, :-1], tags[:, 1:]]  # (B, T - 1)
    last_tags = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (B,)
    score = (
        potentials.start[tags[:, 0]]
        + emitted.sum(dim=1)  # padded emissions are already zero
        + (moved * weights[:, 1:]).sum(dim=1)
        + potentials.end[last_tags]
    )
    return score.masked_fill(lengths == 0, 0.0)


def _log_partition(potentials: _Potentials, mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` log of the summed exponentiated scores of all paths; 0 for fully masked rows."""
    last_alpha = _forward_alphas(potentials, mask)[-1]  # (B, K)
    log_z = torch.logsumexp(last_alpha + potentials.end, dim=1)  # (B,)
    return log_z.masked_fill(~mask.any(dim=1), 0.0)


def _forward_alphas(potentials: _Potentials, mask: torch.Tensor) -> list[torch.Tensor]:
    """Forward log-scores per step: ``alphas[t][b, k]`` sums all paths over steps ``0..t`` ending in ``k``.

    Past a sequence's end the last real alpha is carried forward, so ``alphas[-1]`` is every row's final one.
    """
    emissions = potentials.emissions
    alpha = potentials.start + emissions[:, 0]  # (B, K)
    alphas = [alpha]
    chain = _ExpTransitions.of(potentials.transitions)
    for t in range(1, emissions.shape[1]):
        step = chain.log_matmul_exp(alpha) + emissions[:, t]  # sums out K_prev
        alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)  # (B, K)
        alphas.append(alpha)
    return alphas


def _backward_betas(potentials: _Potentials, mask: torch.Tensor) -> list[torch.Tensor]:
    """Backward log-scores per step: ``betas[t][b, k]`` sums all path continuations after tag ``k`` at ``t``.

    Padded steps carry ``end`` back, so each row's last real step starts from the end scores.
    """
    emissions = potentials.emissions
    batch_size, steps, num_tags = emissions.shape
    beta = potentials.end.expand(batch_size, num_tags)  # (B, K)
    betas = [beta]
    chain = _ExpTransitions.of(potentials.transitions.T)
    for t in range(steps - 2, -1, -1):
        step = chain.log_matmul_exp(emissions[:, t + 1] + beta)  # sums out K_next
        beta = torch.where(mask[:, t + 1].unsqueeze(1), step, beta)  # (B, K)
        betas.append(beta)
    return betas[::-1]


@dataclass(frozen=True)
class _ExpTransitions:
    """``exp(transitions - shift)``, made once per call, for :meth:`log_matmul_exp` at every step."""

    exp: torch.Tensor  # (K, K), every entry in (0, 1]
    shift: torch.Tensor  # () the largest transition

    @classmethod
    def of(cls, transitions: torch.Tensor) -> _ExpTransitions:
        shift = transitions.max().detach()
        return cls(torch.exp(transitions - shift), shift)

    def log_matmul_exp(self, log_scores: torch.Tensor) -> torch.Tensor:
        """``logsumexp(log_scores[:, :, None] + transitions, dim=1)``, ``(B, K) → (B, K)``, as one matrix
        product of exponentials.

        Shifting each row of ``log_scores`` and the transitions by their maxima keeps every exponential in
        ``(0, 1]`` (the shifts are added back after the log; their gradients cancel, so they are detached).
        Per step this is a ``(B, K) @ (K, K)`` product instead of a ``(B, K, K)`` logsumexp, several times
        faster on the CPU, where the forward-backward of the marginals is part of every predict call. A sum
        that underflows (every path into a tag below ``e^-87`` of the best, in float32) is floored at the
        smallest normal number rather than ``-inf``, so that no gradient turns into NaN.
        """
        row_max = log_scores.max(dim=1, keepdim=True).values.detach()  # (B, 1)
        summed = torch.exp(log_scores - row_max) @ self.exp  # (B, K)
        return torch.log(summed.clamp(min=torch.finfo(summed.dtype).tiny)) + row_max + self.shift
