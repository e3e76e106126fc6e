"""Our module paths mirror transformers': a name we offer at ``trainer.X`` is offered at
``transformers.X`` too, so rewriting ``transformers`` to ``trainer`` in an import line
never points at a path the reference does not have, and constants keep their values.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

import trainer

PATHS = sorted(trainer._SUBMODULES)

REFERENCE_ONLY = {
    "trainer_utils": {"ShardedDDPOption", "default_hp_space_sigopt", "EvaluationStrategy"},
    "trainer_pt_utils": {"SequentialDistributedSampler"},
    "integrations": {"is_sigopt_available"},
    "trainer": {"ALL_LAYERNORM_LAYERS"},
}
"""Names v4.34 (the reference) has at these paths and the installed transformers 5 dropped
with the features (sharded DDP, SigOpt) or as long-deprecated names."""


@pytest.mark.parametrize("path", PATHS)
def test_each_name_exists_at_the_same_transformers_path(path: str) -> None:
    ours = importlib.import_module(f"trainer.{path}")
    theirs = importlib.import_module(f"transformers.{path}")
    missing = [
        name
        for name in ours.__all__
        if not hasattr(theirs, name) and name not in REFERENCE_ONLY.get(path, ())
    ]
    assert not missing, f"transformers.{path} has no {missing}"


@pytest.mark.parametrize("path", PATHS)
def test_constants_keep_the_reference_values(path: str) -> None:
    ours = importlib.import_module(f"trainer.{path}")
    theirs = importlib.import_module(f"transformers.{path}")
    for name in (name for name in ours.__all__ if name.isupper() and hasattr(theirs, name)):
        value, reference = getattr(ours, name), getattr(theirs, name)
        if name == "TYPE_TO_SCHEDULER_FUNCTION":  # our functions, under the same keys
            assert set(value) == set(reference), f"{path}.{name}"
            for key, function in value.items():
                assert function.__name__ == reference[key].__name__, f"{path}.{name}[{key}]"
            continue
        assert value == reference, f"{path}.{name}"


def test_schedule_functions_take_the_reference_parameters() -> None:
    from transformers import optimization as theirs

    from trainer import optimization as ours

    for name in (name for name in ours.__all__ if name.startswith("get_")):
        expected = list(inspect.signature(getattr(theirs, name)).parameters)
        assert list(inspect.signature(getattr(ours, name)).parameters) == expected, name


def test_rewritten_import_lines_run() -> None:
    """Import lines as example scripts and callbacks write them, with the package renamed."""
    lines = [
        "from transformers.trainer_utils import get_last_checkpoint, set_seed, EvalPrediction",
        "from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy",
        "from transformers.trainer_callback import TrainerCallback, TrainerControl, TrainerState",
        "from transformers.training_args import TrainingArguments, OptimizerNames",
        "from transformers.training_args_seq2seq import Seq2SeqTrainingArguments",
        "from transformers.trainer_seq2seq import Seq2SeqTrainer",
        "from transformers.trainer import Trainer, TRAINER_STATE_NAME",
        "from transformers.integrations import TensorBoardCallback, is_wandb_available",
        "from transformers.optimization import get_scheduler, Adafactor, AdafactorSchedule",
        "from transformers.hf_argparser import HfArgumentParser",
        "from transformers.trainer_pt_utils import LabelSmoother",
    ]
    for line in lines:
        exec(line, {})  # the reference has every name
        exec(line.replace("transformers", "trainer", 1), {})
