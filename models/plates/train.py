"""Train the plate reader on rendered plates: ``python -m models.plates.train``.

Steps: render seeded vehicle crops (``models.plates.synth``, cached under ``models/work/plates/``),
train the localiser and then the recogniser with torch on the CPU, export both to ONNX (opset 17,
static shapes; the recogniser carries its ``charset`` and ``colours`` as metadata) into
``models/plates/``, then score the shipped reader on held-out crops (``models.plates.evaluate``).

The pre-processing is ``edge.street.plates``'s own (letterbox, plate patch), so training and the
device see the same pixels. ``--smoke`` runs the chain on a few hundred crops in about a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edge.street.plates import (
    CHARSET,
    COLOURS,
    LOC_SIZE,
    LOC_STRIDE,
    LOCALISER_FILE,
    MODEL_DIR,
    REC_PAD_X,
    RECOGNISER_FILE,
    letterbox,
    plate_patch,
)
from models.plates.nets import COLUMNS
from simulators.street.plates import WEATHERED_SCALE, character_cells

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = PROJECT_ROOT / "models" / "work" / "plates"
MAX_THREADS = 2  # the CPU is shared by the whole team
TRAIN_SEED_BASE = 1_000  # held-out crops use seeds from models.plates.evaluate.HELDOUT_SEED_BASE
CHUNK = 250
CUTS_PER_PLATE = 1


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.plates.train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenes", type=int, default=24_000, help="rendered vehicle crops (default: %(default)s)"
    )
    parser.add_argument("--loc-scenes", type=int, default=12_000, help="of which the localiser trains on")
    parser.add_argument("--loc-epochs", type=int, default=8)
    parser.add_argument("--rec-epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2, help=f"torch threads, at most {MAX_THREADS}")
    parser.add_argument("--seed", type=int, default=0, help="which block of scene seeds to train on")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=MODEL_DIR, help="where the ONNX files go")
    parser.add_argument("--skip-eval", action="store_true", help="do not score the exported reader")
    parser.add_argument("--smoke", action="store_true", help="a few hundred crops, one epoch each")
    args = parser.parse_args(argv)
    args.threads = max(1, min(args.threads, MAX_THREADS))
    if args.smoke:
        args.scenes, args.loc_scenes, args.loc_epochs, args.rec_epochs = 500, 500, 1, 1
    args.loc_scenes = min(args.loc_scenes, args.scenes)
    return args


# --- data ----------------------------------------------------------------------------------------


def _render_chunk(job: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Scenes ``start`` .. ``start + count`` of run ``seed``: the localiser's and recogniser's inputs."""
    import cv2

    from models.plates.synth import make_scene

    cv2.setNumThreads(1)
    seed, start, count = job
    loc_images, loc_boxes, patches, texts, colours, labels = [], [], [], [], [], []
    for i in range(start, start + count):
        rng = np.random.default_rng([TRAIN_SEED_BASE + seed, i])
        height = round(math.exp(rng.uniform(math.log(15), math.log(85))))
        scene = make_scene(rng, height, with_plate=bool(rng.random() > 0.08))
        boxed, scale = letterbox(scene.image)
        loc_images.append(boxed)
        loc_boxes.append(
            np.array(scene.box, np.float32) * scale if scene.box else np.full(4, np.nan, np.float32)
        )
        if scene.box is None:
            continue
        x1, y1, x2, y2 = scene.box
        w, h = x2 - x1, y2 - y1
        for _ in range(CUTS_PER_PLATE):  # each cut as a slightly wrong localiser would make it
            jitter = rng.normal(0, [0.03 * w, 0.08 * h, 0.03 * w, 0.08 * h])
            cut = tuple(float(v) for v in np.array(scene.box, float) + jitter)
            patches.append(plate_patch(scene.image, cut))  # type: ignore[arg-type]
            labels.append(column_labels(scene.text, scene.colour, scene.box, cut))  # type: ignore[arg-type]
            texts.append(scene.text)
            colours.append(COLOURS.index(scene.colour))
    return {
        "loc_images": np.stack(loc_images),
        "loc_boxes": np.stack(loc_boxes),
        "patches": np.stack(patches) if patches else np.zeros((0, 32, 128, 3), np.uint8),
        "texts": np.array(texts, dtype=object),
        "colours": np.array(colours, np.int64),
        "labels": np.stack(labels) if labels else np.zeros((0, COLUMNS), np.int64),
    }


def render_dataset(args: argparse.Namespace) -> dict[str, np.ndarray]:
    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"scenes-seed{args.seed}-n{args.scenes}.npz"
    if path.is_file():
        say(f"dataset: cached {path}")
        with np.load(path, allow_pickle=True) as data:
            return {k: data[k] for k in data.files}
    jobs = [(args.seed, s, min(CHUNK, args.scenes - s)) for s in range(0, args.scenes, CHUNK)]
    start = time.perf_counter()
    parts: list[dict[str, np.ndarray]] = []
    with ProcessPoolExecutor(max_workers=args.threads) as pool:
        for k, part in enumerate(pool.map(_render_chunk, jobs), 1):
            parts.append(part)
            if k % 10 == 0 or k == len(jobs):
                say(
                    f"dataset: {k * CHUNK}/{args.scenes} crops rendered ({time.perf_counter() - start:.0f} s)"
                )
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    data["loc_images"] = data["loc_images"][: args.loc_scenes]
    data["loc_boxes"] = data["loc_boxes"][: args.loc_scenes]
    np.savez(path, **data)
    return data


