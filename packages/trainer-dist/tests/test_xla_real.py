"""XlaFSDPRuntime on real torch_xla: XLA on the CPU (``PJRT_DEVICE=CPU``), one process.

Skipped unless torch_xla is importable. torch_xla pins its own torch, so it lives in a
separate virtualenv that ``tools/xla_check.sh`` builds::

    PJRT_DEVICE=CPU .venvs/xla/bin/python -m pytest packages/trainer-dist/tests/test_xla_real.py

What runs for real: the shard layout the unit tests' stand-in describes (compared with
``XlaFullyShardedDataParallel``'s, also for 2 and 3 processes through its
``sharding_world_size``, which needs no collective to build), state dicts gathered from
and loaded into real wrappers, a checkpoint written in a 2-process layout loaded by one
process, bf16, a Trainer that trains, checkpoints, resumes exactly, evaluates, predicts
and saves, and the refusal of process layouts PJRT's CPU client cannot train with.
Collectives across processes cannot run on the CPU (each process is its own group of
one, and replicas running as threads hang when two compile the same collective).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("torch_xla") is None:
    pytest.skip(
        "torch_xla is not installed; run this file with .venvs/xla/bin/python "
        "(tools/xla_check.sh builds that environment)",
        allow_module_level=True,
    )
os.environ.setdefault("PJRT_DEVICE", "CPU")

import torch  # imported after PJRT_DEVICE is set (torch_xla reads it at start-up)
from torch import nn

from trainer_dist import (
    XlaFSDPRuntime,
    consolidate_xla_fsdp_checkpoint,
    parse_xla_fsdp,
)

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def _load_sibling(name: str) -> Any:
    """A test module next to this one (tests are not a package)."""
    spec = importlib.util.spec_from_file_location(f"xla_real_{name}", HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name}.py next to {__file__}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stand_in = _load_sibling("test_xla_shards")


def torch_xla_device() -> torch.device:
    import torch_xla

    return torch_xla.device()


def xla_fsdp() -> Any:
    from torch_xla.distributed import fsdp

    return fsdp


# ------------------------------------------------------------------ the stand-in
class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Net(nn.Module):
    """The model ``test_xla_shards.full_model_state`` describes."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.layers = nn.Sequential(Block(), Block())
        self.head = nn.Linear(4, 3)
        self.register_buffer("scale", torch.tensor([0.5, 2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.embed(x)))


def wrap_like_stand_in(world: int, rank: int, **layout: Any) -> Any:
    """A real wrapper of ``Net`` holding the stand-in's weights, as process ``rank`` of
    ``world`` would build it (``sharding_*`` let one process build any rank's shards)."""
    fsdp = xla_fsdp()
    from torch_xla.distributed.fsdp.wrap import transformer_auto_wrap_policy

    model = Net()
    model.load_state_dict(stand_in.expected_full())
    # As the runtime does: a CPU buffer moved by the wrapper loses its buffer_info entry.
    model.scale = model.scale.to(torch_xla_device())
    return fsdp.XlaFullyShardedDataParallel(
        model,
        auto_wrap_policy=functools.partial(
            transformer_auto_wrap_policy, transformer_layer_cls={Block}
        ),
        flatten_parameters=layout.get("flatten", False),
        shard_param_on_dim_0=layout.get("dim0", False),
        buffer_dtype=layout.get("buffer_dtype"),
        sharding_groups=[list(range(world))],
        sharding_rank=rank,
        sharding_world_size=world,
    )


def _plain_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    flatten = {
        key: tuple(list(part) for part in value) for key, value in metadata["flatten_info"].items()
    }
    return {**metadata, "flatten_info": flatten}


@pytest.mark.parametrize(
    "layout",
    [{}, {"flatten": True}, {"dim0": True}, {"buffer_dtype": torch.bfloat16}],
    ids=["per-parameter", "flatten_parameters", "shard_param_on_dim_0", "buffer_dtype"],
)
@pytest.mark.parametrize("world", [1, 2, 3])
def test_the_stand_in_layout_is_torch_xlas(world: int, layout: dict[str, Any]) -> None:
    states, metadata, names = stand_in.torch_xla_layout(world, **layout)
    for rank in range(world):
        wrapper = wrap_like_stand_in(world, rank, **layout)
        real = {key: value.cpu() for key, value in wrapper.state_dict().items()}
        assert sorted(real) == sorted(states[rank])
        for key, value in states[rank].items():
            assert real[key].dtype == value.dtype, key
            assert torch.equal(real[key], value), key
        assert _plain_metadata(wrapper.get_shard_metadata()) == _plain_metadata(metadata[rank])
        assert [name for name, _ in wrapper.named_parameters()] == names[rank]


# ------------------------------------------------------------- the runtime's state
def tiny_llama(**config: Any) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    options = {
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 16,
        **config,
    }
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**options))


