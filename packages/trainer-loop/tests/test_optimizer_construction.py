"""How the optimizer is constructed, matched to transformers 5: optimizer factories and
first-argument overrides in ``optimizer_cls_and_kwargs``, 32-bit embedding state under
bitsandbytes 8-bit optimizers, ``optim_args`` truth words and bad values, and the
arguments GrokAdamW gets."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import textwrap
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer, create_optimizer, get_optimizer_cls_and_kwargs
from trainer_loop._optimizers import is_optimizer_factory


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(6, 3)
        self.blocks = nn.ModuleList([nn.Embedding(4, 3), nn.Linear(3, 1)])

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.embed(ids) + self.blocks[0](ids % 4)
        return {"loss": nn.functional.mse_loss(self.blocks[1](hidden).squeeze(-1), labels)}


def _args(tmp_path: Path, **extra: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        **extra,
    )


def _data() -> list[dict[str, torch.Tensor]]:
    return [{"ids": torch.tensor([1, 2]), "labels": torch.zeros(2)}] * 2


# --- optimizer_cls_and_kwargs: factories and first-argument overrides ---------------------


class SGDFactory:
    """A factory as transformers 5 takes one: made with no arguments, then called with
    the model and the kwargs (Muon-style optimizers group the parameters themselves)."""

    calls: ClassVar[list[tuple[nn.Module, dict[str, Any]]]] = []

    def __call__(self, model: nn.Module, **kwargs: Any) -> torch.optim.Optimizer:
        SGDFactory.calls.append((model, kwargs))
        return torch.optim.SGD(model.parameters(), **kwargs)


def test_a_factory_is_called_with_the_model_and_the_kwargs(tmp_path: Path) -> None:
    SGDFactory.calls.clear()
    model = _Net()
    trainer = Trainer(
        model=model,
        args=_args(tmp_path),
        train_dataset=_data(),
        optimizer_cls_and_kwargs=(SGDFactory, {"lr": 0.3, "momentum": 0.5}),
    )
    trainer.train()
    assert SGDFactory.calls == [(model, {"lr": 0.3, "momentum": 0.5})]
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert len(trainer.optimizer.param_groups) == 1  # the factory's grouping, not ours


def test_what_counts_as_a_factory() -> None:
    assert not is_optimizer_factory(torch.optim.AdamW)
    assert is_optimizer_factory(SGDFactory)
    assert is_optimizer_factory(SGDFactory().__call__)


def test_params_in_the_kwargs_replace_the_groups(tmp_path: Path) -> None:
    model = _Net()
    groups = [{"params": [model.blocks[1].weight], "lr": 0.5}]
    kwargs = {"params": groups, "lr": 0.1}
    optimizer = create_optimizer(
        model, _args(tmp_path), optimizer_cls_and_kwargs=(torch.optim.SGD, kwargs)
    )
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["params"] == [model.blocks[1].weight]
    assert optimizer.param_groups[0]["lr"] == 0.5
    assert kwargs == {"params": groups, "lr": 0.1}  # the caller's dict is not changed


class ModelSGD(torch.optim.SGD):
    """Takes the model as its first argument, as LOMO does."""

    def __init__(self, model: nn.Module, lr: float) -> None:
        super().__init__(model.parameters(), lr=lr)
        self.model = model


def test_model_in_the_kwargs_is_passed_as_the_first_argument(tmp_path: Path) -> None:
    model = _Net()
    optimizer = create_optimizer(
        model, _args(tmp_path), optimizer_cls_and_kwargs=(ModelSGD, {"model": model, "lr": 0.1})
    )
    assert optimizer.model is model


# --- bitsandbytes 8-bit: embeddings keep 32-bit state --------------------------------------


@pytest.fixture
def fake_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str, dict]]:
    """A ``bitsandbytes`` whose global manager records the overrides registered."""
    registered: list[tuple[Any, str, dict]] = []

    class GlobalOptimManager:
        @classmethod
        def get_instance(cls) -> GlobalOptimManager:
            return cls()

        def register_module_override(self, module: Any, name: str, config: dict) -> None:
            registered.append((module, name, config))

    package, optim = types.ModuleType("bitsandbytes"), types.ModuleType("bitsandbytes.optim")
    optim.GlobalOptimManager = GlobalOptimManager  # type: ignore[attr-defined]  # a stand-in
    package.optim = optim  # type: ignore[attr-defined]  # a stand-in
    monkeypatch.setitem(sys.modules, "bitsandbytes", package)
    monkeypatch.setitem(sys.modules, "bitsandbytes.optim", optim)
    return registered


class AdamW(torch.optim.AdamW):
    """Stands in for ``bitsandbytes.optim.AdamW``: the reference recognises the package
    by the class's qualified name and the bits by the ``optim_bits`` kwarg."""

    def __init__(self, params: Any, lr: float, optim_bits: int = 32) -> None:
        super().__init__(params, lr=lr)


AdamW.__module__ = "bitsandbytes.optim.adamw"


