"""The batched CRF against brute-force enumeration of every tag path on tiny cases."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embedcache.models.crf import CRF


def random_crf(num_tags: int, seed: int, dtype: torch.dtype = torch.float64) -> CRF:
    """Scores of order 1, so that no single path dominates and marginals are informative."""
    torch.manual_seed(seed)
    crf = CRF(num_tags).to(dtype)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    return crf


def prefix_mask(lengths: list[int], steps: int) -> torch.Tensor:
    return torch.arange(steps) < torch.tensor(lengths).unsqueeze(1)  # (B, T)


def path_score(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    """Score of one path over ``emissions`` ``(L, K)``, written as the CRF's definition reads."""
    score = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
    score = score + sum(emissions[t, tag] for t, tag in enumerate(path))
    return score + sum(crf.transitions[a, b] for a, b in itertools.pairwise(path))


def brute_force(crf: CRF, emissions: torch.Tensor) -> dict[str, torch.Tensor]:
    """Log partition, best path, its score and token marginals of one sequence ``(L, K)``, L ≥ 1."""
    length, num_tags = emissions.shape
    paths = list(itertools.product(range(num_tags), repeat=length))
    scores = torch.stack([path_score(crf, emissions, path) for path in paths])  # (P,)
    log_z = torch.logsumexp(scores, dim=0)
    probabilities = torch.exp(scores - log_z)  # (P,)
    marginals = torch.zeros(length, num_tags, dtype=scores.dtype)
    for path, probability in zip(paths, probabilities, strict=True):
        marginals[torch.arange(length), torch.tensor(path)] += probability
    best = int(scores.argmax())
    return {
        "log_z": log_z,
        "best_path": torch.tensor(paths[best]),
        "best_score": scores[best],
        "marginals": marginals,
    }


