"""Small models of every kind the analysis must describe, shared by the tests: a
ResNet-style block with batch norm, strides, dilation and groups; a 1-d audio net written
with (L, 1) kernels and functional calls; a PReLU net with overlapping ceil-mode pooling
(MTCNN's pattern); a Conv1d net with leaky ReLU and GELU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResNetBlock(nn.Module):
    """A strided stem with BN, then a basic residual block, then a dilated depthwise conv
    and a grouped 1×1 conv, average pooling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.grouped = nn.Conv2d(8, 4, 1, groups=2)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        y = F.relu(self.b1(self.c1(x)))
        x = F.relu(x + self.b2(self.c2(y)))
        return F.avg_pool2d(self.grouped(F.relu(self.dw(x))), 2)


class AudioNet(nn.Module):
    """A 1-d audio net written with (L, 1) kernels and functional calls, padded by F.pad."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, (9, 1), stride=(2, 1), padding=(4, 0))
        self.c2 = nn.Conv2d(4, 6, (5, 1))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(F.pad(x, (0, 0, 1, 2)))), (2, 1), (2, 1))
        return F.max_pool2d(F.relu(self.c2(x)), (2, 1))


class PReLUNet(nn.Module):
    """MTCNN's P-Net pattern: PReLU and overlapping ceil-mode max pooling."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)

    def forward(self, x):
        return self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x)))))


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(2, 6, 5, stride=2)
        self.b = nn.Conv1d(6, 6, 3)

    def forward(self, x):
        return F.gelu(self.b(F.max_pool1d(F.leaky_relu(self.a(x), 0.2), 2)))


def randomise_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))
    return model.eval()
