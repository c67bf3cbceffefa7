"""The bundled digits CNN in PyTorch: the architecture make_digits.py trains and exports.

``build()`` is the entry point a plan or ``edgebench optimize`` names
(``digits_torch.py:build``); ``digits.pt`` holds the trained weights (the state_dict that
digits.onnx was exported from).
"""

from torch import nn


def build() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
