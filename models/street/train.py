"""Fine-tune the COCO detector on rendered street scenes: ``python -m models.street.train`` (``make models-street``).

The real-world COCO CenterNet (models/coco-centernet.onnx) finds few of the street simulator's flat-shaded
vehicles (issue 15: standing cars in 14.5 % of frames), while the parking analyzer needs nearly all of
them. This run starts from its weights and keeps its graph, classes and decoding:

1. renders street stills with their vehicle boxes and the original's ``person`` heatmap
   (``models.street.data``; cached under models/work/street/cache);
2. trains every convolution of the same graph, read into torch by ``models.coco.torchnet``, on crops of
   ``--crop`` pixels cut from stills letterboxed at ``--size`` (the network is fully convolutional, so
   crops teach it at the deployment scale for a third of the cost). Loss: CenterNet's focal loss on the
   vehicle heatmaps (elliptic Gaussian targets), GIoU on the boxes near each centre, and the original's
   person heatmap as a soft target (the renderer has no person boxes; people still need finding for the
   privacy blur). AdamW, cosine schedule, EMA, bfloat16 autocast where the CPU has it;
3. writes the EMA weights into the original file built for ``--size`` (``write_weights``): the same nodes,
   peak picking, box decoding and metadata, so the runtime reads it exactly as it reads the original;
4. checks the ONNX file against the torch network on validation stills (tolerance stated below), and
   scores it, the original at the same size and the shipped original at 320 on the validation stills
   with the runtime's own ``Detector``: AP@0.5 and precision/recall per class.

The parking figures (``citywatch eval parking --model``) and the real-photo check
(``citywatch eval ebike --images``) are separate commands; the card (``models.street.card``) gathers them.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import Tensor

from models.coco.optimize import with_input_size, with_outputs
from models.coco.torchnet import BOX_EDGES, CLASS_LOGITS, STRIDE, OnnxNet
from models.ebike.train import native_bfloat16
from models.street.data import (
    LABELS,
    TRAIN_FIRST_SEED,
    VALIDATION_FIRST_SEED,
    Still,
    decode,
    render_set,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOURCE_MODEL = PROJECT_ROOT / "models" / "coco-centernet.onnx"
WORK = PROJECT_ROOT / "models" / "work" / "street"
PERSON = LABELS.index("person")
VEHICLE_CHANNELS = [i for i, name in enumerate(LABELS) if name != "person"]
GAUSSIAN_ALPHA = 0.54  # TTFNet: the heatmap's sigma is this share of the box's half size / 3
BOX_REGION = 0.3  # cells whose target heat is at least this learn the box
ONNX_TOLERANCE = {"scores": 1e-3, "boxes_px": 0.05}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m models.street.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--size", type=int, default=512, help="input size of the exported file (default 512)")
    parser.add_argument(
        "--crop", type=int, default=320, help="square training crop at that scale (default 320)"
    )
    parser.add_argument("--scenes", type=int, default=700, help="training scenes (default 700)")
    parser.add_argument("--stills", type=int, default=8, help="stills per training scene (default 8)")
    parser.add_argument("--validation-scenes", type=int, default=40, help="validation scenes, 4 stills each")
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=4e-4, help="peak learning rate (AdamW)")
    parser.add_argument("--time-budget-min", type=float, default=40.0, help="the schedule anneals to this")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    parser.add_argument("--init", type=Path, default=SOURCE_MODEL, help="the COCO file to start from")
    parser.add_argument("--out", type=Path, default=WORK / "run", help="where street-detector.onnx goes")
    parser.add_argument("--cache", type=Path, default=WORK / "cache")
    parser.add_argument("--seed", type=int, default=0, help="training order and augmentation")
    parser.add_argument("--smoke", action="store_true", help="the whole chain on a few scenes, in a minute")
    args = parser.parse_args(argv)
    if args.size % 32 or args.crop % 32 or args.crop > args.size:
        parser.error("--size and --crop must be multiples of 32, with --crop <= --size")
    if args.smoke:
        args.scenes, args.stills, args.validation_scenes, args.epochs = 6, 4, 2, 1.0
        args.time_budget_min = 1.0
    return args


# ------------------------------------------------------------------------------------------ targets


def targets_for(
    boxes: np.ndarray, classes: np.ndarray, target: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Heatmaps [C, g, g], ignore mask [g, g], box per cell [4, g, g] and box weight [g, g] of one crop."""
    grid = size // STRIDE
    heat = np.zeros((len(LABELS), grid, grid), np.float32)
    ignore = np.zeros((grid, grid), np.float32)
    box_map = np.zeros((4, grid, grid), np.float32)
    box_weight = np.zeros((grid, grid), np.float32)
    area_taken = np.full((grid, grid), np.inf, np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
    for (x1, y1, x2, y2), cls, learn in zip(boxes, classes, target, strict=True):
        if not learn:
            c1, r1 = max(int(x1 // STRIDE), 0), max(int(y1 // STRIDE), 0)
            c2, r2 = min(math.ceil(x2 / STRIDE), grid), min(math.ceil(y2 / STRIDE), grid)
            ignore[r1:r2, c1:c2] = 1.0
            continue
        cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
        if not (0 <= cx < grid and 0 <= cy < grid):
            continue
        w, h = (x2 - x1) / STRIDE, (y2 - y1) / STRIDE
        sx, sy = max(GAUSSIAN_ALPHA * w / 6, 0.35), max(GAUSSIAN_ALPHA * h / 6, 0.35)
        ix, iy = int(cx), int(cy)
        gauss = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
        heat[cls] = np.maximum(heat[cls], gauss)
        heat[cls, iy, ix] = 1.0
        area = w * h
        region = (gauss >= BOX_REGION) & (area < area_taken)  # the smaller box wins a shared cell
        area_taken[region] = area
        box_map[:, region] = np.array([x1, y1, x2, y2], np.float32)[:, None]
        box_weight[region] = gauss[region]
    return heat, ignore, box_map, box_weight


class StreetCrops(torch.utils.data.Dataset[tuple[Tensor, ...]]):
    """Random crops of the letterboxed stills with their targets; horizontal flips and colour jitter."""

    def __init__(self, stills: list[Still], crop: int, seed: int) -> None:
        self.stills = stills
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.stills)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        still = self.stills[index]
        image = decode(still)
        size = image.shape[0]
        span = (size - self.crop) // STRIDE
        ox, oy = (int(self.rng.integers(0, span + 1)) * STRIDE for _ in range(2))
        image = image[oy : oy + self.crop, ox : ox + self.crop]
        person = still.person[
            oy // STRIDE : (oy + self.crop) // STRIDE, ox // STRIDE : (ox + self.crop) // STRIDE
        ]
        boxes = still.boxes - np.array([ox, oy, ox, oy], np.float32)
        clipped = np.clip(boxes, 0, self.crop)
        full = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-3) * np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
        kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        inside = kept_area > 0
        target = still.target & (kept_area >= 0.6 * full)  # mostly cut off by the crop: ignore it
        boxes, classes, target = clipped[inside], still.classes[inside], target[inside]
        if self.rng.random() < 0.5:
            image = image[:, ::-1]
            person = person[:, ::-1]
            boxes = np.stack(
                [self.crop - boxes[:, 2], boxes[:, 1], self.crop - boxes[:, 0], boxes[:, 3]], axis=1
            )
        image = self._jitter(np.ascontiguousarray(image))
        heat, ignore, box_map, box_weight = targets_for(boxes, classes, target, self.crop)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1) / 255.0
        return (
            torch.from_numpy(rgb),
            torch.from_numpy(heat),
            torch.from_numpy(ignore),
            torch.from_numpy(box_map),
            torch.from_numpy(box_weight),
            torch.from_numpy(np.ascontiguousarray(person, np.float32) / 255.0),
        )

    def _jitter(self, image: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + self.rng.uniform(-6, 6)) % 180
        hsv[..., 1] *= self.rng.uniform(0.7, 1.3)
        hsv[..., 2] *= self.rng.uniform(0.75, 1.25)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
        if self.rng.random() < 0.2:
            out = cv2.GaussianBlur(out, (3, 3), 0)
        return out


