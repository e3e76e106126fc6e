"""The training samplers jump to a position without producing what comes before it."""

from __future__ import annotations

import pytest
import torch

from trainer_loop._samplers import LengthGroupedSampler, SeekableRandomSampler, seeded_generator


def _samplers():
    yield SeekableRandomSampler(range(50), generator=seeded_generator(7))
    lengths = [(i * 37) % 23 + 1 for i in range(50)]
    yield LengthGroupedSampler(4, lengths=lengths, generator=seeded_generator(7))


def _fresh(sampler):
    if isinstance(sampler, SeekableRandomSampler):
        return SeekableRandomSampler(range(50), generator=seeded_generator(7))
    return LengthGroupedSampler(4, lengths=sampler.lengths, generator=seeded_generator(7))


@pytest.mark.parametrize("sampler", list(_samplers()), ids=["random", "length-grouped"])
def test_seek_with_a_saved_state_continues_the_pass(sampler) -> None:
    first = list(sampler)
    second_iter = iter(sampler)
    second = [next(second_iter) for _ in range(12)]  # a checkpoint 12 samples in
    state = sampler.sampler_state()
    second += list(second_iter)
    third = list(sampler)

    resumed = _fresh(sampler)
    resumed.seek(skip=12, state=state, mid_pass=True, passes_done=1)
    assert list(resumed) == second[12:]
    assert list(resumed) == third  # and the passes after it follow
    assert first != second


def test_a_saved_pass_start_wins_over_the_epoch_seed() -> None:
    """A checkpoint of an earlier release, whose epochs continued one generator,
    finishes its pass in the order it began."""
    old_style = seeded_generator(7)
    torch.randperm(50, generator=old_style)  # epoch 0 drawn, epoch 1 continues from here
    state = {"pass_start": old_style.get_state()}
    epoch_one = torch.randperm(50, generator=old_style).tolist()

    resumed = SeekableRandomSampler(range(50), generator=seeded_generator(7))
    resumed.seek(skip=10, state=state, mid_pass=True, passes_done=1)
    assert list(resumed) == epoch_one[10:]


@pytest.mark.parametrize("sampler", list(_samplers()), ids=["random", "length-grouped"])
def test_a_saved_pass_of_another_epoch_is_not_replayed(sampler) -> None:
    """A run resumed with fewer steps per epoch (a larger batch or more accumulation)
    lands in a later epoch than the pass the checkpoint was taken in: it reads that
    epoch's own order, not the rest of the saved pass."""
    passes = [list(sampler) for _ in range(2)]
    interrupted = _fresh(sampler)
    position = iter(interrupted)
    for _ in range(12):  # a checkpoint 12 samples into epoch 0
        next(position)
    state = interrupted.sampler_state()
    assert int(state["pass_epoch"]) == 0

    resumed = _fresh(sampler)  # the new arguments put that step 2 samples into epoch 1
    resumed.seek(skip=2, state=state, mid_pass=True, passes_done=1)
    assert list(resumed) == passes[1][2:]


@pytest.mark.parametrize("sampler", list(_samplers()), ids=["random", "length-grouped"])
def test_seek_at_a_pass_boundary_and_without_a_saved_state(sampler) -> None:
    passes = [list(sampler) for _ in range(3)]
    replay = _fresh(sampler)
    list(replay)
    state_after_first = replay.sampler_state()

    at_boundary = _fresh(sampler)  # the state of a finished pass is not the next one's
    at_boundary.seek(state=state_after_first, mid_pass=False, passes_done=1)
    assert list(at_boundary) == passes[1]

    foreign = _fresh(sampler)  # a checkpoint without sampler state: the epoch is enough
    foreign.seek(skip=5, passes_done=2)
    assert list(foreign) == passes[2][5:]


def test_seek_refuses_a_negative_skip() -> None:
    with pytest.raises(ValueError, match="skip must be >= 0"):
        SeekableRandomSampler(range(3), generator=seeded_generator(0)).seek(skip=-1)
