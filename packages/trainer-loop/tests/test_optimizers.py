"""The default optimizer: weight-decay grouping, every ``optim`` name, ``optim_args``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import UNSUPPORTED_OPTIMIZERS, OptimizerNames, TrainingArguments
from trainer_core import MissingExtraError
from trainer_loop import (
    OPTIMIZER_NAMES,
    Adafactor,
    MissingOptimizerPackageError,
    create_optimizer,
    get_decay_parameter_names,
    get_optimizer_cls_and_kwargs,
    parse_optim_args,
)

# What each name needs, written out here independently of the module under test.
TORCH_ONLY = {"adamw_hf", "adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad"}
TORCH_ONLY |= {"rmsprop"}
NEEDS_MODULE = {
    "adamw_torch_xla": "torch_xla",
    "adamw_torch_npu_fused": "torch_npu",
    "adamw_apex_fused": "apex",
    "adamw_anyprecision": "torchdistx",
    "adamw_torch_4bit": "torchao",
    "adamw_torch_8bit": "torchao",
    "schedule_free_adamw": "schedulefree",
    "schedule_free_radam": "schedulefree",
    "schedule_free_sgd": "schedulefree",
    "grokadamw": "grokadamw",
    "stable_adamw": "optimi",
}
NEEDS_MODULE |= {
    name: "bitsandbytes"
    for name in (
        "adamw_bnb_8bit",
        "adamw_8bit",
        "paged_adamw_32bit",
        "paged_adamw_8bit",
        "lion_8bit",
        "lion_32bit",
        "paged_lion_32bit",
        "paged_lion_8bit",
        "ademamix",
        "ademamix_8bit",
        "paged_ademamix_32bit",
        "paged_ademamix_8bit",
        "rmsprop_bnb",
        "rmsprop_bnb_8bit",
        "rmsprop_bnb_32bit",
    )
}
# Names of the reference this trainer refuses (pinned by trainer-args' tests).
UNSUPPORTED = set(UNSUPPORTED_OPTIMIZERS)


def make_args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), **overrides)


class TinyRMSNorm(nn.Module):
    """A hand-written RMSNorm: recognised only by a norm-like attribute name."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Normalizer(nn.Module):
    """Not a normalisation layer by the rule: "normalizer" is not a norm-like name."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Affine(nn.LayerNorm):
    """A LayerNorm under another name: recognised through its base class."""


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 8)
        self.layer_norm = nn.LayerNorm(8)
        self.rms = TinyRMSNorm(8)
        self.batch_norm = nn.BatchNorm1d(8)
        self.group_norm = nn.GroupNorm(2, 8)
        self.affine = Affine(8)
        self.normalizer = Normalizer(8)
        self.attention = nn.MultiheadAttention(8, 2)
        self.head = nn.Linear(8, 2)


def test_decay_names_exclude_biases_layer_norms_and_norm_named_parameters() -> None:
    assert get_decay_parameter_names(Mixed()) == [
        "embed.weight",
        "proj.weight",
        "rms.weight",  # a norm by its class only, which the reference does not look at
        "normalizer.scale",
        "attention.in_proj_weight",
        "attention.out_proj.weight",
        "head.weight",
    ]


def test_decay_names_include_frozen_parameters_and_each_name_of_a_tied_one() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 3, bias=False))
    model[2].weight = model[0].weight  # tied
    model[0].weight.requires_grad_(False)
    assert get_decay_parameter_names(model) == ["0.weight", "2.weight"]


def test_norms_other_than_layer_norm_are_known_by_their_names_only() -> None:
    model = nn.Sequential(nn.InstanceNorm1d(4, affine=True), nn.RMSNorm(4), nn.Linear(4, 4))
    assert get_decay_parameter_names(model) == ["0.weight", "1.weight", "2.weight"]
    named = nn.ModuleDict({"q_norm": nn.RMSNorm(4), "norm": nn.BatchNorm1d(4)})
    assert get_decay_parameter_names(named) == []


@pytest.mark.slow
def test_decay_names_on_tiny_bert_and_llama() -> None:
    transformers = pytest.importorskip("transformers")
    bert = transformers.BertModel(
        transformers.BertConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
        )
    )
    names = [name for name, _ in bert.named_parameters()]
    expected = [n for n in names if not n.endswith(".bias") and ".LayerNorm." not in n]
    assert get_decay_parameter_names(bert) == expected
    assert "encoder.layer.0.attention.output.dense.weight" in expected
    assert "embeddings.LayerNorm.weight" not in expected

    llama = transformers.LlamaForCausalLM(
        transformers.LlamaConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=64,
        )
    )
    names = [name for name, _ in llama.named_parameters()]
    expected = [n for n in names if "layernorm" not in n and n != "model.norm.weight"]
    assert get_decay_parameter_names(llama) == expected
    assert len(names) - len(expected) == 2 * 2 + 1  # two RMSNorms per layer and the final one


def test_create_optimizer_makes_decay_and_no_decay_groups(tmp_path: Path) -> None:
    model = Mixed()
    model.proj.weight.requires_grad_(False)
    model.proj.bias.requires_grad_(False)
    args = make_args(tmp_path, weight_decay=0.1, learning_rate=1e-3)
    optimizer = create_optimizer(model, args)

    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1
    assert no_decay["weight_decay"] == 0.0
    params = dict(model.named_parameters())
    expected_decay = ["embed.weight", "rms.weight", "normalizer.scale"]
    expected_decay += ["attention.in_proj_weight"]
    expected_decay += ["attention.out_proj.weight", "head.weight"]
    assert [id(p) for p in decay["params"]] == [id(params[n]) for n in expected_decay]
    trainable = {id(p) for p in params.values() if p.requires_grad}
    assert {id(p) for p in no_decay["params"]} == trainable - {id(p) for p in decay["params"]}
    assert id(model.proj.bias) not in {id(p) for p in no_decay["params"]}
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults["lr"] == 1e-3


def test_create_optimizer_honours_overridden_names_and_class(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    args = make_args(tmp_path, weight_decay=0.5)
    optimizer = create_optimizer(
        model,
        args,
        decay_parameter_names=["1.weight"],
        optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.25}),
    )
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.25
    decay, no_decay = optimizer.param_groups
    assert decay["params"] == [model[1].weight]
    assert len(no_decay["params"]) == 3


def test_create_optimizer_rejects_a_fully_frozen_model(tmp_path: Path) -> None:
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad=True"):
        create_optimizer(model, make_args(tmp_path))


def test_adamw_kwargs_come_from_the_arguments(tmp_path: Path) -> None:
    args = make_args(
        tmp_path, learning_rate=3e-4, adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-6
    )
    optimizer_cls, kwargs = get_optimizer_cls_and_kwargs(args)
    assert optimizer_cls is torch.optim.AdamW
    assert kwargs == {"lr": 3e-4, "betas": (0.8, 0.95), "eps": 1e-6}


def test_fused_adamw_and_adafactor_kwargs(tmp_path: Path) -> None:
    fused_cls, fused = get_optimizer_cls_and_kwargs(make_args(tmp_path, optim="adamw_torch_fused"))
    assert fused_cls is torch.optim.AdamW
    assert fused["fused"] is True
    adafactor_cls, adafactor = get_optimizer_cls_and_kwargs(make_args(tmp_path, optim="adafactor"))
    assert adafactor_cls is Adafactor
    assert adafactor == {"lr": 5e-5, "scale_parameter": False, "relative_step": False}


def test_enum_member_is_accepted_like_its_value(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim=OptimizerNames.SGD)
    assert get_optimizer_cls_and_kwargs(args)[0] is torch.optim.SGD


def test_legacy_adafactor_flag_selects_adafactor(tmp_path: Path) -> None:
    with pytest.warns(FutureWarning, match="adafactor"):
        args = make_args(tmp_path, adafactor=True)
    assert get_optimizer_cls_and_kwargs(args)[0] is Adafactor
    duck_typed = SimpleNamespace(optim="adamw_torch", adafactor=True, learning_rate=1e-3)
    assert get_optimizer_cls_and_kwargs(duck_typed)[0] is Adafactor


def test_unknown_name_lists_the_valid_ones() -> None:
    args = SimpleNamespace(optim="adam_w", learning_rate=1e-3)
    with pytest.raises(ValueError, match="adam_w") as caught:
        get_optimizer_cls_and_kwargs(args)
    assert "adamw_torch" in str(caught.value)
    assert "paged_adamw_8bit" in str(caught.value)


def test_every_enum_name_is_known_and_every_known_name_is_in_the_enum() -> None:
    assert set(OPTIMIZER_NAMES) == {member.value for member in OptimizerNames}
    assert set(OPTIMIZER_NAMES) == TORCH_ONLY | set(NEEDS_MODULE) | UNSUPPORTED


def _loss_after_steps(optimizer: torch.optim.Optimizer, model: nn.Module, steps: int) -> None:
    inputs = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    for _ in range(steps):
        optimizer.zero_grad()
        model(inputs).pow(2).mean().backward()
        optimizer.step()


@pytest.mark.parametrize("member", list(OptimizerNames), ids=lambda m: m.value)
def test_every_optimizer_name_steps_or_names_the_missing_package(
    member: OptimizerNames, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 2))
    if member.value in UNSUPPORTED:
        with pytest.raises(ValueError, match="not supported by this trainer"):
            make_args(tmp_path, optim=member)
        return
    args = make_args(tmp_path, optim=member, learning_rate=0.05, weight_decay=0.01)
    module = NEEDS_MODULE.get(member.value)
    if module is not None and importlib.util.find_spec(module) is None:
        with pytest.raises(MissingOptimizerPackageError) as caught:
            create_optimizer(model, args)
        assert isinstance(caught.value, MissingExtraError)
        assert isinstance(caught.value, ImportError)
        assert caught.value.name == module
        assert f"'{module}'" in str(caught.value)
        assert f"optim='{member.value}'" in str(caught.value)
        assert "install" in str(caught.value)
        return
    optimizer = create_optimizer(model, args)
    if callable(getattr(optimizer, "train", None)):  # schedule-free: as the training loop does
        optimizer.train()
    before = [p.detach().clone() for p in model.parameters()]
    # Schedule-free RAdam leaves the weights alone until its variance estimate settles.
    _loss_after_steps(optimizer, model, steps=8 if member.value == "schedule_free_radam" else 2)
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(changed), f"{member.value} left some parameters unchanged"


def test_parse_optim_args_converts_values() -> None:
    text = "momentum=0.9, nesterov=True,dampening=0,betas=(0.8, 0.95),flag=FALSE,"
    text += "dtype='bfloat16',plain=word,nothing=None,sizes=[1,2]"
    assert parse_optim_args(text) == {
        "momentum": 0.9,
        "nesterov": True,
        "dampening": 0,
        "betas": (0.8, 0.95),
        "flag": False,
        "dtype": "bfloat16",
        "plain": "word",
        "nothing": None,
        "sizes": (1, 2),
    }
    assert parse_optim_args(None) == {}
    assert parse_optim_args("") == {}
    assert parse_optim_args({"alpha": 1}) == {"alpha": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("momentum", "not key=value"),
        ("=3", "not key=value"),
        ("a=1,a=2", "twice"),
        ("betas=(0.9,0.95", "unbalanced"),
        ("betas=0.9),x=1", "unbalanced"),
    ],
)
def test_parse_optim_args_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_optim_args(text)


def test_optim_args_reach_the_optimizer(tmp_path: Path) -> None:
    model = nn.Linear(3, 3)
    args = make_args(tmp_path, optim="sgd", optim_args="momentum=0.9,nesterov=true")
    optimizer = create_optimizer(model, args)
    assert optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["nesterov"] is True

    args = make_args(tmp_path, optim="adamw_torch", optim_args="betas=(0.5,0.6),amsgrad=True")
    assert get_optimizer_cls_and_kwargs(args)[1]["betas"] == (0.5, 0.6)
    assert create_optimizer(model, args).defaults["amsgrad"] is True


def test_optim_args_key_the_optimizer_lacks_is_rejected(tmp_path: Path) -> None:
    args = make_args(tmp_path, optim="sgd", optim_args="momentun=0.9")
    with pytest.raises(ValueError, match="momentun") as caught:
        get_optimizer_cls_and_kwargs(args)
    assert "momentum" in str(caught.value)  # the accepted keys are listed


def test_schedule_free_optimizer_is_built_with_its_warmup_steps(tmp_path: Path) -> None:
    schedulefree = pytest.importorskip("schedulefree")
    args = make_args(tmp_path, optim="schedule_free_adamw", warmup_steps=7, learning_rate=0.01)
    optimizer = create_optimizer(nn.Linear(2, 2), args)
    assert isinstance(optimizer, schedulefree.AdamWScheduleFree)
    assert optimizer.defaults["warmup_steps"] == 7


@pytest.mark.parametrize("optim", ["schedule_free_adamw", "schedule_free_sgd"])
@pytest.mark.parametrize("warmup", [{"warmup_steps": 0.25}, {"warmup_ratio": 0.1}])
def test_a_warmup_share_is_left_to_the_schedule_not_given_to_the_optimizer(
    tmp_path: Path, optim: str, warmup: dict[str, float]
) -> None:
    """The optimizer is built before the run's length is known: a share given to it as a
    step count (0.25 steps) would be nonsense; the learning-rate schedule applies it."""
    pytest.importorskip("schedulefree")
    args = make_args(tmp_path, optim=optim, **warmup)
    optimizer = create_optimizer(nn.Linear(2, 2), args)
    assert optimizer.defaults["warmup_steps"] == 0
    assert args.get_warmup_steps(40) > 0  # the schedule's warm-up


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a stand-in for an optional package the machine lacks, importable by name.

    torchao is not a dev dependency: installed, it changes transformers' own behaviour
    (its image processors then require torchvision), which other tests rely on.
    """
    created: list[str] = []

    def write(name: str, files: dict[str, str]) -> None:
        for relative, source in files.items():
            path = tmp_path / "site" / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        created.append(name)

    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield write
    for name in created:
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            sys.modules.pop(module, None)
    importlib.invalidate_caches()


