"""Torch image classifiers: the classic tutorial CNN and a smaller, faster one.

Both take float32 images [n, in_channels, height, width] and return logits float32 [n, n_classes].
Convolutions keep the spatial size (same padding) and each max-pool halves it, rounding up, so any
image of at least 1x1 pixels works (8x8 digits, 28x28 MNIST, 32x32 CIFAR).
"""
from __future__ import annotations

import torch
from torch import nn

from miaudit.errors import InputError


def _image_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from an int (square) or a pair; both must be positive."""
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(hw) != 2 or min(hw) < 1:
        raise InputError(f"image_size: expected a positive int or (height, width), got {image_size!r}")
    return int(hw[0]), int(hw[1])


def _pooled(size: int, n_pools: int) -> int:
    """Spatial size after n_pools ceil-mode 2x2 max-pools."""
    for _ in range(n_pools):
        size = -(-size // 2)
    return size


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


class TutorialCNN(nn.Module):
    """conv32-conv32-maxpool-conv64-conv64-maxpool, dense 512, dense n_classes (3x3 convs, ReLU).

    dropout > 0 adds Dropout(dropout) after both pools and after the 512-unit dense layer.
    """

    def __init__(self, in_channels: int, image_size: int | tuple[int, int], n_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        h, w = _image_hw(image_size)
        drop = (lambda: nn.Dropout(dropout)) if dropout > 0 else nn.Identity
        self.features = nn.Sequential(
            _conv(in_channels, 32, 3), nn.ReLU(), _conv(32, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True), drop(),
            _conv(32, 64, 3), nn.ReLU(), _conv(64, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True), drop(),
        )
        flat = 64 * _pooled(h, 2) * _pooled(w, 2)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 512), nn.ReLU(), drop(), nn.Linear(512, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """conv16-maxpool-conv32-maxpool, dense 128, dense n_classes (ReLU).

    Kernels are 5x5 for images of at least 16 pixels a side, 3x3 for smaller ones.
    dropout > 0 adds Dropout(dropout) after the 128-unit dense layer.
    """

    def __init__(self, in_channels: int, image_size: int | tuple[int, int], n_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        h, w = _image_hw(image_size)
        kernel = 5 if min(h, w) >= 16 else 3
        self.features = nn.Sequential(
            _conv(in_channels, 16, kernel), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            _conv(16, 32, kernel), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        )
        flat = 32 * _pooled(h, 2) * _pooled(w, 2)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(), nn.Linear(128, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