@pytest.mark.parametrize(
    ("optimizer_cls", "bits", "overridden"),
    [
        (AdamW, 8, True),
        (AdamW, 32, False),
        (type("Other", (AdamW,), {"__module__": "x"}), 8, False),
    ],
)
def test_embedding_weights_get_a_32_bit_override(
    fake_bitsandbytes: list, tmp_path: Path, optimizer_cls: type, bits: int, overridden: bool
) -> None:
    model = _Net()
    create_optimizer(
        model,
        _args(tmp_path),
        optimizer_cls_and_kwargs=(optimizer_cls, {"lr": 0.1, "optim_bits": bits}),
    )
    expected = [(model.embed, "weight", {"optim_bits": 32})]
    expected += [(model.blocks[0], "weight", {"optim_bits": 32})]
    assert fake_bitsandbytes == (expected if overridden else [])


# --- optim_args values --------------------------------------------------------------------


FALSE_WORDS = ["no", "Off", "n", "f", "0", "FALSE"]
TRUE_WORDS = ["yes", "on", "Y", "t", "1", "true"]


@pytest.mark.parametrize(
    ("word", "value"),
    [(word, False) for word in FALSE_WORDS] + [(word, True) for word in TRUE_WORDS],
)
def test_truth_words_become_booleans(tmp_path: Path, word: str, value: bool) -> None:
    args = _args(tmp_path, optim="sgd", optim_args=f"momentum=0.9,nesterov={word}")
    kwargs = get_optimizer_cls_and_kwargs(args)[1]
    assert kwargs["nesterov"] is value
    assert kwargs["momentum"] == 0.9


def test_an_optional_flag_is_known_by_its_annotation(tmp_path: Path) -> None:
    """``foreach: bool | None = None``: no default to go by, the annotation tells."""
    args = _args(tmp_path, optim="adamw_torch", optim_args="foreach=no,maximize=off")
    kwargs = get_optimizer_cls_and_kwargs(args)[1]
    assert kwargs["foreach"] is False
    assert kwargs["maximize"] is False
    args = _args(tmp_path, optim="adafactor", optim_args="beta1=abc")  # beta1: float | None
    with pytest.raises(ValueError, match="beta1='abc' is not a number"):
        get_optimizer_cls_and_kwargs(args)


@pytest.mark.parametrize(
    ("optim", "optim_args", "message"),
    [
        ("sgd", "momentum=abc", "momentum='abc' is not a number"),
        ("sgd", "momentum=0.9,nesterov=maybe", "nesterov='maybe' is not a truth value"),
        ("sgd", "momentum=true", "momentum=True is not a number"),
        ("adamw_torch", "betas=0.9", "betas=0.9 is not a tuple"),
        ("rmsprop", "centered=2", "centered=2 is not a truth value"),
    ],
)
def test_values_of_the_wrong_kind_are_refused_by_key(
    tmp_path: Path, optim: str, optim_args: str, message: str
) -> None:
    args = _args(tmp_path, optim=optim, optim_args=optim_args)
    with pytest.raises(ValueError, match=message):
        get_optimizer_cls_and_kwargs(args)


def test_numbers_written_as_text_in_a_mapping_are_converted() -> None:
    args = SimpleNamespace(
        optim="sgd", learning_rate=0.1, optim_args={"momentum": "0.5", "nesterov": "on"}
    )
    assert get_optimizer_cls_and_kwargs(args)[1] == {"lr": 0.1, "momentum": 0.5, "nesterov": True}


# --- GrokAdamW ----------------------------------------------------------------------------


@pytest.fixture
def fake_grokadamw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable ``grokadamw`` with the real constructor's signature."""
    if importlib.util.find_spec("grokadamw") is not None:
        pytest.skip("the real grokadamw is installed")
    package = tmp_path / "site" / "grokadamw"
    package.mkdir(parents=True)
    source = """
        import torch

        class GrokAdamW(torch.optim.AdamW):
            def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                         weight_decay=1e-2, alpha_init=0.98, lamb=2.0, gamma=0.1,
                         grokking_signal_fns=None, grokking_signal_decay_rate=0.1,
                         gradient_clipping=1.0):
                super().__init__(params, lr=lr, betas=betas, eps=eps)
    """
    (package / "__init__.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("grokadamw", None)
    importlib.invalidate_caches()


def test_grokadamw_gets_the_learning_rate_and_its_own_arguments_only(
    fake_grokadamw: None, tmp_path: Path
) -> None:
    args = _args(
        tmp_path, optim="grokadamw", learning_rate=0.01, adam_beta1=0.5, optim_args="lamb=3"
    )
    optimizer_cls, kwargs = get_optimizer_cls_and_kwargs(args)
    assert optimizer_cls.__name__ == "GrokAdamW"
    assert kwargs == {
        "lr": 0.01,
        "alpha_init": 0.98,
        "lamb": 3.0,
        "gamma": 0.1,
        "grokking_signal_decay_rate": 0.1,
        "gradient_clipping": 1.0,
    }
    optimizer = create_optimizer(nn.Linear(2, 2), args)
    assert optimizer.defaults["betas"] == (0.9, 0.999)  # its own default, not adam_beta1