def tiny_gpt2() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=16,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


def batch_norm_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))


@pytest.mark.parametrize(
    ("build", "config"),
    [
        (tiny_llama, {}),
        (tiny_llama, {"xla_fsdp_settings": {"flatten_parameters": True}}),
        (tiny_llama, {"min_num_params": 1000, "xla_fsdp_settings": {"shard_param_on_dim_0": True}}),
        (tiny_gpt2, {"transformer_layer_cls_to_wrap": ["GPT2Block"]}),
        (batch_norm_net, {"xla_fsdp_settings": {"compute_dtype": "bfloat16"}}),
    ],
    ids=["llama-layers", "llama-flatten", "llama-size-dim0", "gpt2-tied", "bf16-buffers"],
)
def test_full_weights_leave_and_reenter_real_shards(build: Any, config: dict[str, Any]) -> None:
    model = build()
    original = {key: value.clone() for key, value in model.state_dict().items()}
    runtime = XlaFSDPRuntime(parse_xla_fsdp("full_shard", {"xla": True, **config}))
    wrapper = runtime.prepare_model(model, training=True)
    assert type(wrapper).__name__ == "XlaFullyShardedDataParallel"
    assert runtime.unwrap_model(wrapper) is model
    gathered = runtime.state_dict(wrapper)
    # A tied copy (GPT-2's lm_head.weight) is kept once by the wrapper.
    assert set(original) - set(gathered) <= {"lm_head.weight"} and set(gathered) <= set(original)
    for name, value in gathered.items():
        assert value.dtype == original[name].dtype and torch.equal(value, original[name]), name
    shifted = {name: value + 1 for name, value in original.items()}
    runtime.load_state_dict(wrapper, shifted)
    for name, value in runtime.state_dict(wrapper).items():
        assert torch.equal(value, shifted[name]), name


def test_a_checkpoint_of_two_processes_loads_on_one(tmp_path: Path) -> None:
    from torch_xla.distributed.fsdp import consolidate_sharded_state_dicts
    from torch_xla.distributed.fsdp.wrap import transformer_auto_wrap_policy

    original = {key: value.clone() for key, value in tiny_llama().state_dict().items()}
    files = []
    for rank in range(2):  # what each of 2 processes writes, as the runtime wraps
        model = tiny_llama()
        layers = {type(model.model.layers[0])}
        wrapper = xla_fsdp().XlaFullyShardedDataParallel(
            model,
            auto_wrap_policy=functools.partial(
                transformer_auto_wrap_policy, transformer_layer_cls=layers
            ),
            sharding_groups=[[0, 1]],
            sharding_rank=rank,
            sharding_world_size=2,
        )
        state = {key: value.cpu() for key, value in wrapper.state_dict().items()}
        files.append({"model": state, "shard_metadata": wrapper.get_shard_metadata()})
        torch.save(files[-1], tmp_path / f"rank{rank}-of-2-pytorch_model.bin")
    ours = consolidate_xla_fsdp_checkpoint(str(tmp_path))
    theirs = consolidate_sharded_state_dicts(
        [file["model"] for file in files], files[0]["shard_metadata"]
    )
    assert sorted(ours) == sorted(theirs) == sorted(original)
    for name, value in original.items():
        assert torch.equal(ours[name], value) and torch.equal(theirs[name], value), name
    runtime = XlaFSDPRuntime(parse_xla_fsdp("full_shard", {"xla": True}))
    wrapper = runtime.prepare_model(tiny_llama(initializer_range=0.5), training=True)
    runtime.load_sharded_state(str(tmp_path), wrapper)
    for name, value in runtime.state_dict(wrapper).items():
        assert torch.equal(value, original[name]), name
    unwrapped = XlaFSDPRuntime(parse_xla_fsdp("full_shard", {"xla": True, "min_num_params": 10**9}))
    with pytest.raises(ValueError, match=r"another XLA FSDP wrapping"):
        unwrapped.load_sharded_state(
            str(tmp_path), unwrapped.prepare_model(tiny_llama(), training=True)
        )


