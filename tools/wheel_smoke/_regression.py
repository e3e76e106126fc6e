"""The model and data every smoke script that trains uses (torch only, no package of ours).

The scripts run by file path, so this folder is on ``sys.path`` and they import it by
name; it must not import our packages, which differ from one scenario to the next.
"""

import torch


class Regression(torch.nn.Module):
    """A linear regression with a transformers-style output: a dict holding the loss."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x, labels=None):
        prediction = self.linear(x).squeeze(-1)
        return {"loss": torch.nn.functional.mse_loss(prediction, labels), "logits": prediction}


def regression_data(count):
    """``count`` examples of 4 features and one target, the same ones on every call."""
    generator = torch.Generator().manual_seed(0)
    return [
        {"x": torch.randn(4, generator=generator), "labels": torch.randn((), generator=generator)}
        for _ in range(count)
    ]
