"""GaLore, APOLLO and LOMO: names of the reference this trainer refuses at construction."""

from __future__ import annotations

import pytest

from trainer_args import HfArgumentParser, OptimizerNames, TrainingArguments

UNSUPPORTED = [
    "galore_adamw",
    "galore_adamw_8bit",
    "galore_adafactor",
    "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise",
    "galore_adafactor_layerwise",
    "apollo_adamw",
    "apollo_adamw_layerwise",
    "lomo",
    "adalomo",
]


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_construction_refuses_them_and_names_what_to_use(name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}' is not supported by this trainer") as caught:
        TrainingArguments("out", optim=name)
    assert "adamw_torch" in str(caught.value)
    assert "adamw_8bit" in str(caught.value)
    with pytest.raises(ValueError, match="not supported"):
        TrainingArguments("out", optim=OptimizerNames(name))


def test_set_optimizer_and_the_command_line_refuse_them_too() -> None:
    with pytest.raises(ValueError, match=r"name='lomo'.*not supported"):
        TrainingArguments("out").set_optimizer("lomo")
    with pytest.raises(ValueError, match="not supported"):
        HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(
            ["--output_dir", "out", "--optim", "galore_adamw"]
        )


def test_the_names_stay_members_of_the_enum() -> None:
    """Kept for the reference's sake: code that names them still imports."""
    assert set(UNSUPPORTED) <= set(OptimizerNames.values())