# --- training ------------------------------------------------------------------------------------


def _loc_targets(boxes: Any, flip: Any) -> tuple[Any, Any, Any]:
    """Heatmap [B, G, G], box map [B, 4, G, G] and its mask [B, G, G] for letterboxed plate boxes."""
    import torch

    grid = LOC_SIZE // LOC_STRIDE
    b = boxes.shape[0]
    present = ~torch.isnan(boxes[:, 0])
    x1, y1, x2, y2 = torch.nan_to_num(boxes, nan=1.0).unbind(1)
    x1, x2 = torch.where(flip, LOC_SIZE - x2, x1), torch.where(flip, LOC_SIZE - x1, x2)
    cx, cy = (x1 + x2) / 2 / LOC_STRIDE, (y1 + y2) / 2 / LOC_STRIDE
    wc, hc = ((x2 - x1) / LOC_STRIDE).clamp(min=1e-3), ((y2 - y1) / LOC_STRIDE).clamp(min=1e-3)
    sx, sy = (wc / 8).clamp(min=0.7), (hc / 4).clamp(min=0.6)
    ys = torch.arange(grid).float().view(1, grid, 1)
    xs = torch.arange(grid).float().view(1, 1, grid)
    heat = torch.exp(
        -(
            ((xs - cx.view(b, 1, 1)) / sx.view(b, 1, 1)) ** 2
            + ((ys - cy.view(b, 1, 1)) / sy.view(b, 1, 1)) ** 2
        )
        / 2
    ).clamp(max=0.999)
    heat = heat * present.view(b, 1, 1)
    gx, gy = cx.long().clamp(0, grid - 1), cy.long().clamp(0, grid - 1)
    rows = torch.arange(b)[present]
    heat[rows, gy[present], gx[present]] = 1.0
    reg = torch.zeros(b, 4, grid, grid)
    mask = torch.zeros(b, grid, grid)
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            xx, yy = gx + ox, gy + oy
            ok = present & (xx >= 0) & (xx < grid) & (yy >= 0) & (yy < grid)
            r, xi, yi = torch.arange(b)[ok], xx[ok], yy[ok]
            values = torch.stack([cx[ok] - xi, cy[ok] - yi, wc[ok].log(), hc[ok].log()], dim=1)
            reg[r, :, yi, xi] = values
            mask[r, yi, xi] = 1.0
    return heat, reg, mask


def _schedule(optimizer: Any, steps: int, lr: float) -> Any:
    import torch

    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(1, steps), pct_start=0.15
    )


