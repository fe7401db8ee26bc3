"""Train the elevator e-bike detector on synthetic scenes: ``python -m models.ebike.train`` (``make models``).

Steps, each with progress lines: render a seeded dataset of elevator stills (cached under
``models/work/``), train a tiny anchor-free detector with torch on the CPU, export ONNX (opset 17,
static shapes, the ``citywatch`` layout), score it on held-out stills rendered from different seeds,
on real photos when ``--real-images`` exists (evaluation only), time it on one onnxruntime thread,
and write the model card from those measured numbers.

``--smoke`` runs the whole chain on a few images in well under a minute (used by the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.ebike.heldout import DEFAULT_CACHE, evaluate_heldout

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = PROJECT_ROOT / "models"
DEFAULT_REAL = PROJECT_ROOT.parent / "shared" / "data" / "ebike-real"
MODEL_NAME = "ebike-detector"
MAX_THREADS = 2  # the CPU is shared by the whole team


def native_bfloat16() -> bool:
    """Whether this CPU does bfloat16 in hardware; emulated, autocast is about 10 times slower than fp32."""
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.ebike.train", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=12, help="passes over the data (default: %(default)s)")
    parser.add_argument("--images", type=int, default=6400, help="training stills (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=480, help="held-out stills (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="run seed, 0..89 (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help=f"torch threads, at most {MAX_THREADS}")
    parser.add_argument("--size", type=int, default=320, help="square input size (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument(
        "--time-budget-min",
        type=float,
        default=42.0,
        help="training wall-time budget; the schedule anneals to it if it comes first (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where the .onnx and .md go (default: models/)"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="rendered dataset cache directory")
    parser.add_argument(
        "--real-images", type=Path, default=DEFAULT_REAL, help="Pascal VOC photos to report (evaluation only)"
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="fine-tune from a run's checkpoint (ebike-detector.pt) or from an exported ebike-detector.onnx",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="bf16: bfloat16 autocast, fast only where the CPU has native bfloat16 (AVX512-BF16, AMX), "
        "about 10 times slower than fp32 elsewhere; auto picks by the CPU (default: %(default)s)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny end-to-end run (a few images, 1 epoch)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.heldout, args.epochs, args.batch = 32, 16, 1, 16
        args.out = args.out or PROJECT_ROOT / "models" / "work" / "smoke"
        args.real_images = None
    args.out = args.out or DEFAULT_OUT
    if not 0 <= args.seed < 90:
        parser.error("--seed must be in 0..89 (held-out scenes use seeds from 90,000,000)")
    if args.threads > MAX_THREADS:
        say(f"--threads {args.threads} capped to {MAX_THREADS}: the CPU is shared")
        args.threads = MAX_THREADS
    if args.size % 32:
        parser.error("--size must be a multiple of 32 (the coarsest stride)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from models.ebike import data
    from models.ebike.card import write_card

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.precision == "auto":
        args.precision = "bf16" if native_bfloat16() else "fp32"
    say(f"precision {args.precision}")
    started = time.monotonic()
    tag = "smoke" if args.smoke else f"s{args.seed}"
    train_seeds = [args.seed * 1_000_000 + i for i in range(args.images)]
    say(f"rendering {args.images} training stills (scene seeds {train_seeds[0]}..)")
    train_samples = data.render_dataset(
        args.cache / f"train-{tag}-{args.images}", train_seeds, args.images, workers=args.threads, say=say
    )
    say(f"rendering {args.heldout} held-out stills (scene seeds {data.HELDOUT_SEED}..)")
    heldout_samples = data.render_heldout(args.cache, args.heldout, workers=args.threads, say=say)
    render_s = time.monotonic() - started

    training = train(args, train_samples)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{MODEL_NAME}.onnx"
    export(training["model"], args, onnx_path, training)
    say(f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB)")
    checkpoint = args.out / f"{MODEL_NAME}.pt"  # the ONNX file has batch norms folded: not trainable
    torch.save(
        {
            "state_dict": training["model"].state_dict(),
            # A model started from an ONNX file keeps its rebuilt batch norms fixed; training them on
            # batch statistics again would throw its learnt scale away (the first steps' loss doubles).
            "frozen_batch_norm_statistics": training["frozen_batch_norm_statistics"],
        },
        checkpoint,
    )
    say(f"saved {checkpoint} (for --init)")

    heldout = evaluate_heldout(onnx_path, heldout_samples)
    say(f"held-out synthetic: mAP50 {heldout['map50']}, ebike {heldout['classes']['ebike']}")
    timing = measure_speed(onnx_path, args.size, runs=20 if args.smoke else 300)
    say(f"inference on 1 thread: median {timing['median_ms']} ms, p90 {timing['p90_ms']} ms")
    real: dict[str, Any] | None = None
    if args.real_images is not None and Path(args.real_images).is_dir():
        from citywatch.evaluation.images import evaluate_images

        real = evaluate_images(args.real_images, onnx_path)
        say(
            f"real photos ({real['images']}): ebike precision {real['ebike_precision']}, recall {real['ebike_recall']}"
        )
    elif args.real_images is not None:
        say(f"{args.real_images} is absent: real-photo figures are left out of the card")

    metrics = {
        "model": onnx_path.name,
        "size_bytes": onnx_path.stat().st_size,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "input_size": args.size,
        "labels": list(data.LABELS),
        "parameters": training["parameters"],
        "data": {
            "train_images": len(train_samples),
            "train_boxes": {
                name: int(sum((s.boxes[:, 0] == i).sum() for s in train_samples))
                for i, name in enumerate(data.LABELS)
            },
            "train_scene_seeds": f"{train_seeds[0]}..{train_seeds[0] + math.ceil(args.images / data.STILLS_PER_SCENE) - 1}",
            "heldout_images": len(heldout_samples),
            "heldout_scene_seeds": f"{data.HELDOUT_SEED}..{data.HELDOUT_SEED + math.ceil(args.heldout / data.STILLS_PER_SCENE) - 1}",
            "stills_per_scene": data.STILLS_PER_SCENE,
            "render_s": round(render_s, 1),
        },
        "training": {k: v for k, v in training.items() if k != "model"},
        "heldout": heldout,
        "real": real,
        "speed": timing,
        "run": {"seed": args.seed, "threads": args.threads, "smoke": args.smoke, "argv": sys.argv[1:]},
    }
    # Beside the model, except for `make models` (models/): there the committed metrics file is the one
    # extended with the ride figures, so a new run's raw figures go to models/work/ instead.
    metrics_dir = args.cache.parent if args.out.resolve() == DEFAULT_OUT.resolve() else args.out
    metrics_path = metrics_dir / f"{MODEL_NAME}.metrics.json"
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2))
    card_path = args.out / f"{MODEL_NAME}.md"
    write_card(card_path, metrics)
    say(f"wrote {card_path} and {metrics_path} in {time.monotonic() - started:.0f}s total")
    return 0


def train(args: argparse.Namespace, samples: list[Any]) -> dict[str, Any]:
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from models.ebike import data
    from models.ebike.net import (
        TinyDetector,
        detection_loss,
        freeze_batch_norm_statistics,
        grid_points,
        load_onnx_weights,
    )

    dataset = data.AugmentedStills(samples, args.size, seed=args.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        collate_fn=data.collate,
        num_workers=0,
        drop_last=len(samples) > args.batch,
    )
    model = TinyDetector(len(data.LABELS))
    frozen_statistics = args.init is not None and args.init.suffix == ".onnx"
    if frozen_statistics:
        load_onnx_weights(model, str(args.init))
        say(f"starting from {args.init} (batch-norm statistics frozen: the export folded them)")
    elif args.init is not None:
        checkpoint = torch.load(args.init, map_location="cpu", weights_only=True)
        if "state_dict" not in checkpoint:
            raise SystemExit(
                f"{args.init}: not a checkpoint of this script (no state_dict); retrain or use the .onnx"
            )
        model.load_state_dict(checkpoint["state_dict"])
        frozen_statistics = bool(checkpoint["frozen_batch_norm_statistics"])
        frozen = " (batch-norm statistics frozen, as in the run that saved it)" if frozen_statistics else ""
        say(f"starting from {args.init}{frozen}")
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    parameters = sum(p.numel() for p in model.parameters())
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.998), use_buffers=True)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for parameter in model.parameters():
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr
    )
    centres, strides, ranges = grid_points(args.size)
    steps_per_epoch = len(loader)
    total_steps = max(1, steps_per_epoch * args.epochs)
    warmup = min(300, total_steps // 10 + 1)
    budget_s = args.time_budget_min * 60
    say(
        f"training {parameters / 1e6:.2f}M parameters: {len(samples)} images x {args.epochs} epochs "
        f"= {total_steps} steps of {args.batch}, input {args.size}, {args.threads} threads, budget {args.time_budget_min} min"
    )
    started = time.monotonic()
    step = 0
    images_seen = 0
    history: list[dict[str, float]] = []
    running: dict[str, float] = {}
    stopped_early = False
    for epoch in range(1, args.epochs + 1):
        model.train()
        if frozen_statistics:
            freeze_batch_norm_statistics(model)
        for images, targets, valid in loader:
            elapsed = time.monotonic() - started
            progress = max(step / total_steps, elapsed / budget_s)
            if progress >= 1.0 and step > 0:
                stopped_early = True
                break
            lr = (
                args.lr * (step + 1) / warmup
                if step < warmup
                else args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = images.to(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                maps = model(images)
            loss, parts = detection_loss([m.float() for m in maps], targets, valid, centres, strides, ranges)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            ema.update_parameters(model)
            step += 1
            images_seen += len(images)
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                running[key] = 0.95 * running.get(key, value) + 0.05 * value
            if step % 20 == 0 or step == 1:
                elapsed = time.monotonic() - started
                rate = images_seen / max(elapsed, 1e-6)
                remaining = min((total_steps - step) * args.batch / max(rate, 1e-6), budget_s - elapsed)
                say(
                    f"epoch {epoch}/{args.epochs} step {step}/{total_steps} loss {running['loss']:.3f} "
                    f"(cls {running['cls']:.3f} box {running['box']:.3f}) lr {lr:.2e} {rate:.1f} img/s ETA {remaining / 60:.1f} min"
                )
        history.append({"epoch": epoch, **{k: round(v, 4) for k, v in running.items()}})
        if stopped_early:
            say(f"time budget reached in epoch {epoch}: stopping at step {step}/{total_steps}")
            break
    elapsed = time.monotonic() - started
    say(f"trained {step} steps in {elapsed / 60:.1f} min")
    final = ema.module
    return {
        "model": final,
        "parameters": parameters,
        "steps": step,
        "planned_steps": total_steps,
        "epochs_completed": round(step / max(1, steps_per_epoch), 2),
        "batch": args.batch,
        "lr": args.lr,
        "train_minutes": round(elapsed / 60, 1),
        "images_per_s": round(images_seen / max(elapsed, 1e-6), 1),
        "stopped_by_time_budget": stopped_early,
        "final_loss": {k: round(v, 4) for k, v in running.items()},
        "history": history,
        "ema_decay": 0.998,
        "precision": args.precision,
        "frozen_batch_norm_statistics": frozen_statistics,
        "augmentation": "zoom 0.7-1.7 with crop/pad, stretch +-15%, horizontal flip, HSV jitter, 10% grey, 20% blur",
    }


def export(model: Any, args: argparse.Namespace, path: Path, training: dict[str, Any]) -> None:
    import warnings

    import onnx
    import torch

    from models.ebike import data
    from models.ebike.net import ExportWrapper

    model = model.to(memory_format=torch.contiguous_format).float().eval()
    wrapper = ExportWrapper(model, args.size).eval()
    dummy = torch.zeros(1, 3, args.size, args.size)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (dummy,), str(tmp), input_names=["images"], output_names=["boxes", "scores"],
            opset_version=17, dynamo=False, do_constant_folding=True,
        )  # fmt: skip
    proto = onnx.load(str(tmp))
    metadata = {
        "layout": "citywatch",
        "input_size": str(args.size),
        "labels": json.dumps(list(data.LABELS)),
        "letterbox_pad": str(data.LETTERBOX_PAD),
        "description": "citywatch elevator e-bike detector trained on synthetic scenes only (see ebike-detector.md)",
        "training": json.dumps({"seed": args.seed, "images": args.images, "steps": training["steps"]}),
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = metadata["description"]
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    tmp.unlink()


def measure_speed(onnx_path: Path, size: int, runs: int) -> dict[str, Any]:
    import onnxruntime as ort

    from edge.vision.detector import Detector, DetectorOptions

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    blob = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    for _ in range(10):
        session.run(None, {"images": blob})
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        session.run(None, {"images": blob})
        times.append((time.perf_counter() - begin) * 1000)
    detector = Detector.load(DetectorOptions(model_path=onnx_path, threads=1))
    frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    full = []
    for _ in range(max(5, runs // 5)):
        begin = time.perf_counter()
        detector.detect(frame)
        full.append((time.perf_counter() - begin) * 1000)
    return {
        "runs": runs,
        "median_ms": round(float(np.median(times)), 2),
        "p90_ms": round(float(np.percentile(times, 90)), 2),
        "min_ms": round(float(np.min(times)), 2),
        "detect_720p_median_ms": round(float(np.median(full)), 2),
        "threads": 1,
        "onnxruntime": ort.__version__,
        "cpu": _cpu_name(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
