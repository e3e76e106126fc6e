"""DDP wrapper options: the ddp_* arguments as DistributedDataParallel keyword arguments."""

from __future__ import annotations

from torch import nn

from trainer_dist import DDPOptions


class _Checkpointed(nn.Linear):
    is_gradient_checkpointing = True


def test_unused_parameter_search_defaults_as_in_the_reference() -> None:
    assert DDPOptions().wrapper_kwargs(nn.Linear(2, 2)) == {"find_unused_parameters": True}
    # Gradient checkpointing re-runs forward; the search would then report false positives.
    assert DDPOptions().wrapper_kwargs(_Checkpointed(2, 2)) == {"find_unused_parameters": False}


def test_every_option_given_is_passed_on() -> None:
    options = DDPOptions(
        find_unused_parameters=False, bucket_cap_mb=50, broadcast_buffers=False, static_graph=True
    )
    assert options.wrapper_kwargs(nn.Linear(2, 2)) == {
        "find_unused_parameters": False,
        "bucket_cap_mb": 50,
        "broadcast_buffers": False,
        "static_graph": True,
    }
