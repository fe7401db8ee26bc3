"""The street detector's model card, rendered from measured figures (never typed by hand).

Two steps, after ``python -m models.street.train`` wrote ``street-detector.onnx`` and its metrics:

```
python -m models.street.card collect RUN/street-detector.metrics.json --parking parking.json \\
    [--parking-reference coco.json] --out models/street-detector.metrics.json
python -m models.street.card render models/street-detector.metrics.json --out models/street-detector.md
```

A later ``citywatch eval parking`` of the same file replaces only the parking figures:
``python -m models.street.card parking models/street-detector.metrics.json --parking parking.json``.

``collect`` adds what the training run does not measure: the speed of one onnxruntime thread (the file
and the shipped COCO file, taking turns), the real-photo check (people and two-wheelers on
``../shared/data/ebike-real``, the file against the COCO original: what fine-tuning on renderings cost
on real photographs) and the ``citywatch eval parking`` summaries given (the JSON last line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from citywatch.evaluation.parking import TARGETS as PARKING_TARGETS
from models.coco.build import measure_speeds

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COCO_MODEL = PROJECT_ROOT / "models" / "coco-centernet.onnx"
STREET_FILE = "models/street-detector.onnx"
REAL_PHOTOS = PROJECT_ROOT.parent / "shared" / "data" / "ebike-real"
TWO_WHEELERS = {"motorcycle": "ebike", "bicycle": "ebike"}
PARKING_FIGURES = (*PARKING_TARGETS, "warning_recall")  # the figures, then one without a target


# ------------------------------------------------------------------------------------------ collect


def real_photo_check(model: Path, real_dir: Path) -> dict[str, Any]:
    """Person and two-wheeler figures on the real elevator photos (evaluation only)."""
    from citywatch.evaluation.images import evaluate_images
    from edge.vision.detector import DetectorOptions

    result = evaluate_images(
        real_dir, DetectorOptions(model_path=model, label_map=dict(TWO_WHEELERS)), classes=("ebike", "person")
    )
    keep = ("precision", "recall", "ap50", "truths")
    return {
        "images": result["images"],
        "input_size": result["input_size"],
        "person": {k: result["classes"]["person"][k] for k in keep},
        "two_wheeler": {k: result["classes"]["ebike"][k] for k in keep},
        "two_wheelers_per_empty_frame": result["ebike_fp_per_empty_frame"],
    }


def interpolated(finetuned: Path, original: Path, alpha: float, out: Path) -> Path:
    """The fine-tuned weights moved back towards the original's: alpha * fine-tuned + (1 - alpha) * original
    (weight-space ensembling), same graph; ``original`` must be the COCO file built for the same input."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(finetuned)
    start = {i.name: numpy_helper.to_array(i) for i in onnx.load(original).graph.initializer}
    for initializer in model.graph.initializer:
        weights = numpy_helper.to_array(initializer)
        before = start.get(initializer.name)
        if before is None or before.shape != weights.shape or weights.dtype != np.float32:
            continue
        mixed = (alpha * weights + (1 - alpha) * before).astype(np.float32)
        initializer.CopyFrom(numpy_helper.from_array(mixed, initializer.name))
    onnx.save(model, out)
    return out


def interpolation_sweep(
    model: Path, validation_cache: Path, alphas: tuple[float, ...]
) -> list[dict[str, Any]]:
    """Validation-still and real-photo figures of the weights between the original and the fine-tuned file."""
    import pickle
    import tempfile

    import onnx

    from models.coco.optimize import with_input_size
    from models.street.train import score_stills

    with validation_cache.open("rb") as handle:
        validation = pickle.load(handle)
    rows = []
    with tempfile.TemporaryDirectory(prefix="citywatch-street-sweep-") as tmp:
        size = int(onnx.load(model).graph.input[0].type.tensor_type.shape.dim[2].dim_value)
        original = Path(tmp) / "original.onnx"
        onnx.save(with_input_size(onnx.load(COCO_MODEL), size), original)
        for alpha in alphas:
            path = interpolated(model, original, alpha, Path(tmp) / f"alpha-{alpha:g}.onnx")
            stills = score_stills(path, validation)
            real = real_photo_check(path, REAL_PHOTOS) if REAL_PHOTOS.is_dir() else None
            rows.append(
                {
                    "alpha": alpha,
                    "validation_map50": stills["map50"],
                    "car": {k: stills["classes"]["car"][k] for k in ("ap50", "recall")},
                    "real_person_ap50": None if real is None else real["person"]["ap50"],
                    "real_two_wheeler_ap50": None if real is None else real["two_wheeler"]["ap50"],
                }
            )
            print(f"alpha {alpha:g}: {rows[-1]}", file=sys.stderr)
    return rows


