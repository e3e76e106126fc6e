"""trainer-args alone: arguments build, serialise and parse without torch."""

import importlib.util
import sys
import tempfile
from pathlib import Path

from trainer_args import HfArgumentParser, Seq2SeqTrainingArguments, TrainingArguments

assert importlib.util.find_spec("torch") is None, "trainer-args must not pull in torch"

args = TrainingArguments("out", eval_strategy="steps", eval_steps=100, learning_rate=3e-4)
args = args.set_save(strategy="steps", steps=500)
assert '"learning_rate": 0.0003' in args.to_json_string()
assert Seq2SeqTrainingArguments("out", predict_with_generate=True).predict_with_generate
with tempfile.TemporaryDirectory() as folder:
    config = Path(folder) / "args.yaml"
    config.write_text("output_dir: out\nnum_train_epochs: 2\n")
    (parsed,) = HfArgumentParser(TrainingArguments).parse_yaml_file(str(config))
    assert parsed.num_train_epochs == 2
(from_cli,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(
    ["--output_dir", "o", "--per_device_train_batch_size", "4"]
)
assert from_cli.per_device_train_batch_size == 4
try:
    _ = args.device
except ImportError as error:
    assert "pip install" in str(error), error
else:
    raise AssertionError("args.device without torch must say what to install")
assert "torch" not in sys.modules
print("trainer-args: ok")
