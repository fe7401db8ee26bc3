"""The model card, written from the numbers a training run measured (never typed by hand).

``python -m models.ebike.card METRICS.json --rides EVAL.json --tuning TUNE.json --out CARD.md`` re-renders
it with the event-level results added: the last JSON lines of ``citywatch eval ebike`` and of
``python -m models.ebike.tune``, saved to files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _class_table(classes: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| class | boxes | precision | recall | AP@0.5 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in classes.items():
        lines.append(
            f"| {name} | {row['truths']} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['ap50'])} |"
        )
    return lines


def write_card(path: Path, metrics: dict[str, Any]) -> None:
    path.write_text(render_card(metrics))


def render_card(metrics: dict[str, Any]) -> str:
    data, training, heldout, speed, real = (
        metrics["data"],
        metrics["training"],
        metrics["heldout"],
        metrics["speed"],
        metrics["real"],
    )
    size = metrics["input_size"]
    labels = metrics["labels"]
    lines = [
        "# ebike-detector.onnx — elevator e-bike detector (synthetic-trained)",
        "",
        "> **Limits first.** Trained only on synthetic elevator scenes rendered by",
        "> `simulators/elevator/`. It is a working stand-in that exercises the whole pipeline; it",
        "> is **not** fit for service. For service, replace it with a model trained on real elevator footage",
        "> — the runtime takes one as a drop-in: our `citywatch` layout, or a YOLOv8/YOLO11/YOLOv9 export",
        "> (`detector.layout: yolo` in the device config).",
        "",
        "All figures below were measured, never typed: by the training run that produced the file"
        + (" (a `--smoke` run: tiny data, figures meaningless)" if metrics["run"]["smoke"] else "")
        + (
            ", and by `citywatch eval ebike` and `python -m models.ebike.tune` for the event level "
            "(`models/ebike-detector.metrics.json` holds them all; `python -m models.ebike.card` renders this page)."
            if metrics.get("rides")
            else "."
        ),
        "",
        "## Model",
        "",
        f"- File: `models/{metrics['model']}`, {metrics['size_bytes'] / 1e6:.2f} MB on disk, sha256 `{metrics['sha256'][:16]}…`",
        f"- Architecture: tiny anchor-free detector (plain 3x3 conv backbone with residual blocks, top-down "
        f"feature pyramid, heads at strides 8/16/32; FCOS-style assignment, quality focal + GIoU loss), "
        f"{metrics['parameters'] / 1e6:.2f} M parameters, float32, ONNX opset 17, static shapes.",
        f"- Input `images`: float32 [1, 3, {size}, {size}], RGB, 0..1, letterboxed (aspect kept, centred, grey 114 padding).",
        "- Outputs (layout `citywatch`): `boxes` [1, N, 4] x1, y1, x2, y2 in input pixels; `scores` [1, N, C] "
        "sigmoid class probabilities; NMS is the runtime's job.",
        f"- Labels (index order, also in the ONNX `metadata_props` `labels`): `{labels}`. "
        "`ebike` covers electric bicycles, moped-style e-scooters and kick e-scooters.",
        f"- Metadata: `layout=citywatch`, `input_size={size}`, `labels`, `letterbox_pad=114`.",
        "",
        "## Data",
        "",
        f"- Training: {data['train_images']} synthetic stills ({data['stills_per_scene']} per scene: one car and "
        f"camera, different people/props/door/look), scene seeds {data['train_scene_seeds']}. Boxes: "
        + ", ".join(f"{k} {v}" for k, v in data["train_boxes"].items())
        + ".",
        "- Scenes: car interior seen from a ceiling corner (random car size, door, wall/floor textures, posters,",
        "  lighting, lens distortion, camera pose), people walking or standing, e-bikes pushed in (city e-bikes with",
        "  baskets, battery, quilts; moped e-scooters; kick e-scooters), bicycles, strollers, wheelchairs (with",
        "  riders/helpers), unlabelled bags, suitcases, cartons and trolleys; shadows, vignetting, sensor noise,",
        "  blur, motion blur, night (grey) mode, on-screen date text, JPEG artefacts.",
        f"- Augmentation: {training['augmentation']}.",
        f"- Held-out: {data['heldout_images']} stills from scene seeds {data['heldout_scene_seeds']} (never trained on).",
        "",
        "## Training",
        "",
        f"- {training['steps']} steps of batch {training['batch']} ({training['epochs_completed']} epochs; "
        f"planned {training['planned_steps']}{', stopped by the time budget' if training['stopped_by_time_budget'] else ''}), "
        f"AdamW peak lr {training['lr']}, cosine, EMA {training['ema_decay']}, {_precision(training)} on the CPU, "
        f"{metrics['run']['threads']} threads, {training['train_minutes']} min ({training['images_per_s']} images/s).",
        f"- Final smoothed loss: {training['final_loss']}.",
        *_lineage(metrics.get("init_from")),
        _reproduce(metrics),
        "",
        f"## Held-out synthetic stills ({heldout['images']} images)",
        "",
        f"Precision/recall at score >= {heldout['score_threshold']} (the runtime default), IoU >= {heldout['iou_threshold']}; "
        f"AP is threshold-free. **mAP@0.5 = {_fmt(heldout['map50'])}**.",
        "",
        *_class_table(heldout["classes"]),
        "",
        "## Real elevator photos",
        "",
    ]
    if real is None:
        lines += ["Not measured in this run (`../shared/data/ebike-real` absent or `--smoke`)."]
    else:
        lines += [
            f"{real['images']} real elevator photos (`../shared/data/ebike-real`, Pascal VOC, evaluation only: never "
            "trained on, no threshold tuned on them), frame level, `citywatch eval ebike --images`:",
            "",
            *_class_table(real["classes"]),
            "",
            f"E-bike precision **{_fmt(real['ebike_precision'])}**, recall **{_fmt(real['ebike_recall'])}** at score >= "
            f"{real['score_threshold']}. This is the honest measure of the synthetic-to-real gap; read it before "
            "trusting any synthetic figure above.",
            *_empty_frame_lines(real),
        ]
    lines += _ride_section(metrics.get("rides"), metrics.get("tuning"))
    lines += [
        "",
        "## Speed",
        "",
        f"- onnxruntime {speed['onnxruntime']}, ONE intra-op thread, {speed['cpu']}: model run median "
        f"**{speed['median_ms']} ms**, p90 {speed['p90_ms']} ms, best {speed['min_ms']} ms ({speed['runs']} runs).",
        f"- Whole `Detector.detect` on a 1280x720 frame (letterbox, run, decode, NMS): median {speed['detect_720p_median_ms']} ms.",
        f"- The machine was shared while measuring (load average {speed['load_average']}); unloaded runs are faster.",
        "",
        "## Limits",
        "",
        "- Synthetic only: simple shapes, procedural textures, no real clothing, faces, reflections or clutter. Expect",
        "  far lower figures on real footage (see the real-photo table) and misses on unusual e-bike designs.",
        "- Bicycles vs e-bikes is the hardest distinction (both are two-wheelers); the analyzer's confirmation",
        "  window guards against single-frame confusions, but a real-footage model is needed for service.",
        "- Small input (for the speed target): objects under ~20 px after letterboxing are missed.",
        "- Trained for ceiling-corner elevator cameras; other viewpoints are out of scope.",
        "",
    ]
    return "\n".join(lines)


def _empty_frame_lines(real: dict[str, Any]) -> list[str]:
    """False alarms on empty-car crops of the same photos; absent from runs scored before they existed."""
    empty = real.get("empty_frames")
    if not empty or not empty["frames"]:
        return []
    frames, per_frame, found = empty["frames"], empty["fp_per_frame"], empty["detections"]
    alarmed = empty.get("frames_with_ebike_or_bicycle")
    lines = [
        "",
        f"Empty car: {frames} crops of the same photos with nothing in them (up to two per photo, clear of every "
        "annotated box plus a 3% margin, cut at evaluation time only). At score >= "
        f"{real['score_threshold']} the model reports **{_fmt(per_frame['ebike'])} e-bikes per empty frame** "
        f"({found.get('ebike', 0)} e-bikes and {found.get('bicycle', 0)} bicycles in all"
        + (f"; {alarmed} of {frames} frames hold an e-bike or a bicycle" if alarmed is not None else "")
        + "); the issue asks for none.",
    ]
    sweep = real.get("ebike_by_threshold")
    if sweep:
        lines += [
            "",
            "| threshold | e-bike precision | e-bike recall | e-bikes per empty frame |",
            "|---:|---:|---:|---:|",
            *(
                f"| {threshold} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['fp_per_empty_frame'])} |"
                for threshold, row in sweep.items()
            ),
        ]
    return lines


def _reproduce(metrics: dict[str, Any]) -> str:
    arguments = " ".join(metrics["run"]["argv"])
    command = f"`python -m models.ebike.train {arguments}`"
    if metrics.get("init_from") is None:
        return f'- Reproduce: `make models TRAIN_ARGS="{arguments}"` (or {command}).'
    # `make models` alone trains from random weights: a fine-tuned model needs its whole chain.
    return (
        "- Reproduce: repeat the runs above oldest first, each `--init` from the model the one before it "
        f"made, then this one: {command}."
    )


def _lineage(parent: dict[str, Any] | None) -> list[str]:
    """A fine-tuned model's starting points, newest first, each from that run's own metrics."""
    lines = []
    lead = "Fine-tuned (`--init`) from the model of an earlier run"
    while parent is not None:
        data, training = parent["data"], parent["training"]
        # Lineage entries written before the field was kept: those runs had no --size, so the default 224.
        size = parent.get("input_size", 224)
        lines.append(
            f"- {lead} (sha256 `{parent['sha256'][:16]}…`, input {size}): "
            f"{data['train_images']} stills from scene seeds {data['train_scene_seeds']}, {training['steps']} steps of "
            f"batch {training['batch']} ({training['epochs_completed']} epochs, peak lr {training['lr']}), "
            f"{training['train_minutes']} min; that run: `python -m models.ebike.train {' '.join(parent['run']['argv'])}`."
        )
        lead = "That model was itself fine-tuned from an earlier run"
        parent = parent.get("init_from")
    if lines:
        lines[-1] += " That run started from random weights."
    return lines


def _precision(training: dict[str, Any]) -> str:
    # Runs before the --precision option all trained with bfloat16 autocast.
    return "float32" if training.get("precision") == "fp32" else "bfloat16 autocast"


def _latency(stats: dict[str, Any]) -> str:
    return f"p50 {_fmt(stats['p50'])} s, p95 {_fmt(stats['p95'])} s, max {_fmt(stats['max'])} s"


def _whole_in_view_rows(rides: dict[str, Any]) -> list[str]:
    geometric = rides.get("latency_from_whole_in_view_s")
    if geometric is None:  # scored before the visibility-aware reference
        return []
    never = rides.get("never_half_visible", [])
    return [
        f"| door hold after wholly inside and in view (occlusion ignored) | {_latency(geometric['hold'])} | |",
        f"| alarm after wholly inside and in view (occlusion ignored) | {_latency(geometric['confirm'])} | |",
        f"| e-bike rides where it was never half visible (no latency) | {len(never)} | |",
    ]


def _ride_section(rides: dict[str, Any] | None, tuning: dict[str, Any] | None) -> list[str]:
    if rides is None:
        return []
    settings = rides.get("settings", {})
    ebike = settings.get("ebike", {})
    targets = rides["targets"]
    lines = [
        "",
        f"## Event level: {rides['rides']} held-out simulated rides",
        "",
        f"`citywatch eval ebike` (seeds {rides.get('seeds', '?')}, never trained or tuned on), the whole "
        "pipeline as on the device (motion gate, detector, tracker, analyzer), latencies in simulated time:",
        "",
        "| figure | measured | target |",
        "|---|---:|---:|",
        f"| e-bike rides alarmed | {rides['ebike_rides_detected']}/{rides['ebike_rides']} = {_fmt(rides['detection_rate'])} "
        f"| >= {targets['detection_rate_min']} |",
        f"| rides without an e-bike that alarmed | {rides['false_alarms']}/{rides['rides_without_ebike']} = "
        f"{_fmt(rides['false_alarm_rate'])} | <= {targets['false_alarm_rate_max']} |",
        f"| provisional door hold after full appearance | {_latency(rides['hold_latency_s'])} | <= {targets['hold_latency_s_max']} s |",
        f"| confirmed alarm after full appearance | {_latency(rides['confirm_latency_s'])} | <= {targets['confirm_latency_s_max']} s |",
        f"| rides without an e-bike with a (released) door hold | {rides['false_door_holds']} | |",
        *_whole_in_view_rows(rides),
        "",
        "Full appearance: the whole e-bike inside the car and in view, and at least half of it not hidden "
        "behind people or things (the renderer's visible fraction). The latencies from the moment it is "
        "wholly inside and in view, hidden or not, are the rows marked (occlusion ignored).",
        "",
        f"**Targets met: {'yes' if rides['meets_targets'] else 'no'}.**",
        "",
        "| ride kind | rides | door holds | alarms |",
        "|---|---:|---:|---:|",
        *(
            f"| {kind} | {row['rides']} | {row['holds']} | {row['alarms']} |"
            for kind, row in rides["by_kind"].items()
        ),
        "",
        f"Scored with detector score threshold {settings.get('detector_score_threshold', '?')} and analyzer "
        f"`provisional_score` {ebike.get('provisional_score', '?')}, `window_s` {ebike.get('window_s', '?')}, "
        f"`confirm_min_s` {ebike.get('confirm_min_s', '?')}, "
        f"`confirm_fraction` {ebike.get('confirm_fraction', '?')}, `confirm_min_frames` "
        f"{ebike.get('confirm_min_frames', '?')}, `lookalike_iou` {ebike.get('lookalike_iou', '?')}.",
    ]
    if tuning is not None:
        best = tuning["best"]
        lines += [
            "",
            f"These thresholds were chosen by `python -m models.ebike.tune` on {tuning['rides']} validation rides "
            f"(seeds from 97,000,000; {tuning['settings_tried']} settings replayed over recorded detections): "
            f"there they gave detection {_fmt(best['detection_rate'])}, false alarms {_fmt(best['false_alarm_rate'])}.",
        ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.ebike.card", description=__doc__.split("\n")[0])
    parser.add_argument("metrics", type=Path, help="the training run's ebike-detector.metrics.json")
    parser.add_argument("--rides", type=Path, help="last line of `citywatch eval ebike`, as a file")
    parser.add_argument("--tuning", type=Path, help="last line of `python -m models.ebike.tune`, as a file")
    parser.add_argument("--real", type=Path, help="last line of `citywatch eval ebike --images`, as a file")
    parser.add_argument(
        "--rescore-heldout",
        type=Path,
        metavar="MODEL",
        help="score MODEL on the held-out stills again (cached in models/work/cache) at the runtime's "
        "current default threshold, e.g. after tuning changed it",
    )
    parser.add_argument(
        "--init-metrics",
        type=Path,
        help="for a fine-tuned model: the metrics JSON of the run it started from (its lineage in the card)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the card to write")
    args = parser.parse_args(argv)
    metrics = json.loads(args.metrics.read_text())
    if args.init_metrics is not None:
        parent = json.loads(args.init_metrics.read_text())
        # The parent's own lineage comes along, so the card lists every run back to the first; its
        # per-epoch loss history stays in its own metrics file.
        metrics["init_from"] = {
            key: parent[key]
            for key in ("sha256", "input_size", "data", "training", "run", "init_from")
            if key in parent
        }
        metrics["init_from"]["training"] = {k: v for k, v in parent["training"].items() if k != "history"}
    if args.rescore_heldout is not None:
        from models.ebike import data
        from models.ebike.heldout import DEFAULT_CACHE, evaluate_heldout

        samples = data.render_heldout(DEFAULT_CACHE, metrics["data"]["heldout_images"], workers=2, say=print)
        metrics["heldout"] = evaluate_heldout(args.rescore_heldout, samples)
    for key in ("rides", "tuning", "real"):
        source = getattr(args, key)
        if source is not None:
            metrics[key] = json.loads(source.read_text().strip().splitlines()[-1])
    write_card(args.out, metrics)
    args.metrics.write_text(json.dumps(metrics, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