def sdpa_loss(mixed_precision: str) -> tuple[float, Any]:
    import torch_xla

    settings = parse_xla_fsdp("full_shard", {"xla": True})
    runtime = XlaFSDPRuntime(settings, mixed_precision=mixed_precision)  # type: ignore[arg-type]  # "no" or "bf16"
    wrapper = runtime.prepare_model(tiny_llama(attn_implementation="sdpa"), training=True)
    ids = torch.arange(16).reshape(2, 8).to(runtime.device)
    with runtime.autocast():
        loss = wrapper(input_ids=ids, labels=ids).loss
    runtime.backward(loss)
    torch_xla.sync()
    return loss.item(), wrapper


def test_bf16_trains_an_sdpa_model_in_bfloat16() -> None:
    bf16_loss, wrapper = sdpa_loss("bf16")
    assert wrapper.compute_dtype == torch.bfloat16
    assert all(param.dtype == torch.float32 for param in wrapper.parameters())
    assert all(param.grad is not None for param in wrapper.parameters())
    fp32_loss, _ = sdpa_loss("no")
    assert bf16_loss != fp32_loss and bf16_loss == pytest.approx(fp32_loss, rel=1e-2)
    # What autocast on the xla device does with the same model (the reason for the above):
    ids = torch.arange(16).reshape(2, 8).to(torch_xla_device())
    model = tiny_llama(attn_implementation="sdpa").to(ids.device)
    with torch.autocast("xla", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="dtype"):
        model(input_ids=ids)