# ------------------------------------------------------------------------------------------ loss


def focal_loss(logits: Tensor, heat: Tensor, ignore: Tensor) -> Tensor:
    """CenterNet's penalty-reduced focal loss over the vehicle channels, normalised by the centres."""
    logits = logits.float()
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = heat.eq(1.0).float()
    negative_weight = (1 - heat).pow(4) * (1 - ignore.unsqueeze(1)) * (1 - positive)
    pos = -(F.logsigmoid(logits) * (1 - p).pow(2) * positive).sum()
    neg = -(F.logsigmoid(-logits) * p.pow(2) * negative_weight).sum()
    return (pos + neg) / positive.sum().clamp(min=1.0)


def giou_loss(edges: Tensor, box_map: Tensor, box_weight: Tensor) -> Tensor:
    """GIoU of the box each weighted cell predicts (grid point minus/plus its edges) against its target."""
    edges = edges.float()
    grid = edges.shape[-1]
    points = torch.arange(grid, dtype=torch.float32) * STRIDE
    px, py = points.view(1, 1, grid), points.view(1, grid, 1)
    x1, y1 = px - edges[:, 0], py - edges[:, 1]
    x2, y2 = px + edges[:, 2], py + edges[:, 3]
    tx1, ty1, tx2, ty2 = box_map.unbind(1)
    inter = (torch.min(x2, tx2) - torch.max(x1, tx1)).clamp(min=0) * (
        torch.min(y2, ty2) - torch.max(y1, ty1)
    ).clamp(min=0)
    area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    target_area = (tx2 - tx1) * (ty2 - ty1)
    union = area + target_area - inter + 1e-6
    hull = (torch.max(x2, tx2) - torch.min(x1, tx1)) * (torch.max(y2, ty2) - torch.min(y1, ty1)) + 1e-6
    giou = inter / union - (hull - union) / hull
    return ((1 - giou) * box_weight).sum() / box_weight.sum().clamp(min=1.0)


