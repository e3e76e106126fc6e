"""XLA FSDP's sharded state, read and rewritten without torch_xla.

The shard files these tests read are made by :func:`torch_xla_layout`, a small stand-in
for what ``XlaFullyShardedDataParallel`` holds and ``xm.save`` writes, following the
rules of torch_xla 2.x's source (shard names, padding to ``world * 128`` elements or to
``world`` rows with ``shard_param_on_dim_0``, flattened groups, metadata). It is written
independently of ``trainer_dist._xla_shards``, so each checks the other; neither has met
a real TPU here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # torch's own spelling
from safetensors.torch import load_file
from torch import nn

from trainer_dist import consolidate_xla_fsdp_checkpoint
from trainer_dist._xla_shards import (
    assign_param_groups,
    describe_shards,
    full_state,
    gather_model_state,
    gathered_from_full,
    keyed_optimizer_state,
    load_gathered_model,
    load_gathered_optimizer,
    local_optimizer_state,
    local_state,
    plain_name,
    rank_files,
    split_shard_key,
    take_shard,
)

SEP = "_FSDP_SHARD_SEPARATOR_"
ROOT = ""
LAYER0 = "_fsdp_wrapped_module.layers.0"
LAYER1 = "_fsdp_wrapped_module.layers.1"


def full_model_state() -> dict[str, dict[str, torch.Tensor]]:
    """A small model's parameters per XLA FSDP unit (root, and two auto-wrapped layers)."""
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    return {
        ROOT: {"embed.weight": rand(10, 4), "head.weight": rand(3, 4), "head.bias": rand(3)},
        LAYER0: {"linear.weight": rand(5, 4), "linear.bias": rand(5)},
        LAYER1: {"linear.weight": rand(5, 4), "linear.bias": rand(5)},
    }


def user_name(unit: str, name: str) -> str:
    prefix = unit.replace("_fsdp_wrapped_module.", "")
    return f"{prefix}.{name}" if prefix else name


def full_user_state() -> dict[str, torch.Tensor]:
    return {
        user_name(u, n): t for u, params in full_model_state().items() for n, t in params.items()
    }


def _pad_rows(tensor: torch.Tensor, multiple: int) -> torch.Tensor:
    missing = -tensor.shape[0] % multiple
    return F.pad(tensor, [0, 0] * (tensor.dim() - 1) + [0, missing]) if missing else tensor


def _shard(full: torch.Tensor, rank: int, world: int, dim0: bool) -> torch.Tensor:
    padded = _pad_rows(full, world) if dim0 else _pad_rows(full.flatten(), world * 128)
    local = padded.shape[0] // world
    return padded[rank * local : (rank + 1) * local].clone()


def torch_xla_layout(
    world: int, *, flatten: bool = False, dim0: bool = False, buffer_dtype: Any = None
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, Any]], list[list[str]]]:
    """``(local state dict, shard metadata, parameter names)`` of each rank."""
    units = full_model_state()
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(world)]
    names: list[list[str]] = [[] for _ in range(world)]
    shard_info: dict[str, dict[str, Any]] = {}
    flatten_info: dict[str, Any] = {}
    for unit, params in units.items():
        items = list(params.items())
        if flatten:
            flat = torch.cat([tensor.flatten() for _, tensor in items])
            flatten_info[f"{unit}._fsdp_wrapped_module.flat_param_0".lstrip(".")] = (
                [f"_fpw_module.{name}" for name, _ in items],
                [tensor.shape for _, tensor in items],
                [tensor.numel() for _, tensor in items],
            )
            items = [("flat_param_0", flat)]
            originals = ["_fsdp_wrapped_module.flat_param_0"]
        else:
            originals = [f"_fsdp_wrapped_module._fpw_module.{name}" for name, _ in items]
        shard_info[unit] = {}
        for original, (_, tensor) in zip(originals, items, strict=True):
            shard_name = f"_fsdp_shard.{original}".replace(".", SEP)
            shard_info[unit][shard_name] = {"_orig_size": tensor.shape, "_orig_name": original}
            key = f"{unit}.{shard_name}" if unit else shard_name
            param_name = key.replace("_fsdp_wrapped_module.", "_fsdp_wrapped_module._fpw_module.")
            for rank in range(world):
                states[rank][key] = _shard(tensor, rank, world, dim0 and not flatten)
                names[rank].append(param_name)
    scale = torch.tensor([0.5, 2.0])
    buffer_info = {}
    if buffer_dtype is not None:
        buffer_info["_fsdp_wrapped_module._fpw_module.scale"] = {"_orig_dtype": torch.float32}
        scale = scale.to(buffer_dtype)
    for state in states:
        state["_fsdp_wrapped_module.scale"] = scale.clone()
    metadata = [
        {
            "shard_info": shard_info,
            "flatten_info": flatten_info,
            "buffer_info": buffer_info,
            "world_size": world,
            "rank": rank,
        }
        for rank in range(world)
    ]
    return states, metadata, names