# --------------------------------------------------------------------- the Trainer
class Tokens(torch.utils.data.Dataset):
    """Sequences counting up from a random start: learnable in a few steps."""

    def __init__(self, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.starts = torch.randint(0, 64, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = (self.starts[index] + torch.arange(16)) % 64
        return {"input_ids": ids, "labels": ids.clone()}


def run_trainer(output_dir: Path, *, xla: dict[str, Any] | None, resume: str | None = None) -> Any:
    trainer_loop = pytest.importorskip("trainer_loop")
    trainer_args = pytest.importorskip("trainer_args")
    sharding = {"fsdp": "full_shard", "fsdp_config": {"xla": True, **xla}} if xla else {}
    args = trainer_args.TrainingArguments(
        output_dir=str(output_dir),
        max_steps=6,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=3,
        learning_rate=3e-3,
        weight_decay=0.1,
        warmup_steps=2,
        logging_steps=1,
        save_strategy="steps",
        save_steps=3,
        report_to="none",
        disable_tqdm=True,
        seed=0,
        use_cpu=xla is None,
        **sharding,
    )
    trainer = trainer_loop.Trainer(
        model=tiny_llama(), args=args, train_dataset=Tokens(48), eval_dataset=Tokens(6, seed=1)
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def losses(trainer: Any) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def weights(trainer: Any) -> dict[str, torch.Tensor]:
    return {k: v.cpu() for k, v in trainer.runtime.state_dict(trainer.model_wrapped).items()}


# With torch_xla installed, accelerate's PartialState (the plain run's placement) asks
# torch_xla for its device through xm.xla_device(), which torch_xla 2.9 deprecates.
@pytest.mark.filterwarnings("ignore:Use torch_xla.device instead:DeprecationWarning")
def test_the_trainer_trains_resumes_evaluates_and_saves_on_xla(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    config = {
        "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
        "xla_fsdp_grad_ckpt": True,
        # flatten_parameters would put a flat shard's parameters in one optimizer group
        # (weight decay for norms too), which the plain run below would not match.
        "xla_fsdp_settings": {"shard_param_on_dim_0": True, "compute_dtype": "float32"},
    }
    trainer = run_trainer(tmp_path / "xla", xla=config)
    assert type(trainer.runtime).__name__ == "XlaFSDPRuntime"
    final = weights(trainer)
    checkpoint = tmp_path / "xla" / "checkpoint-3"
    assert (checkpoint / "rank0-of-1-pytorch_model.bin").is_file()
    assert (checkpoint / "rank0-of-1-optimizer.pt").is_file()

    resumed = run_trainer(tmp_path / "resumed", xla=config, resume=str(checkpoint))
    assert resumed.state.global_step == 6
    for name, value in weights(resumed).items():
        assert torch.equal(value, final[name]), name

    plain = run_trainer(tmp_path / "plain", xla=None)  # the same run on torch's CPU
    for name, value in weights(plain).items():  # seen: at most 1.2e-7 apart
        torch.testing.assert_close(final[name], value, rtol=0, atol=1e-6)
    assert losses(trainer) == pytest.approx(losses(plain), rel=1e-5)

    trainer.save_model(str(tmp_path / "saved"))
    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    reloaded = tiny_llama(initializer_range=0.5)
    reloaded.load_state_dict(saved)
    for name, value in final.items():
        assert torch.equal(reloaded.state_dict()[name], value), name
    metrics = trainer.evaluate()
    predictions = trainer.predict(Tokens(6, seed=1))
    expected = plain.evaluate()["eval_loss"]
    assert metrics["eval_loss"] == pytest.approx(expected, rel=1e-5)
    assert predictions.predictions.shape == (6, 16, 64)
    assert predictions.metrics["test_loss"] == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------- process layouts the CPU cannot run
def run_python(code: str, *launcher: str, env: dict[str, str] | None = None) -> str:
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"xla_real_{os.getpid()}.py"
    script.write_text(textwrap.dedent(code))
    environment = {**os.environ, "PJRT_DEVICE": "CPU", "OMP_NUM_THREADS": "1", **(env or {})}
    try:
        done = subprocess.run(
            [*launcher, str(script)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        script.unlink()
    return done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_processes_pjrt_cpu_cannot_join_are_refused() -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    output = run_python(
        """
        from trainer_dist import XlaFSDPRuntime, parse_xla_fsdp
        try:
            XlaFSDPRuntime(parse_xla_fsdp("full_shard", {"xla": True}))
        except RuntimeError as error:
            print("REFUSED", error)
        """,
        str(torchrun),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    )
    assert output.count("REFUSED The launcher started 2 processes") == 2, output


def test_replicas_running_as_threads_are_refused() -> None:
    output = run_python(
        """
        import torch_xla.distributed.xla_multiprocessing as xmp

        def run(index):
            from trainer_dist import XlaFSDPRuntime, parse_xla_fsdp
            try:
                XlaFSDPRuntime(parse_xla_fsdp("full_shard", {"xla": True}))
            except RuntimeError as error:
                print("REFUSED", index, error, flush=True)

        if __name__ == "__main__":
            xmp.spawn(run)
        """,
        sys.executable,
        env={"CPU_NUM_DEVICES": "2"},
    )
    assert output.count("as threads") == 2, output
