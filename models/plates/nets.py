"""The plate reader's two small networks and their losses.

- ``Localiser``: a CenterNet-style heatmap at stride 4 over a 128x128 letterboxed vehicle crop: one
  logit for "plate centre here" and (dx, dy, log w, log h) per cell, in grid units.
- ``Recogniser``: a convolutional stack squeezes a 32x128 plate crop to 32 columns, two 1-D
  convolutions give each column context, and each column is classified as a gap or a character
  (read like a CTC best path: runs collapse, gaps drop); a second head classifies the plate colour
  from pooled features.

Both are plain convolutions with batch norm (fast on CPUs, exported as opset-17 ONNX).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOC_SIZE = 128
LOC_STRIDE = 4
REC_HEIGHT = 32
REC_WIDTH = 128
COLUMNS = 32


class ConvBN(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, kernel: int | tuple[int, int] = 3, stride: int = 1, act: bool = True
    ):
        pad = (kernel[0] // 2, kernel[1] // 2) if isinstance(kernel, tuple) else kernel // 2
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True) if act else nn.Identity(),
        )


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, act=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv(x))


class Localiser(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBN(3, 16, 3, 2), ConvBN(16, 24, 3, 2), Residual(24), ConvBN(24, 32, 3)
        )  # /4
        self.context = nn.Sequential(
            ConvBN(32, 48, 3, 2), Residual(48), ConvBN(48, 48, 3, 2), Residual(48)
        )  # /16
        self.fuse = nn.Sequential(ConvBN(32 + 48, 32, 1), ConvBN(32, 32, 3))
        self.head = nn.Conv2d(32, 5, 1)
        assert self.head.bias is not None
        nn.init.constant_(self.head.bias[0], -4.0)  # start predicting "no plate" almost everywhere

    def forward(self, x: Tensor) -> Tensor:
        f4 = self.stem(x)
        ctx = F.interpolate(self.context(f4), size=f4.shape[-2:], mode="nearest")
        return self.head(self.fuse(torch.cat([f4, ctx], dim=1)))


class Recogniser(nn.Module):
    """Per-column classifier: 32 columns across the plate patch, each "gap" (class 0) or the character
    whose cell centre it covers. Trained with the alignment the renderer knows (dense cross-entropy):
    CTC and an eight-slot head were both tried first and learnt far more slowly on a shared CPU."""

    def __init__(self, num_classes: int, num_colours: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvBN(3, 24, 3),
            nn.MaxPool2d(2),  # 16x64
            ConvBN(24, 48, 3),
            nn.MaxPool2d(2),  # 8x32
            ConvBN(48, 64, 3),
            Residual(64),
            nn.MaxPool2d((2, 1)),  # 4x32
            ConvBN(64, 96, 3),
        )
        self.squeeze = nn.Sequential(  # collapses the height: 1x32
            nn.Conv2d(96, 128, (4, 1), bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True)
        )
        self.sequence = nn.Sequential(
            nn.Conv1d(128, 128, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv1d(128, 128, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.classify = nn.Conv1d(128, num_classes, 1)
        self.colour = nn.Linear(96, num_colours)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        seq = self.squeeze(f).squeeze(2)
        seq = seq + self.sequence(seq)
        return self.classify(seq), self.colour(f.mean(dim=(2, 3)))  # [B, C, 32], [B, colours]


def localiser_loss(pred: Tensor, heat: Tensor, reg: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """CenterNet focal loss on the heatmap and L1 on the box at the cells ``mask`` marks."""
    p = torch.sigmoid(pred[:, 0]).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos)
    n = pos.sum().clamp(min=1)
    focal = -(pos_loss.sum() + neg_loss.sum()) / n
    m = mask.unsqueeze(1)
    l1 = (F.l1_loss(pred[:, 1:], reg, reduction="none") * m).sum() / (m.sum() * 4).clamp(min=1)
    return focal, l1


class RecogniserExport(nn.Module):
    """The ONNX graph: per-column class probabilities [1, 32, C] and colour probabilities [1, 3]."""

    def __init__(self, net: Recogniser) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, colour = self.net(x)
        return torch.softmax(logits, dim=1).transpose(1, 2), torch.softmax(colour, dim=1)


class LocaliserExport(nn.Module):
    """The ONNX graph: the centre heatmap through a sigmoid [1, 1, H, W] and the box map [1, 4, H, W]."""

    def __init__(self, net: Localiser) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(x)
        return torch.sigmoid(out[:, :1]), out[:, 1:]