def write_model_files(folder: str, states: list[Any], metadata: list[Any]) -> None:
    os.makedirs(folder, exist_ok=True)
    world = len(states)
    for rank, (state, meta) in enumerate(zip(states, metadata, strict=True)):
        path = os.path.join(folder, f"rank{rank}-of-{world}-pytorch_model.bin")
        torch.save({"model": state, "shard_metadata": meta}, path)


def expected_full() -> dict[str, torch.Tensor]:
    return {**full_user_state(), "scale": torch.tensor([0.5, 2.0])}


def assert_same_state(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype, name
        assert torch.equal(actual[name], value), name


LAYOUTS = [
    pytest.param({}, id="flattened-per-parameter"),
    pytest.param({"flatten": True}, id="flatten_parameters"),
    pytest.param({"dim0": True}, id="shard_param_on_dim_0"),
]


# ------------------------------------------------------------------------- names
def test_shard_keys_split_into_wrapper_path_and_shard_name() -> None:
    key = f"{LAYER0}._fsdp_shard{SEP}_fsdp_wrapped_module{SEP}linear{SEP}weight"
    assert split_shard_key(key) == (
        LAYER0,
        f"_fsdp_shard{SEP}_fsdp_wrapped_module{SEP}linear{SEP}weight",
    )
    assert split_shard_key(f"_fsdp_shard{SEP}x")[0] == ""
    assert split_shard_key("_fsdp_wrapped_module.scale") is None
    assert plain_name("_fsdp_wrapped_module._fpw_module.layers.0._fsdp_wrapped_module.w") == (
        "layers.0.w"
    )


# ------------------------------------------------------------------ consolidation
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("world", [1, 3])
def test_consolidation_restores_the_full_weights(tmp_path: Any, layout: Any, world: int) -> None:
    states, metadata, _ = torch_xla_layout(world, **layout)
    write_model_files(str(tmp_path), states, metadata)
    full = consolidate_xla_fsdp_checkpoint(str(tmp_path), save_to=str(tmp_path / "out"))
    assert_same_state(full, expected_full())
    assert_same_state(load_file(str(tmp_path / "out" / "model.safetensors")), expected_full())


def test_buffers_get_their_original_dtype_back(tmp_path: Any) -> None:
    states, metadata, _ = torch_xla_layout(2, buffer_dtype=torch.bfloat16)
    assert states[0]["_fsdp_wrapped_module.scale"].dtype == torch.bfloat16
    write_model_files(str(tmp_path), states, metadata)
    assert_same_state(consolidate_xla_fsdp_checkpoint(str(tmp_path)), expected_full())


def test_incomplete_or_mixed_shard_files_are_refused(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match=r"no XLA FSDP model shards"):
        consolidate_xla_fsdp_checkpoint(str(tmp_path))
    states, metadata, _ = torch_xla_layout(3)
    write_model_files(str(tmp_path), states, metadata)
    os.remove(tmp_path / "rank1-of-3-pytorch_model.bin")
    with pytest.raises(ValueError, match=r"incomplete or mixed: ranks \[0, 2\] of \[3\]"):
        rank_files(str(tmp_path), "model")
    write_model_files(str(tmp_path / "two"), *torch_xla_layout(2)[:2])
    os.replace(
        tmp_path / "two" / "rank1-of-2-pytorch_model.bin", tmp_path / "rank1-of-3-pytorch_model.bin"
    )
    with pytest.raises(ValueError, match=r"describes rank 1 of 2 processes"):
        consolidate_xla_fsdp_checkpoint(str(tmp_path))


def test_metadata_of_another_model_is_refused() -> None:
    _, metadata, _ = torch_xla_layout(2)
    foreign = {f"{LAYER0}._fsdp_shard{SEP}other": torch.Size([4])}
    with pytest.raises(ValueError, match=r"does not describe .*another model"):
        describe_shards(foreign, metadata[0])


# ---------------------------------------------------------------------- resharding
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("saved", "loaded"), [(3, 2), (2, 4), (1, 3), (4, 1)])
def test_shards_reshard_onto_another_number_of_processes(
    tmp_path: Any, layout: Any, saved: int, loaded: int
) -> None:
    write_model_files(str(tmp_path), *torch_xla_layout(saved, **layout)[:2])
    gathered, buffers, _, _ = load_gathered_model(str(tmp_path))
    targets, _, _ = torch_xla_layout(loaded, **layout)
    for rank, target in enumerate(targets):
        shapes = {key: value.shape for key, value in target.items()}
        shards = {key: shapes[key] for key in gathered}
        resharded = local_state(gathered, buffers, shards, rank=rank, world=loaded)
        assert_same_state(resharded, target)