def train_localiser(args: argparse.Namespace, data: dict[str, np.ndarray]) -> Any:
    import torch

    from models.plates.nets import Localiser, localiser_loss

    torch.manual_seed(args.seed)
    net = Localiser()
    images = torch.from_numpy(data["loc_images"])
    boxes = torch.from_numpy(data["loc_boxes"])
    n = len(images)
    steps = args.loc_epochs * math.ceil(n / args.batch)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = _schedule(optimizer, steps, args.lr)
    for epoch in range(args.loc_epochs):
        net.train()
        order = torch.randperm(n)
        totals = [0.0, 0.0]
        start = time.perf_counter()
        for k in range(0, n, args.batch):
            idx = order[k : k + args.batch]
            x = images[idx].permute(0, 3, 1, 2).float() / 255.0 - 0.5
            flip = torch.rand(len(idx)) < 0.5
            x[flip] = x[flip].flip(-1)
            x = x * (0.7 + 0.6 * torch.rand(len(idx), 1, 1, 1))  # contrast
            heat, reg, mask = _loc_targets(boxes[idx], flip)
            focal, l1 = localiser_loss(net(x), heat, reg, mask)
            loss = focal + l1
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            totals[0] += float(focal.detach()) * len(idx)
            totals[1] += float(l1.detach()) * len(idx)
        say(
            f"localiser epoch {epoch + 1}/{args.loc_epochs}: focal {totals[0] / n:.3f} box {totals[1] / n:.3f} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    return net.eval()


def column_labels(
    text: str,
    colour: str,
    plate_box: tuple[float, float, float, float],
    cut_box: tuple[float, float, float, float],
) -> np.ndarray:
    """[32] classes for the patch cut at ``cut_box``: a character's class on the columns over the middle
    of its cell, 0 (gap) elsewhere, from the layout the renderer drew (tilt of up to 4 degrees ignored)."""
    index = {ch: i + 1 for i, ch in enumerate(CHARSET)}
    x1, _, x2, _ = plate_box
    w = x2 - x1
    inset = (1 - WEATHERED_SCALE) / 2
    cx1, _, cx2, _ = cut_box
    cw = max(1.0, cx2 - cx1)
    gx1, gx2 = cx1 - REC_PAD_X * cw, cx2 + REC_PAD_X * cw
    columns = (np.arange(COLUMNS) + 0.5) / COLUMNS * (gx2 - gx1) + gx1  # column centres in crop pixels
    labels = np.zeros(COLUMNS, np.int64)
    for ch, (left, right) in zip(text, character_cells(colour), strict=True):  # type: ignore[arg-type]
        a = x1 + w * (inset + WEATHERED_SCALE * left)
        b = x1 + w * (inset + WEATHERED_SCALE * right)
        centre, half = (a + b) / 2, (b - a) * 0.3
        labels[np.abs(columns - centre) <= half] = index[ch]
        if not (np.abs(columns - centre) <= half).any():  # a narrow cell still owns its nearest column
            labels[int(np.argmin(np.abs(columns - centre)))] = index[ch]
    return labels


def train_recogniser(args: argparse.Namespace, data: dict[str, np.ndarray]) -> Any:
    import torch
    import torch.nn.functional as F

    from models.plates.nets import Recogniser

    torch.manual_seed(args.seed + 1)
    net = Recogniser(num_classes=len(CHARSET) + 1, num_colours=len(COLOURS))
    patches = torch.from_numpy(data["patches"])
    colours = torch.from_numpy(data["colours"])
    labels = torch.from_numpy(data["labels"])
    n = len(patches)
    batch = args.batch * 2
    steps = args.rec_epochs * math.ceil(n / batch)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = _schedule(optimizer, steps, args.lr)
    for epoch in range(args.rec_epochs):
        net.train()
        order = torch.randperm(n)
        totals = [0.0, 0.0]
        start = time.perf_counter()
        for k in range(0, n, batch):
            idx = order[k : k + batch]
            x = patches[idx].permute(0, 3, 1, 2).float() / 255.0 - 0.5
            x = x * (0.7 + 0.6 * torch.rand(len(idx), 1, 1, 1)) + 0.1 * (torch.rand(len(idx), 1, 1, 1) - 0.5)
            logits, colour_logits = net(x)
            loss_chars = F.cross_entropy(logits, labels[idx])
            loss_colour = F.cross_entropy(colour_logits, colours[idx])
            loss = loss_chars + 0.2 * loss_colour
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            totals[0] += float(loss_chars.detach()) * len(idx)
            totals[1] += float(loss_colour.detach()) * len(idx)
        say(
            f"recogniser epoch {epoch + 1}/{args.rec_epochs}: chars {totals[0] / n:.3f} colour {totals[1] / n:.3f} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    return net.eval()


# --- export --------------------------------------------------------------------------------------


def export(loc: Any, rec: Any, out: Path, provenance: dict[str, str]) -> dict[str, str]:
    import onnx
    import torch

    from models.plates.nets import REC_HEIGHT, REC_WIDTH, LocaliserExport, RecogniserExport

    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    graphs: tuple[tuple[Any, ...], ...] = (
        (
            LocaliserExport(loc),
            torch.zeros(1, 3, LOC_SIZE, LOC_SIZE),
            LOCALISER_FILE,
            "image",
            ["heat", "boxes"],
            {},
        ),
        (
            RecogniserExport(rec),
            torch.zeros(1, 3, REC_HEIGHT, REC_WIDTH),
            RECOGNISER_FILE,
            "plate",
            ["chars", "colour"],
            {"charset": CHARSET, "colours": ",".join(COLOURS)},
        ),
    )
    for module, dummy, name, input_name, outputs, extra in graphs:
        path = out / name
        with torch.no_grad():
            torch.onnx.export(
                module.eval(),
                (dummy,),
                str(path),
                input_names=[input_name],
                output_names=outputs,
                opset_version=17,
                dynamo=False,
            )
        model = onnx.load(str(path))
        for key, value in {**provenance, **extra}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(path))
        digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        say(f"exported {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return digests


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    say(f"rendering {args.scenes} vehicle crops (seed block {args.seed})")
    data = render_dataset(args)
    say(f"{len(data['loc_images'])} localiser images, {len(data['patches'])} plate patches")
    loc = train_localiser(args, data)
    rec = train_recogniser(args, data)
    command = "python -m models.plates.train " + " ".join(argv or [])
    provenance = {"trained_by": command.strip(), "scenes": str(args.scenes), "seed": str(args.seed)}
    digests = export(loc, rec, args.out, provenance)
    (args.cache / "last-run.json").write_text(
        json.dumps(
            {"args": vars(args) | {"cache": str(args.cache), "out": str(args.out)}, "sha256": digests},
            indent=2,
        )
    )
    if not args.skip_eval:
        from models.plates.evaluate import main as evaluate

        evaluate(["--model-dir", str(args.out), "--per-height", "40" if args.smoke else "100"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
