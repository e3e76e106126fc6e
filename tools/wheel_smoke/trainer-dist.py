"""trainer-dist alone: a CPU runtime trains a step; DeepSpeed without its extra says how
to install it."""

import torch

from trainer_args import TrainingArguments
from trainer_core import MissingExtraError
from trainer_dist import build_runtime, set_seed

set_seed(0)
runtime = build_runtime(TrainingArguments("out", use_cpu=True))
model = runtime.prepare_model(torch.nn.Linear(4, 1), training=True)
optimizer = runtime.prepare_optimizer(torch.optim.SGD(model.parameters(), lr=0.1))
before = model.weight.detach().clone()
with runtime.autocast():
    loss = model(torch.randn(8, 4)).pow(2).mean()
runtime.backward(loss)
runtime.optimizer_step(optimizer)
assert not torch.equal(before, model.weight), "the step changed nothing"
assert runtime.num_processes == 1 and runtime.is_main_process

deepspeed_config = {"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 0}}
try:
    build_runtime(TrainingArguments("out", use_cpu=True, deepspeed=deepspeed_config))
except MissingExtraError as error:
    assert "pip install 'trainer-dist[deepspeed]'" in str(error), error
else:
    raise AssertionError("DeepSpeed without its extra must name the extra")
print("trainer-dist: ok")
