"""A tiny anchor-free detector (three scales, strides 8/16/32) and its training loss.

Backbone of plain 3x3 convolutions with residual blocks, a small top-down feature pyramid, and per-scale
heads predicting, at every grid point, distances to the box sides (left, top, right, bottom, in
strides, through softplus) and one logit per class. Training follows FCOS / GFL: points inside a
box near its centre, at the scale matching the box size, are positives; classes are learnt with a
quality focal loss whose target is the IoU of the predicted box, boxes with a GIoU loss.

``ExportWrapper`` decodes to the project's ``citywatch`` ONNX layout: ``boxes`` [1, N, 4] (x1, y1,
x2, y2 in input pixels) and ``scores`` [1, N, C] (sigmoid class probabilities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRIDES = (8, 16, 32)
# Box sizes (longest side-distance, pixels) each scale is responsible for; overlapping on purpose.
SCALE_RANGES = ((0.0, 64.0), (40.0, 128.0), (96.0, 1e5))
CENTRE_RADIUS = 2.5  # in strides


class ConvBN(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True
    ):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True) if act else nn.Identity(),
        )


class Residual(nn.Module):
    """A 3x3 convolution with a residual connection (plain convolutions train fastest on CPUs)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, act=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv(x))


class TinyDetector(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, ...] = (16, 32, 48, 80, 112), neck: int = 48):
        super().__init__()
        self.num_classes = num_classes
        w = widths
        self.stem = ConvBN(3, w[0], 3, 2)  # /2
        self.stage2 = nn.Sequential(ConvBN(w[0], w[1], 3, 2), Residual(w[1]))  # /4
        self.stage3 = nn.Sequential(ConvBN(w[1], w[2], 3, 2), Residual(w[2]), Residual(w[2]))  # /8
        self.stage4 = nn.Sequential(ConvBN(w[2], w[3], 3, 2), Residual(w[3]), Residual(w[3]))  # /16
        self.stage5 = nn.Sequential(ConvBN(w[3], w[4], 3, 2), Residual(w[4]))  # /32
        self.lateral = nn.ModuleList([ConvBN(c, neck, 1) for c in (w[2], w[3], w[4])])
        self.smooth = nn.ModuleList([ConvBN(neck, neck, 3) for _ in STRIDES])
        self.heads = nn.ModuleList([ConvBN(neck, neck, 3) for _ in STRIDES])
        self.predict = nn.ModuleList([nn.Conv2d(neck, 4 + num_classes, 1) for _ in STRIDES])
        for layer in self.predict:
            assert isinstance(layer, nn.Conv2d) and layer.bias is not None
            nn.init.normal_(layer.weight, std=0.01)
            with torch.no_grad():
                layer.bias[:4].fill_(1.0)
                layer.bias[4:].fill_(-4.6)  # prior probability 0.01

    def forward(self, x: Tensor) -> list[Tensor]:
        """Raw maps per scale: [B, 4 + C, H/s, W/s] for s in STRIDES."""
        c2 = self.stage2(self.stem(x))
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        p5 = self.smooth[2](self.lateral[2](c5))
        p4 = self.smooth[1](self.lateral[1](c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest"))
        p3 = self.smooth[0](self.lateral[0](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest"))
        return [
            predict(head(p)) for p, head, predict in zip((p3, p4, p5), self.heads, self.predict, strict=True)
        ]


def grid_points(size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Point centres (N, 2), their stride (N,) and their scale's size range (N, 2) for an input size."""
    centres, strides, ranges = [], [], []
    for stride, (low, high) in zip(STRIDES, SCALE_RANGES, strict=True):
        cells = size // stride
        ys, xs = torch.meshgrid(torch.arange(cells), torch.arange(cells), indexing="ij")
        centre = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float().add(0.5).mul(stride)
        centres.append(centre)
        strides.append(torch.full((cells * cells,), float(stride)))
        ranges.append(torch.tensor([[low, high]]).expand(cells * cells, 2))
    return torch.cat(centres), torch.cat(strides), torch.cat(ranges)


def flatten(maps: list[Tensor]) -> Tensor:
    """[B, 4 + C, H, W] per scale -> [B, N, 4 + C]."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


def decode(raw: Tensor, centres: Tensor, strides: Tensor) -> tuple[Tensor, Tensor]:
    """Boxes [B, N, 4] (x1, y1, x2, y2 pixels) and class logits [B, N, C] from flattened raw maps."""
    distances = F.softplus(raw[..., :4]) * strides[None, :, None]
    boxes = torch.cat([centres[None] - distances[..., :2], centres[None] + distances[..., 2:]], dim=-1)
    return boxes, raw[..., 4:]


class ExportWrapper(nn.Module):
    """The network plus decoding, for ONNX export with static shapes."""

    def __init__(self, model: TinyDetector, size: int) -> None:
        super().__init__()
        self.model = model
        centres, strides, _ = grid_points(size)
        self.register_buffer("centres", centres)
        self.register_buffer("strides", strides)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        raw = flatten(self.model(images))
        boxes, logits = decode(raw, self.centres, self.strides)  # type: ignore[arg-type]
        return boxes, torch.sigmoid(logits)


# ------------------------------------------------------------------------------------------ loss


def box_iou_pairs(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """IoU and GIoU of matching rows of two [K, 4] box tensors."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    union = area_a + area_b - inter + 1e-6
    iou = inter / union
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(
        dim=1
    ) + 1e-6
    return iou, iou - (hull - union) / hull


def assign(boxes: Tensor, valid: Tensor, centres: Tensor, strides: Tensor, ranges: Tensor) -> Tensor:
    """Index of the ground-truth box each point learns from, [B, N] (-1 for background).

    ``boxes`` [B, M, 4] padded, ``valid`` [B, M]. A point is a candidate for a box when it lies inside
    it, within ``CENTRE_RADIUS`` strides of its centre, and the box's size suits the point's scale;
    among candidates, the smallest box wins.
    """
    x = centres[None, :, None, 0]
    y = centres[None, :, None, 1]
    x1, y1, x2, y2 = (boxes[:, None, :, i] for i in range(4))
    ltrb = torch.stack([x - x1, y - y1, x2 - x, y2 - y], dim=-1)  # [B, N, M, 4]
    inside = ltrb.min(dim=-1).values > 0
    radius = strides[None, :, None] * CENTRE_RADIUS
    near_centre = ((x - (x1 + x2) / 2).abs() < radius) & ((y - (y1 + y2) / 2).abs() < radius)
    reach = ltrb.max(dim=-1).values
    fits = (reach >= ranges[None, :, None, 0]) & (reach <= ranges[None, :, None, 1])
    candidate = inside & near_centre & fits & valid[:, None, :]
    area = ((x2 - x1) * (y2 - y1)).expand_as(candidate)
    area = torch.where(candidate, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(dim=2)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def detection_loss(
    maps: list[Tensor],
    targets: Tensor,
    valid: Tensor,
    centres: Tensor,
    strides: Tensor,
    ranges: Tensor,
    box_weight: float = 2.0,
) -> tuple[Tensor, dict[str, float]]:
    """Quality focal loss (classes) + GIoU loss (boxes).

    ``targets`` [B, M, 5] (class, x1, y1, x2, y2) padded to the most boxes in the batch; ``valid`` [B, M].
    """
    raw = flatten(maps)
    boxes, logits = decode(raw, centres, strides)
    quality = torch.zeros_like(logits)
    if targets.shape[1] > 0:
        owner = assign(targets[..., 1:], valid, centres, strides, ranges)
    else:
        owner = torch.full(logits.shape[:2], -1, dtype=torch.long)
    positive = owner >= 0
    count = max(1.0, float(positive.sum()))
    if positive.any():
        image_index, point_index = positive.nonzero(as_tuple=True)
        matched = targets[image_index, owner[positive]]
        predicted = boxes[image_index, point_index]
        iou, giou = box_iou_pairs(predicted, matched[:, 1:])
        quality[image_index, point_index, matched[:, 0].long()] = iou.detach().clamp(min=0.05)
        box_loss = (1 - giou).mean()
    else:
        box_loss = boxes.sum() * 0.0
    probability = logits.sigmoid()
    focal = F.binary_cross_entropy_with_logits(logits, quality, reduction="none") * (
        probability - quality
    ).abs().pow(2)
    class_loss = focal.sum() / count
    total = class_loss + box_weight * box_loss
    return total, {"cls": float(class_loss.detach()), "box": float(box_loss.detach()), "positives": count}


# ------------------------------------------------------------------------------------ fine-tuning


def load_onnx_weights(model: TinyDetector, onnx_path: str) -> None:
    """Start from an exported model (whose batch norms the export folded into the convolutions).

    Each convolution takes the folded weights; its batch norm becomes the identity plus the folded
    bias (running mean 0, variance 1 - eps). That is exactly the exported function as long as the batch
    norms stay in eval mode, so fine-tune with ``freeze_batch_norm_statistics``. Convolutions are
    matched in execution order (the ONNX graph's order), each pair checked by shape.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(onnx_path).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    onnx_convs = [node for node in graph.node if node.op_type == "Conv"]
    executed: list[nn.Conv2d] = []
    hooks = [
        module.register_forward_hook(lambda module, _inputs, _output: executed.append(module))
        for module in model.modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    if len(executed) != len(onnx_convs):
        raise ValueError(f"{onnx_path}: {len(onnx_convs)} convolutions, the network has {len(executed)}")
    batch_norm_after = {
        id(sequence[0]): sequence[1] for sequence in model.modules() if isinstance(sequence, ConvBN)
    }
    with torch.no_grad():
        for conv, node in zip(executed, onnx_convs, strict=True):
            weight = torch.from_numpy(weights[node.input[1]].copy())
            bias = torch.from_numpy(weights[node.input[2]].copy())
            if weight.shape != conv.weight.shape:
                raise ValueError(
                    f"{onnx_path}: a convolution of {tuple(weight.shape)} where {tuple(conv.weight.shape)} runs"
                )
            conv.weight.copy_(weight)
            norm = batch_norm_after.get(id(conv))
            if norm is None:
                assert conv.bias is not None, "a convolution without batch norm must have a bias"
                conv.bias.copy_(bias)
                continue
            assert isinstance(norm, nn.BatchNorm2d)
            norm.weight.fill_(1.0)
            norm.bias.copy_(bias)
            norm.running_mean.zero_()  # type: ignore[union-attr]
            norm.running_var.fill_(1.0 - norm.eps)  # type: ignore[union-attr]


def freeze_batch_norm_statistics(model: nn.Module) -> None:
    """Keep every batch norm on its running statistics (call after each ``model.train()``)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