def test_shards_of_another_wrapping_are_refused(tmp_path: Any) -> None:
    write_model_files(str(tmp_path), *torch_xla_layout(2)[:2])
    gathered, buffers, _, _ = load_gathered_model(str(tmp_path))
    flattened, _, _ = torch_xla_layout(1, flatten=True)
    shapes = {key: value.shape for key, value in flattened[0].items()}
    with pytest.raises(ValueError, match=r"3 of its shards are missing.*7 are unknown"):
        local_state(gathered, buffers, shapes, rank=0, world=1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_full_weights_load_into_the_shards_of_each_process(layout: Any) -> None:
    targets, metadata, _ = torch_xla_layout(3, **layout)
    shapes = {key: value.shape for key, value in targets[0].items()}
    entries = describe_shards(shapes, metadata[0])
    buffer_keys = [key for key in shapes if key not in entries]
    gathered, buffers = gathered_from_full(expected_full(), entries, buffer_keys)
    for rank, target in enumerate(targets):
        assert_same_state(local_state(gathered, buffers, shapes, rank=rank, world=3), target)


def test_full_weights_must_match_the_model_but_tied_copies_are_accepted() -> None:
    states, metadata, _ = torch_xla_layout(2)
    shapes = {key: value.shape for key, value in states[0].items()}
    entries = describe_shards(shapes, metadata[0])
    buffer_keys = ["_fsdp_wrapped_module.scale"]
    full = expected_full()
    tied = {**full, "lm_head.weight": full["embed.weight"]}
    gathered_from_full(tied, entries, buffer_keys)
    with pytest.raises(KeyError, match=r"missing \['head.bias'\], unexpected \['extra'\]"):
        broken = {k: v for k, v in full.items() if k != "head.bias"}
        gathered_from_full({**broken, "extra": torch.zeros(2)}, entries, buffer_keys)


def test_a_gathered_tensor_too_large_for_the_shards_is_refused() -> None:
    with pytest.raises(ValueError, match=r"does not fit 2 shards of shape \(3,\)"):
        take_shard(torch.zeros(7), (3,), rank=0, world=2)
    with pytest.raises(ValueError, match=r"does not fit"):
        take_shard(torch.zeros(2, 5), (1, 4), rank=0, world=2)


# ------------------------------------------------------- collectives (thread world)
def run_ranks(
    world: int, work: Callable[[int, Callable[[list[torch.Tensor]], Any]], Any]
) -> list[Any]:
    """Run ``work(rank, concat)`` on ``world`` threads whose ``concat`` is an all-gather."""
    barrier = threading.Barrier(world, timeout=20)
    slots: list[Any] = [None] * world
    results: list[Any] = [None] * world
    errors: list[BaseException] = []

    def concat_for(rank: int, keep: bool) -> Callable[[list[torch.Tensor]], Any]:
        def concat(tensors: list[torch.Tensor]) -> Any:
            slots[rank] = tensors
            barrier.wait()
            joined = [torch.cat(parts) for parts in zip(*slots, strict=True)]
            barrier.wait()
            return joined if keep else None

        return concat

    def run(rank: int) -> None:
        try:
            results[rank] = work(rank, concat_for(rank, keep=rank == 0))
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gathering_from_every_process_gives_full_weights_on_the_keeper(layout: Any) -> None:
    states, metadata, _ = torch_xla_layout(3, **layout)

    def work(rank: int, concat: Any) -> Any:
        shapes = {key: value.shape for key, value in states[rank].items()}
        entries = describe_shards(shapes, metadata[rank])
        result = gather_model_state(states[rank], entries, concat)
        return None if result is None else full_state(*result, entries, metadata[rank])

    keeper, *others = run_ranks(3, work)
    assert others == [None, None]
    assert_same_state(keeper, expected_full())


# ------------------------------------------------------------------------ optimizer
def adam_after_one_step(world: int, layout: Any) -> list[tuple[torch.optim.Adam, list[str]]]:
    """Each rank's Adam after one step on its shards, with gradients sharded alike."""
    states, _, names = torch_xla_layout(world, **layout)
    gradients, _, _ = _gradient_layout(world, layout)
    result = []
    for rank in range(world):
        keys = [key for key in states[rank] if "_fsdp_shard" in key]
        params = [nn.Parameter(states[rank][key].clone()) for key in keys]
        for param, key in zip(params, keys, strict=True):
            param.grad = gradients[rank][key]
        optimizer = torch.optim.Adam(params, lr=0.1)
        optimizer.step()
        result.append((optimizer, [n.replace("_fpw_module.", "") for n in names[rank]]))
    return result


def _gradient_layout(world: int, layout: Any) -> Any:
    """The same layout for gradients: parameters replaced by a fixed function of them."""
    original = full_model_state
    try:
        globals()["full_model_state"] = lambda: {
            unit: {name: torch.sin(3 * tensor) for name, tensor in params.items()}
            for unit, params in original().items()
        }
        return torch_xla_layout(world, **layout)
    finally:
        globals()["full_model_state"] = original


@pytest.mark.parametrize("layout", LAYOUTS)
def test_optimizer_state_reshards_like_its_parameters(tmp_path: Any, layout: Any) -> None:
    saved = adam_after_one_step(3, layout)
    for rank, (optimizer, keys) in enumerate(saved):
        shapes = {
            key: list(p.shape)
            for key, p in zip(keys, optimizer.param_groups[0]["params"], strict=True)
        }
        torch.save(
            {"optimizer": optimizer.state_dict(), "param_keys": keys, "shard_shapes": shapes},
            tmp_path / f"rank{rank}-of-3-optimizer.pt",
        )
    targets, metadata, _ = torch_xla_layout(2, **layout)
    shapes = {key: value.shape for key, value in targets[0].items()}
    entries = describe_shards(shapes, metadata[0])
    gathered = load_gathered_optimizer(str(tmp_path), entries)
    # Adam is elementwise, so two processes stepping their own shards hold exactly the
    # state resharding must produce.
    for rank, (direct, keys) in enumerate(adam_after_one_step(2, layout)):
        resharded = local_optimizer_state(gathered, keys, shapes, entries, rank=rank, world=2)
        expected = direct.state_dict()
        assert resharded["param_groups"] == expected["param_groups"]
        for index, values in expected["state"].items():
            for name, value in values.items():
                assert torch.equal(resharded["state"][index][name], value), (index, name)


def test_optimizer_state_of_unknown_parameters_is_refused() -> None:
    optimizer, keys = adam_after_one_step(1, {})[0]
    keyed = keyed_optimizer_state(optimizer.state_dict(), keys)
    with pytest.raises(KeyError, match=r"parameters this XLA FSDP model does not have"):
        local_optimizer_state(keyed, keys[1:], {}, {}, rank=0, world=1)
    with pytest.raises(ValueError, match=r"holds 7 parameters but the XLA FSDP model has 6"):
        keyed_optimizer_state(optimizer.state_dict(), keys[1:])


def test_optimizer_files_without_parameter_names_are_refused(tmp_path: Any) -> None:
    optimizer, _ = adam_after_one_step(1, {})[0]
    torch.save({"optimizer": optimizer.state_dict()}, tmp_path / "rank0-of-1-optimizer.pt")
    with pytest.raises(ValueError, match=r"do not name their parameters"):
        load_gathered_optimizer(str(tmp_path), {})


# ----------------------------------------------------------- optimizer regrouping
@pytest.mark.parametrize("flatten", [False, True])
def test_optimizer_groups_follow_the_parameters_onto_their_shards(flatten: bool) -> None:
    full = full_user_state()
    params = {name: nn.Parameter(value.clone()) for name, value in full.items()}
    params["head.bias"].requires_grad_(False)
    decay = [params[n] for n in params if n.endswith("weight")]
    no_decay = [params[n] for n in params if n.endswith(".bias") and n != "head.bias"]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    )
    states, metadata, names = torch_xla_layout(2, flatten=flatten)
    shards = [
        (name, nn.Parameter(states[0][name.replace("_fpw_module.", "")])) for name in names[0]
    ]
    entries = describe_shards({k: v.shape for k, v in states[0].items()}, metadata[0])
    assign_param_groups(optimizer, {id(p): n for n, p in params.items()}, shards, entries)
    grouped = [[_name_of(p, shards) for p in g["params"]] for g in optimizer.param_groups]
    if flatten:  # each flattened unit joins the group of its first parameter
        assert grouped == [
            [
                _shard_name(ROOT, "flat_param_0", True),
                *[_shard_name(u, "flat_param_0", True) for u in (LAYER0, LAYER1)],
            ],
            [],
        ]
    else:
        assert grouped == [
            [
                _shard_name(ROOT, "embed.weight"),
                _shard_name(ROOT, "head.weight"),
                _shard_name(LAYER0, "linear.weight"),
                _shard_name(LAYER1, "linear.weight"),
            ],
            [_shard_name(LAYER0, "linear.bias"), _shard_name(LAYER1, "linear.bias")],
        ]


def _shard_name(unit: str, name: str, flat: bool = False) -> str:
    original = (
        f"_fsdp_wrapped_module.{name}" if flat else f"_fsdp_wrapped_module._fpw_module.{name}"
    )
    shard = f"_fsdp_shard.{original}".replace(".", SEP)
    key = f"{unit}.{shard}" if unit else shard
    return key.replace("_fsdp_wrapped_module.", "_fsdp_wrapped_module._fpw_module.")


def _name_of(param: torch.Tensor, shards: list[tuple[str, torch.Tensor]]) -> str:
    return next(name for name, shard in shards if shard is param)


def test_regrouping_refuses_a_stepped_optimizer_or_foreign_tensors() -> None:
    param = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"not a parameter of the model"):
        assign_param_groups(optimizer, {}, [], {})
    param.grad = torch.ones(2)
    optimizer.step()
    with pytest.raises(ValueError, match=r"already stepped"):
        assign_param_groups(optimizer, {id(param): "w"}, [], {})