def person_loss(logits: Tensor, teacher: Tensor) -> Tensor:
    """The original's person heatmap as a soft target (binary cross-entropy minus its own entropy)."""
    logits = logits.float()
    teacher = teacher.clamp(1e-4, 1 - 1e-4)
    cross = F.binary_cross_entropy_with_logits(logits, teacher, reduction="none")
    entropy = -(teacher * teacher.log() + (1 - teacher) * (1 - teacher).log())
    return (cross - entropy).sum() / logits.shape[0] / 100.0


# ------------------------------------------------------------------------------------------ training


def train(args: argparse.Namespace, net: OnnxNet, stills: list[Still]) -> tuple[OnnxNet, dict[str, Any]]:
    torch.manual_seed(args.seed)
    dataset = StreetCrops(stills, args.crop, args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True)
    steps_planned = max(1, int(args.epochs * len(loader)))
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    ema = copy.deepcopy(net).eval()
    for parameter in ema.parameters():
        parameter.requires_grad_(False)
    bfloat16 = native_bfloat16()
    budget_s = args.time_budget_min * 60
    started = time.monotonic()
    step, smoothed = 0, dict[str, float]()
    progress = 0.0
    net.train()
    while progress < 1.0:
        for images, heat, ignore, box_map, box_weight, person in loader:
            # Cosine over whichever ends first: the planned steps or the time budget.
            progress = max(step / steps_planned, (time.monotonic() - started) / budget_s)
            if progress >= 1.0:
                break
            warm = min(1.0, (step + 1) / 100)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * warm * 0.5 * (1 + math.cos(math.pi * progress))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                logits, edges = net(images)
            parts = {
                "heat": focal_loss(logits[:, VEHICLE_CHANNELS], heat[:, VEHICLE_CHANNELS], ignore),
                "box": giou_loss(edges, box_map, box_weight),
                "person": person_loss(logits[:, PERSON], person),
            }
            loss = parts["heat"] + 2.0 * parts["box"] + parts["person"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            optimizer.step()
            decay = min(0.998, (1 + step) / (10 + step))
            with torch.no_grad():
                for shadow, live in zip(ema.parameters(), net.parameters(), strict=True):
                    shadow.mul_(decay).add_(live.detach(), alpha=1 - decay)
            for key, value in {**parts, "loss": loss}.items():
                smoothed[key] = 0.98 * smoothed.get(key, value.item()) + 0.02 * value.item()
            step += 1
            if step % 25 == 0:
                rate = step * args.batch / (time.monotonic() - started)
                left = min(
                    (steps_planned - step) * args.batch / rate, budget_s - (time.monotonic() - started)
                )
                say(
                    f"step {step}/{steps_planned} epoch {step / len(loader):.2f} "
                    + " ".join(f"{k} {v:.4f}" for k, v in smoothed.items())
                    + f" {rate:.1f} crops/s ETA {max(left, 0) / 60:.1f} min"
                )
    stopped_by = "planned steps" if step >= steps_planned else "time budget"
    minutes = (time.monotonic() - started) / 60
    return ema, {
        "steps": step,
        "steps_planned": steps_planned,
        "stopped_by": stopped_by,
        "epochs": round(step / len(loader), 2),
        "batch": args.batch,
        "crop": args.crop,
        "lr": args.lr,
        "minutes": round(minutes, 1),
        "crops_per_s": round(step * args.batch / max(minutes * 60, 1e-9), 1),
        "precision": "bfloat16 autocast" if bfloat16 else "float32",
        "threads": torch.get_num_threads(),
        "final_loss": {k: round(v, 4) for k, v in smoothed.items()},
    }


# ------------------------------------------------------------------------------------------ export, checks


def export(net: OnnxNet, source: onnx.ModelProto, size: int, path: Path, training: dict[str, Any]) -> str:
    model = net.write_weights(with_input_size(source, size))
    meta = {p.key: p.value for p in model.metadata_props}
    meta["description"] = (
        "MobileNetV3 CenterNet trained on COCO 2017 (real photographs), fine-tuned on citywatch's rendered "
        "street scenes (models/street/train.py)"
    )
    meta["finetuned"] = json.dumps({k: training[k] for k in ("steps", "epochs", "crop", "lr", "minutes")})
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_against_torch(net: OnnxNet, path: Path, stills: list[Still], size: int) -> dict[str, float]:
    """Largest difference between the ONNX file and the torch network it came from (float32, same pixels)."""
    import onnxruntime as ort

    model = with_outputs(onnx.load(path), (CLASS_LOGITS, BOX_EDGES))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = {"scores": 0.0, "boxes_px": 0.0}
    net = net.float().eval()
    for still in stills:
        rgb = (
            cv2.cvtColor(decode(still), cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        )
        logits, edges = session.run([CLASS_LOGITS, BOX_EDGES], {"images": rgb})
        with torch.no_grad():
            t_logits, t_edges = net(torch.from_numpy(rgb))
        worst["scores"] = max(
            worst["scores"], float(np.abs(_sigmoid(logits) - torch.sigmoid(t_logits).numpy()).max())
        )
        worst["boxes_px"] = max(worst["boxes_px"], float(np.abs(edges - t_edges.numpy()).max()))
    return worst


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-x)))