def test_torchao_low_bit_adamw_gets_the_reference_block_size(fake_package, tmp_path: Path) -> None:
    if importlib.util.find_spec("torchao") is not None:
        pytest.skip("the real torchao is installed (the next test runs it)")
    recorder = """
        import torch

        class _Recording(torch.optim.AdamW):
            def __init__(self, params, *, block_size, bf16_stochastic_round, **kwargs):
                super().__init__(params, **kwargs)
                self.built_with = {"block_size": block_size, "round": bf16_stochastic_round}

        class AdamW4bit(_Recording):
            pass

        class AdamW8bit(_Recording):
            pass
        """
    fake_package("torchao", {"__init__.py": "", "optim/__init__.py": recorder})
    importlib.invalidate_caches()
    for optim in ("adamw_torch_4bit", "adamw_torch_8bit"):
        optimizer = create_optimizer(nn.Linear(2, 2), make_args(tmp_path, optim=optim))
        assert optimizer.built_with == {"block_size": 256, "round": False}


def test_torchao_4bit_adamw_quantises_in_blocks_of_256(tmp_path: Path) -> None:
    """As the reference builds it: torchao's own 4-bit default (128) trains differently
    once a weight is large enough to be quantised (4096 values)."""
    low_bit = pytest.importorskip("torchao.optim")
    inputs = torch.randn(8, 256, generator=torch.Generator().manual_seed(0))

    def trained(build: Any) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Linear(256, 16, bias=False)
        optimizer = build(model)
        for _ in range(3):
            optimizer.zero_grad()
            model(inputs).pow(2).mean().backward()
            optimizer.step()
        return model.weight.detach().clone()

    args = make_args(tmp_path, optim="adamw_torch_4bit", learning_rate=0.01)
    ours = trained(lambda model: create_optimizer(model, args))

    def direct(block_size: int) -> torch.Tensor:
        return trained(
            lambda model: low_bit.AdamW4bit(
                model.parameters(),
                lr=0.01,
                weight_decay=0.0,
                block_size=block_size,
                bf16_stochastic_round=False,
            )
        )

    assert torch.equal(ours, direct(256))
    assert not torch.equal(ours, direct(128))


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_name_is_refused_without_needing_its_package(name: str) -> None:
    """Arguments that skip TrainingArguments' checks get the same refusal from the loop,
    not an install instruction for a package that would not help."""
    args = SimpleNamespace(optim=name, learning_rate=1e-3, optim_args=None)
    with pytest.raises(ValueError, match=f"optim='{name}' is not supported") as caught:
        get_optimizer_cls_and_kwargs(args)
    assert "adamw_torch" in str(caught.value)