def parking_summary(path: Path) -> dict[str, Any]:
    lines = [line for line in path.read_text().splitlines() if line.strip().startswith("{")]
    if not lines:
        raise ValueError(f"{path}: no JSON line (the last line of citywatch eval parking)")
    summary = json.loads(lines[-1])
    keep = (
        *PARKING_FIGURES,
        "scenarios",
        "camera_hours",
        "frames",
        "violations_expected",
        "violations_recalled",
        "warnings_expected",
        "warnings_recalled",
        "false_warnings",
        "duplicates",
        "occluded_stops",
        "plates_checked",
        "plates_read",
        "dwell_error_s",
        "settings",
        "seeds",
        "size",
        "frame_interval_s",
        "cpu_seconds",
        "misses",
    )
    return {k: summary.get(k) for k in keep}


def collect(args: argparse.Namespace) -> int:
    metrics = json.loads(args.metrics.read_text())
    model = Path(metrics["model"]["path"])
    model = model if model.is_absolute() else PROJECT_ROOT / model
    if args.model is not None:
        model = args.model
    print(f"timing {model.name} against {COCO_MODEL.name}", file=sys.stderr)
    metrics["speed"] = measure_speeds({"finetuned": model, "coco_shipped": COCO_MODEL}, None, 60)
    if REAL_PHOTOS.is_dir():
        print(f"scoring both on {REAL_PHOTOS}", file=sys.stderr)
        metrics["real_photos"] = {
            "finetuned": real_photo_check(model, REAL_PHOTOS),
            "coco_shipped": real_photo_check(COCO_MODEL, REAL_PHOTOS),
        }
    else:
        metrics["real_photos"] = None
    cache = Path(args.validation_cache)
    if cache.is_file():
        print("weight interpolation between the original and the file", file=sys.stderr)
        metrics["interpolation"] = interpolation_sweep(model, cache, (0.0, 0.2, 0.35, 0.5, 0.7, 1.0))
    metrics["parking"] = {"finetuned": parking_summary(args.parking)}
    if args.parking_reference is not None:
        metrics["parking"]["reference"] = parking_summary(args.parking_reference)
        metrics["parking"]["reference_name"] = args.reference_name
    metrics["model"]["path"] = STREET_FILE
    args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------ render


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_card(metrics: dict[str, Any]) -> str:
    model, data, training = metrics["model"], metrics["data"], metrics["training"]
    check = metrics["onnx_check"]
    lines = [
        "# street-detector.onnx — vehicle detector for the illegal-parking camera (COCO, fine-tuned on rendered streets)",
        "",
        "> **Limits first.** The COCO CenterNet (`coco-centernet.onnx`, trained by others on real photographs)",
        "> fine-tuned on citywatch's *rendered* street scenes only: it learnt the simulator's vehicles. Its",
        "> figures on real street video are unmeasured (no labelled street footage here), and the real-photo",
        "> check below shows what the fine-tuning cost on real photographs. For service, fine-tune the same",
        "> way on labelled frames from the city's own cameras (`--init` takes any converted COCO file).",
        "",
        "Every figure below was measured: by `python -m models.street.train` (the run that produced the file),",
        "`citywatch eval parking` and `python -m models.street.card collect`; `models/street-detector.metrics.json`",
        "holds them all and `python -m models.street.card render` writes this page from it.",
        "",
        "## Model",
        "",
        f"- File: `{model['path']}`, {model['bytes'] / 1e6:.2f} MB on disk, sha256 `{model['sha256']}`.",
        f"- Start: `models/coco-centernet.onnx` (sha256 `{metrics['source']['sha256'][:16]}…`; source, licence and "
        "conversion in `models/coco-centernet.md`). Same graph, classes, peak picking and box decoding; every "
        "convolution's weights fine-tuned.",
        f"- Input `images`: float32 [1, 3, {model['input_size']}, {model['input_size']}], RGB, 0..1, letterboxed "
        "(grey 114). Built for this size with `models.coco.optimize.with_input_size`: a 1920x1080 frame becomes "
        f"{model['input_size']}x{model['input_size'] * 9 // 16} pixels of picture, where the COCO file's 320 "
        "leaves 320x180 and far cars a few pixels tall.",
        f"- Outputs (layout `citywatch`): `scores` [1, N, {len(model['labels'])}] (heatmap peaks), `boxes` [1, N, 4]; "
        f"labels `{'`, `'.join(model['labels'])}` (COCO's), renamed by the street config's `label_map` "
        "(motorcycle → motorbike, bicycle → ebike).",
        "",
        "## Data",
        "",
        f"- Training: {data['stills']} stills from {data['train_scenes']} street scenes (seeds "
        f"{data['train_seeds'][0]}..{data['train_seeds'][1]}, each preset in turn, `simulators/street` at "
        f"1920x1080, stills at random times), {data['target_boxes']} vehicle boxes learnt and "
        f"{data['ignored_boxes']} ignored (less than half in sight, a quarter in the picture, or under 3 px).",
        "- People: the renderer gives no person boxes, so the original's own person heatmap on each still is "
        "the target for the person channel (the privacy blur still needs people found).",
        f"- Validation: {data['validation_stills']} stills from seeds {data['validation_seeds'][0]}.."
        f"{data['validation_seeds'][1]}; the parking evaluation's held-out seeds (1,000,000+) are neither.",
        "",
        "## Training",
        "",
        f"- {training['steps']} steps of batch {training['batch']} ({training['epochs']} epochs, stopped by "
        f"{training['stopped_by']}), random {training['crop']}x{training['crop']} crops at the deployment scale, "
        f"horizontal flips, colour jitter; AdamW peak lr {training['lr']}, cosine, EMA; {training['precision']}, "
        f"{training['threads']} threads, {training['minutes']} min ({training['crops_per_s']} crops/s).",
        "- Loss: CenterNet's focal loss on the vehicle heatmaps (elliptic Gaussian targets), GIoU on the boxes "
        "near each centre, the original's person heatmap as a soft target.",
        f"- Final smoothed loss: {training['final_loss']}.",
        f"- Command: `{metrics['command'].strip()}`.",
        f"- Checked: the ONNX file against the torch network it came from on 8 validation stills, largest "
        f"difference {check['max_abs_diff']['scores']:.2e} in scores and {check['max_abs_diff']['boxes_px']:.2e} px "
        f"in box edges (tolerance {check['tolerance']['scores']:g} and {check['tolerance']['boxes_px']:g} px).",
        "",
        *_validation_section(metrics["validation"]),
        *_parking_section(metrics.get("parking")),
        *_real_section(metrics.get("real_photos")),
        *_interpolation_section(metrics.get("interpolation")),
        *_speed_section(metrics.get("speed")),
        "## Limits",
        "",
        "- Rendered streets only; real street footage is unmeasured.",
        "- On real photographs it is no longer the COCO original (see the real-photo check): keep",
        "  `coco-centernet.onnx` where real-world people and vehicles matter more than the simulator's.",
        "- Vehicles under ~3 px at the input size (far down the street) are neither learnt nor found.",
        "- People: on the real photos it finds none (person AP above). In the street evidence the faces are",
        "  still searched by OpenCV's face cascade, but people the detector misses are not blurred as people.",
        "- Motorbikes and e-bikes (small, few in the data) are found far less often than cars, buses and trucks.",
        "",
    ]
    return "\n".join(lines)