def score_stills(
    model_path: Path, stills: list[Still], thresholds: tuple[float, ...] = (0.2, 0.3, 0.4)
) -> dict[str, Any]:
    """AP@0.5 and precision/recall per vehicle class with the runtime's Detector; faint boxes are ignored."""
    from citywatch.evaluation.images import ImageScorer, LabelledBox, ScoredBox
    from edge.vision.detector import Detector, DetectorOptions

    detector = Detector.load(DetectorOptions(model_path=model_path, score_threshold=0.05, threads=1))
    vehicles = [name for name in LABELS if name != "person"]
    scorer = ImageScorer(vehicles)
    started = time.perf_counter()
    for still in stills:
        image = decode(still)
        found = [
            ScoredBox(d.label, d.score, d.x1, d.y1, d.x2, d.y2)
            for d in detector.detect(image)
            if d.label in vehicles
        ]
        truths = [
            LabelledBox(
                LABELS[int(c)], float(b[0]), float(b[1]), float(b[2]), float(b[3]), difficult=not bool(t)
            )
            for b, c, t in zip(still.boxes, still.classes, still.target, strict=True)
        ]
        scorer.add(found, truths)
    per_threshold = {f"{t:g}": scorer.summary(score_threshold=t) for t in thresholds}
    aps = [v["ap50"] for v in per_threshold[f"{thresholds[0]:g}"].values() if v["ap50"] is not None]
    return {
        "model": str(model_path),
        "input_size": detector.input_size,
        "images": len(stills),
        "classes": per_threshold["0.3"] if "0.3" in per_threshold else per_threshold[f"{thresholds[0]:g}"],
        "by_threshold": per_threshold,
        "map50": round(float(np.mean(aps)), 4) if aps else None,
        "ms_per_image": round((time.perf_counter() - started) * 1000 / max(len(stills), 1), 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, min(args.threads, 2)))
    source = onnx.load(args.init)
    args.out.mkdir(parents=True, exist_ok=True)
    teacher = args.out / f"coco-centernet-{args.size}.onnx"
    onnx.save(with_input_size(onnx.load(SOURCE_MODEL), args.size), teacher)
    common = {"stills_per_scene": args.stills, "size": args.size, "teacher": teacher, "workers": args.workers}
    validation = render_set(
        args.cache,
        first_seed=VALIDATION_FIRST_SEED,
        scenes=args.validation_scenes,
        say=say,
        **{**common, "stills_per_scene": 4},
    )
    stills = render_set(args.cache, first_seed=TRAIN_FIRST_SEED, scenes=args.scenes, say=say, **common)
    say(f"training on {len(stills)} stills ({args.scenes} scenes), validating on {len(validation)}")
    net = OnnxNet(source)
    ema, training = train(args, net, stills)
    path = args.out / "street-detector.onnx"
    digest = export(ema, source, args.size, path, training)
    say(f"wrote {path} (sha256 {digest[:16]}...)")
    check = check_against_torch(ema, path, validation[:8], args.size)
    if check["scores"] > ONNX_TOLERANCE["scores"] or check["boxes_px"] > ONNX_TOLERANCE["boxes_px"]:
        say(f"the ONNX file differs from the trained network beyond {ONNX_TOLERANCE}: {check}")
        return 1
    say(f"ONNX against torch: {check} (tolerance {ONNX_TOLERANCE})")
    scores = {
        "finetuned": score_stills(path, validation),
        "original_same_size": score_stills(teacher, validation),
        "original_shipped": score_stills(SOURCE_MODEL, validation),
    }
    for name, figures in scores.items():
        say(
            f"{name}: mAP@0.5 {figures['map50']} "
            + ", ".join(
                f"{c} AP {v['ap50']} P {v['precision']} R {v['recall']}"
                for c, v in figures["classes"].items()
                if v["truths"]
            )
        )
    metrics = {
        "model": {
            "path": str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path),
            "sha256": digest,
            "bytes": path.stat().st_size,
            "input_size": args.size,
            "labels": list(LABELS),
        },
        "source": {
            "path": str(args.init),
            "sha256": hashlib.sha256(Path(args.init).read_bytes()).hexdigest(),
        },
        "data": {
            "train_scenes": args.scenes,
            "train_seeds": [TRAIN_FIRST_SEED, TRAIN_FIRST_SEED + args.scenes - 1],
            "stills": len(stills),
            "validation_scenes": args.validation_scenes,
            "validation_seeds": [VALIDATION_FIRST_SEED, VALIDATION_FIRST_SEED + args.validation_scenes - 1],
            "validation_stills": len(validation),
            "target_boxes": int(sum(int(s.target.sum()) for s in stills)),
            "ignored_boxes": int(sum(int((~s.target).sum()) for s in stills)),
        },
        "training": training,
        "command": "python -m models.street.train " + " ".join(argv if argv is not None else sys.argv[1:]),
        "onnx_check": {"max_abs_diff": check, "tolerance": ONNX_TOLERANCE},
        "validation": scores,
    }
    (args.out / "street-detector.metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({"model": str(path), "map50": scores["finetuned"]["map50"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
