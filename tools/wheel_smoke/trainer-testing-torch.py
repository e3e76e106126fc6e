"""trainer-testing[torch]: the tiny models and datasets work."""

from trainer_testing.models import RegressionDataset, RegressionModel

dataset = RegressionDataset(size=8)
batch = dataset[0]
output = RegressionModel()(batch["input_x"][None], batch["labels"][None])
assert output["loss"].ndim == 0
print("trainer-testing[torch]: ok")