def _validation_section(validation: dict[str, Any]) -> list[str]:
    names = {
        "finetuned": "fine-tuned (this file)",
        "original_same_size": "COCO original at the same input size",
        "original_shipped": "COCO original as shipped (320)",
    }
    classes = [c for c, v in validation["finetuned"]["classes"].items() if v["truths"]]
    lines = [
        f"## Validation stills ({validation['finetuned']['images']} rendered stills)",
        "",
        "Runtime `Detector`, IoU ≥ 0.5, precision/recall at score ≥ 0.3; boxes too faint to learn are ignored "
        "(neither a hit nor a false alarm).",
        "",
        "| model | mAP@0.5 | "
        + " | ".join(f"{c} AP / P / R ({validation['finetuned']['classes'][c]['truths']})" for c in classes)
        + " |",
        "|---|---:|" + "---:|" * len(classes),
    ]
    for key, name in names.items():
        figures = validation[key]
        cells = [
            f"{_fmt(figures['classes'][c]['ap50'])} / {_fmt(figures['classes'][c]['precision'])} / "
            f"{_fmt(figures['classes'][c]['recall'])}"
            for c in classes
        ]
        lines.append(f"| {name} | {_fmt(figures['map50'])} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _parking_section(parking: dict[str, Any] | None) -> list[str]:
    if not parking:
        return []
    mine = parking["finetuned"]
    reference = parking.get("reference")
    lines = [
        "## Illegal parking: `citywatch eval parking`",
        "",
        f"{mine['scenarios']} held-out scenarios (seeds {mine['seeds']}, {mine['size']}, "
        f"{mine['frame_interval_s']} s between analysed frames, {mine['camera_hours']} camera-hours), the "
        "street agent's own per-frame path; plate reader "
        f"`{(mine.get('settings') or {}).get('plate_reader')}`"
        + {"ptz_closeup": ", plates read from the pole's PTZ close-ups (`camera.closeup`)"}.get(
            (mine.get("settings") or {}).get("plates_from", ""), ""
        )
        + ".",
        "",
        "| figure | target | this file |"
        + (f" {parking.get('reference_name', 'reference')} |" if reference else ""),
        "|---|---|---:|" + ("---:|" if reference else ""),
    ]
    signs = {">=": "≥", "<=": "≤"}
    for name in PARKING_FIGURES:
        op, bound = PARKING_TARGETS.get(name, ("", None))
        target = "-" if bound is None else f"{signs.get(op, op)} {bound:g}"
        row = f"| {name} | {target} | {_fmt(mine.get(name), 2)} |"
        if reference:
            row += f" {_fmt(reference.get(name), 2)} |"
        lines.append(row)
    lines += [
        "",
        f"Violations recorded {mine['violations_recalled']} of {mine['violations_expected']}, warnings "
        f"{mine['warnings_recalled']} of {mine['warnings_expected']}, false warnings {mine['false_warnings']} "
        f"({mine['duplicates']} duplicates).",
    ]
    for miss in mine.get("misses") or []:
        lines.append(
            f"- missed: {miss['scenario']} vehicle {miss['vehicle_id']} ({miss['class']}, {miss['zone']}): {miss['reason']}"
        )
    return [*lines, ""]


def _real_section(real: dict[str, Any] | None) -> list[str]:
    if not real:
        return ["## Real photographs", "", "Not measured: `../shared/data/ebike-real` was absent.", ""]
    lines = [
        f"## Real photographs ({real['finetuned']['images']} elevator photos, evaluation only)",
        "",
        "What the fine-tuning on renderings did to what the network knew of real photographs: people, and "
        "two-wheelers (`motorcycle`, `bicycle`) against the photos' e-bike boxes, at score ≥ 0.3.",
        "",
        "| model | input | person AP / P / R | two-wheeler AP / P / R | two-wheelers per empty frame |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, name in (("finetuned", "fine-tuned (this file)"), ("coco_shipped", "COCO original as shipped")):
        r = real[key]
        p, t = r["person"], r["two_wheeler"]
        lines.append(
            f"| {name} | {r['input_size']} | {_fmt(p['ap50'])} / {_fmt(p['precision'])} / {_fmt(p['recall'])} | "
            f"{_fmt(t['ap50'])} / {_fmt(t['precision'])} / {_fmt(t['recall'])} | {_fmt(r['two_wheelers_per_empty_frame'])} |"
        )
    return [*lines, ""]


def _interpolation_section(rows: list[dict[str, Any]] | None) -> list[str]:
    if not rows:
        return []
    lines = [
        "## Rendered streets against real photographs: the trade-off",
        "",
        "Fine-tuning on renderings alone costs what the network knew of real photographs (above). Moving "
        "the weights back towards the original's (alpha x fine-tuned + (1 - alpha) x original, same graph; "
        "`models.street.card.interpolated`) trades one for the other; measured on the validation stills and "
        "the real photos:",
        "",
        "| alpha | validation mAP@0.5 | car AP / R | real person AP@0.5 | real two-wheeler AP@0.5 |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['alpha']:g} | {_fmt(row['validation_map50'])} | {_fmt(row['car']['ap50'])} / "
            f"{_fmt(row['car']['recall'])} | {_fmt(row['real_person_ap50'])} | {_fmt(row['real_two_wheeler_ap50'])} |"
        )
    lines += [
        "",
        "The shipped file is alpha 1 (what the parking figures above need). No setting keeps both: the",
        "simulator's vehicles and real photographs want different weights, and there is no labelled real",
        "street footage here to fine-tune on instead.",
        "",
    ]
    return lines


def _speed_section(speed: dict[str, Any] | None) -> list[str]:
    if not speed:
        return []
    mine, coco = speed["finetuned"], speed["coco_shipped"]
    rows = [(Path(STREET_FILE).name, mine), (COCO_MODEL.name, coco)]
    return [
        "## Speed",
        "",
        f"onnxruntime {mine['onnxruntime']}, one intra-op thread, {mine['cpu']}, the two files taking turns in "
        f"rounds of 10 (`models.coco.build.measure_speeds`; load average at the end {mine['load_average']}):",
        "",
        "| file | input | quietest round median ms | median ms | p90 ms | detect 720p ms |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {row['input_size']} | {row['quietest_round_median_ms']} | {row['median_ms']} | "
            f"{row['p90_ms']} | {row['detect_720p_median_ms']} |"
            for name, row in rows
        ),
        "",
        f"Ratio {mine['median_ms'] / coco['median_ms']:.2f} (the larger input). The issue's budget is a 1080p "
        "frame every 100 ms (10 fps) on one core for the whole street agent: `make bench` measures that.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.street.card", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser(
        "collect", help="add speed, real-photo and parking figures to a run's metrics"
    )
    gather.add_argument("metrics", type=Path)
    gather.add_argument("--model", type=Path, default=None, help="the ONNX file (default: the metrics' path)")
    gather.add_argument("--parking", type=Path, required=True, help="citywatch eval parking output")
    gather.add_argument("--parking-reference", type=Path, default=None)
    gather.add_argument("--reference-name", default="reference")
    gather.add_argument(
        "--validation-cache",
        default=str(PROJECT_ROOT / "models/work/street/cache/street-21000000-40x4-512.pkl"),
        help="the run's rendered validation stills (for the weight-interpolation sweep)",
    )
    gather.add_argument("--out", type=Path, required=True)
    refresh = commands.add_parser(
        "parking", help="replace the parking figures only (a later citywatch eval parking of the same file)"
    )
    refresh.add_argument("metrics", type=Path)
    refresh.add_argument("--parking", type=Path, required=True, help="citywatch eval parking output")
    draw = commands.add_parser("render", help="write the card from the metrics")
    draw.add_argument("metrics", type=Path)
    draw.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "collect":
        return collect(args)
    if args.command == "parking":
        metrics = json.loads(args.metrics.read_text())
        metrics.setdefault("parking", {})["finetuned"] = parking_summary(args.parking)
        args.metrics.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"wrote {args.metrics}", file=sys.stderr)
        return 0
    args.out.write_text(render_card(json.loads(args.metrics.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