@settings(max_examples=40, deadline=None)
@given(
    num_tags=st.integers(1, 3),
    lengths=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_batch_matches_brute_force_per_sequence(num_tags: int, lengths: list[int], seed: int) -> None:
    crf = random_crf(num_tags, seed)
    steps = max(lengths)
    emissions = torch.randn(len(lengths), steps, num_tags, dtype=torch.float64)
    mask = prefix_mask(lengths, steps)
    tags = torch.randint(num_tags, (len(lengths), steps))
    with torch.no_grad():
        log_likelihood = crf.log_likelihood(emissions, tags, mask)
        best_tags, best_scores = crf.viterbi_decode(emissions, mask)
        marginals = crf.marginals(emissions, mask)
    for b, length in enumerate(lengths):
        if length == 0:
            assert log_likelihood[b] == 0 and best_scores[b] == 0
            assert not best_tags[b].any() and not marginals[b].any()
            continue
        expected = brute_force(crf, emissions[b, :length])
        gold = path_score(crf, emissions[b, :length], tuple(tags[b, :length].tolist()))
        torch.testing.assert_close(log_likelihood[b], gold - expected["log_z"])
        assert torch.equal(best_tags[b, :length], expected["best_path"])
        assert not best_tags[b, length:].any()
        torch.testing.assert_close(best_scores[b], expected["best_score"])
        torch.testing.assert_close(marginals[b, :length], expected["marginals"])
        torch.testing.assert_close(marginals[b, :length].sum(dim=1), torch.ones(length, dtype=torch.float64))
        assert not marginals[b, length:].any()


def test_probabilities_of_all_paths_sum_to_one() -> None:
    crf = random_crf(3, seed=1)
    emissions = torch.randn(1, 4, 3, dtype=torch.float64)
    paths = torch.tensor(list(itertools.product(range(3), repeat=4)))  # (81, 4)
    with torch.no_grad():
        log_likelihood = crf.log_likelihood(
            emissions.expand(len(paths), -1, -1), paths, torch.ones(paths.shape, dtype=torch.bool)
        )
    torch.testing.assert_close(log_likelihood.exp().sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_padded_sequence_scores_as_it_would_alone(seed: int) -> None:
    crf = random_crf(4, seed=seed, dtype=torch.float32)
    lengths = [6, 2, 1, 4, 3, 5]
    emissions = torch.randn(len(lengths), 6, 4)
    mask = prefix_mask(lengths, 6)
    emissions[~mask] = float("nan")  # whatever sits in the padding must not leak in
    tags = torch.randint(4, mask.shape).masked_fill(~mask, -100)  # padding tags need not be valid ids
    batched = (
        crf.log_likelihood(emissions, tags, mask),
        *crf.viterbi_decode(emissions, mask),
        crf.marginals(emissions, mask),
    )
    for b, length in enumerate(lengths):
        alone_emissions, alone_mask = emissions[b : b + 1, :length], mask[b : b + 1, :length]
        alone = (
            crf.log_likelihood(alone_emissions, tags[b : b + 1, :length], alone_mask),
            *crf.viterbi_decode(alone_emissions, alone_mask),
            crf.marginals(alone_emissions, alone_mask),
        )
        torch.testing.assert_close(batched[0][b], alone[0][0])
        assert torch.equal(batched[1][b, :length], alone[1][0])
        torch.testing.assert_close(batched[2][b], alone[2][0])
        torch.testing.assert_close(batched[3][b, :length], alone[3][0])


def test_fully_masked_row_contributes_nothing_and_stays_finite() -> None:
    crf = random_crf(3, seed=3, dtype=torch.float32)
    emissions = torch.randn(2, 3, 3, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    tags = torch.zeros(2, 3, dtype=torch.long)
    log_likelihood = crf.log_likelihood(emissions, tags, mask)
    assert log_likelihood[1] == 0
    crf.neg_log_likelihood(emissions, tags, mask).backward()
    assert torch.isfinite(emissions.grad).all()
    assert not emissions.grad[1].any()
    assert all(torch.isfinite(parameter.grad).all() for parameter in crf.parameters())
    tags_out, scores = crf.viterbi_decode(emissions.detach(), mask)
    assert tags_out[1].tolist() == [0, 0, 0] and scores[1] == 0
    assert not crf.marginals(emissions.detach(), mask)[1].any()


def test_zero_steps() -> None:
    crf = CRF(3)
    emissions, mask = torch.zeros(2, 0, 3), torch.zeros(2, 0, dtype=torch.bool)
    assert crf.log_likelihood(emissions, torch.zeros(2, 0, dtype=torch.long), mask).tolist() == [0, 0]
    tags, scores = crf.viterbi_decode(emissions, mask)
    assert tags.shape == (2, 0) and tags.dtype == torch.long and scores.tolist() == [0, 0]
    assert crf.marginals(emissions, mask).shape == (2, 0, 3)


def test_reductions() -> None:
    crf = random_crf(3, seed=4, dtype=torch.float32)
    emissions = torch.randn(3, 4, 3)
    mask = prefix_mask([4, 2, 0], 4)
    tags = torch.randint(3, (3, 4))
    per_sequence = crf.log_likelihood(emissions, tags, mask)
    torch.testing.assert_close(crf.neg_log_likelihood(emissions, tags, mask), -per_sequence.sum())
    # the empty row does not count towards the mean
    torch.testing.assert_close(
        crf.neg_log_likelihood(emissions, tags, mask, reduction="mean"), -per_sequence.sum() / 2
    )
    with pytest.raises(ValueError, match="reduction"):
        crf.neg_log_likelihood(emissions, tags, mask, reduction="max")  # type: ignore[arg-type]


def test_half_emissions_are_computed_in_float32() -> None:
    crf = random_crf(3, seed=5, dtype=torch.float32)
    emissions = torch.randn(2, 4, 3).half()
    mask = prefix_mask([4, 3], 4)
    tags = torch.randint(3, (2, 4))
    log_likelihood = crf.log_likelihood(emissions, tags, mask)
    _, scores = crf.viterbi_decode(emissions, mask)
    marginals = crf.marginals(emissions, mask)
    assert log_likelihood.dtype == scores.dtype == marginals.dtype == torch.float32
    torch.testing.assert_close(log_likelihood, crf.log_likelihood(emissions.float(), tags, mask))


class CallMethod(torch.nn.Module):
    """Routes ``forward`` to one CRF method, so ``functional_call`` can swap in parameters as inputs."""

    def __init__(self, crf: CRF, method: str) -> None:
        super().__init__()
        self.crf = crf
        self.method = method

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return getattr(self.crf, self.method)(*args)


@pytest.mark.parametrize("method", ["log_likelihood", "marginals"])
def test_gradients_match_finite_differences(method: str) -> None:
    crf = random_crf(3, seed=6)
    emissions = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = prefix_mask([3, 2], 3)
    tags = torch.tensor([[0, 2, 1], [1, 1, 0]])
    extra_args = (tags, mask) if method == "log_likelihood" else (mask,)
    call = CallMethod(crf, method)
    names = [name for name, _ in call.named_parameters()]

    def function(emissions: torch.Tensor, *parameters: torch.Tensor) -> torch.Tensor:
        bound = dict(zip(names, parameters, strict=True))
        return torch.func.functional_call(call, bound, (emissions, *extra_args), strict=True)

    parameters = tuple(p.detach().clone().requires_grad_() for p in call.parameters())
    assert torch.autograd.gradcheck(function, (emissions, *parameters))


def test_training_learns_a_tag_cycle_from_transitions_alone() -> None:
    """With uninformative emissions, only the transitions can learn that tags cycle 0 → 1 → 2 → 0."""
    torch.manual_seed(7)
    crf = CRF(3)
    cycle = torch.tensor([[0, 1, 2, 0, 1, 2]])
    emissions = torch.zeros(1, 6, 3)
    mask = torch.ones(1, 6, dtype=torch.bool)
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.1)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = crf.neg_log_likelihood(emissions, cycle, mask)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    decoded, _ = crf.viterbi_decode(emissions, mask)
    assert decoded.tolist() == cycle.tolist()


@pytest.mark.parametrize(
    ("emissions_shape", "mask_shape", "mask_dtype"),
    [
        ((2, 3, 4), (2, 3), torch.bool),  # K differs from num_tags
        ((2, 3), (2, 3), torch.bool),  # emissions without a tag axis
        ((2, 3, 3), (2, 4), torch.bool),  # mask longer than the emissions
        ((2, 3, 3), (2, 3), torch.long),  # mask not bool
    ],
)
def test_shape_errors_name_the_shapes(
    emissions_shape: tuple, mask_shape: tuple, mask_dtype: torch.dtype
) -> None:
    crf = CRF(3)
    with pytest.raises(ValueError, match="shape"):
        crf.viterbi_decode(torch.zeros(emissions_shape), torch.ones(mask_shape, dtype=mask_dtype))


def test_tags_must_match_the_mask() -> None:
    with pytest.raises(ValueError, match="tags have shape"):
        CRF(3).log_likelihood(
            torch.zeros(2, 3, 3), torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 3).bool()
        )


def test_scores_far_apart_stay_exact_and_finite_in_float32() -> None:
    """The forward-backward sums exponentials in a matrix product: scores hundreds apart (a confident
    tagger, a transition Flair forbids with -10000) must neither overflow nor turn a gradient into NaN."""
    crf = random_crf(5, seed=3, dtype=torch.float32)
    with torch.no_grad():
        crf.transitions[0, 1] = -10000.0
        crf.transitions[2, :] *= 50.0
    torch.manual_seed(3)
    emissions = (torch.randn(3, 6, 5) * 200.0).requires_grad_()
    mask, tags = prefix_mask([6, 4, 1], 6), torch.randint(0, 5, (3, 6))
    log_likelihood = crf.log_likelihood(emissions, tags, mask)
    log_likelihood.sum().backward()
    assert torch.isfinite(log_likelihood).all() and torch.isfinite(emissions.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in crf.parameters())
    marginals = crf.marginals(emissions.detach(), mask)
    reference = crf.to(torch.float64)
    for b, length in enumerate([6, 4, 1]):  # against enumeration, in float64
        expected = brute_force(reference, emissions.detach()[b, :length].double())
        # float32 rounding of scores in the thousands: probabilities to about 1e-4
        torch.testing.assert_close(marginals[b, :length].double(), expected["marginals"], atol=5e-4, rtol=0)
