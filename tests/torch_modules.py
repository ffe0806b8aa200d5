"""A small PyTorch network for the skorch case of the model zoo (importable by its pickle)."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """Four features in, two class scores out."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]
