"""``citywatch eval ebike``: score the elevator e-bike guard. Progress lines, then ONE JSON line.

Default: 200 held-out simulated rides (see citywatch/evaluation/rides.py). ``--data DIR``: video files
with ground-truth JSON beside them (docs/evaluation.md). ``--images DIR``: still images with Pascal VOC
boxes, frame level (citywatch.evaluation.images), plus false positives on empty-car crops.

Every mode runs the detector as the runtime does, from ``--config``'s detector section or the
defaults, with ``--label-map``, ``--layout``, ``--input-size`` and ``--score-threshold`` on top: a
COCO model is scored by the same command as ours (``--label-map motorcycle=ebike``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_MODEL = Path("models/ebike-detector.onnx")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    evaluation = commands.add_parser("eval", help="score analyzers against ground truth")
    sub = evaluation.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND", required=True)
    ebike = sub.add_parser(
        "ebike",
        help="e-bike guard: detection/false-alarm rates and hold/alarm latencies on rides",
        description="Prints progress lines, then one JSON object with every figure as the last line.",
    )
    ebike.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="ONNX detector (default: %(default)s)"
    )
    ebike.add_argument(
        "--config",
        type=Path,
        help="device config YAML whose elevator section (detector, motion, analyzer) is scored",
    )
    source = ebike.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="directory of videos with <video>.json ground truth")
    source.add_argument("--images", type=Path, help="directory of images with Pascal VOC annotations")
    ebike.add_argument(
        "--label-map",
        help="rename the model's classes to ours, e.g. motorcycle=ebike,bicycle=ebike (a COCO model)",
    )
    ebike.add_argument(
        "--layout",
        choices=("auto", "citywatch", "yolo"),
        help="output layout (default: the config's, else read from the model)",
    )
    ebike.add_argument(
        "--input-size", type=int, help="only for models with a dynamic input size (default: the model's)"
    )
    ebike.add_argument(
        "--score-threshold",
        type=float,
        help="runtime minimum score for precision/recall and alarms (default: the config's, else 0.3)",
    )
    ebike.add_argument("--rides", type=int, default=200, help="simulated rides (default: %(default)s)")
    ebike.add_argument("--seed", type=int, default=None, help="first ride seed (default: held-out 95000000)")
    ebike.add_argument("--size", default="320x180", help="simulated render size WxH (default: %(default)s)")
    ebike.add_argument("--fps", type=float, default=15.0, help="simulated frame rate (default: %(default)s)")
    ebike.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes, one onnxruntime thread each (default: %(default)s)",
    )
    ebike.add_argument("--scores", type=Path, help="also write every ride's score to this JSON file")
    ebike.add_argument(
        "--oracle",
        action="store_true",
        help="use the simulator's ground-truth boxes instead of the model: scores the analyzer alone",
    )
    ebike.set_defaults(handler=_ebike)
    _register_throwing(sub)
    _register_parking(sub)


def _register_throwing(sub: argparse._SubParsersAction[Any]) -> None:
    from citywatch.evaluation.seeds import THROWING_HELD_OUT_SEED as HELD_OUT_SEED
    from citywatch.evaluation.seeds import THROWING_TUNING_SEED as TUNING_SEED

    throwing = sub.add_parser(
        "throwing",
        help="facade camera: throws detected, false alarms per hour, origin floor, detection delay",
        description="Progress on stderr; a table, then one JSON object with every figure as the last line. "
        f"Default: held-out simulated scenarios (seeds from {HELD_OUT_SEED}).",
    )
    throwing.add_argument(
        "--data",
        type=Path,
        help="directory of videos with <video>.json facade ground truth (docs/evaluation.md)",
    )
    throwing.add_argument(
        "--quick", action="store_true", help="4 short scenarios (a smoke run, not a measurement)"
    )
    throwing.add_argument(
        "--scenarios", type=int, default=24, help="simulated scenarios (default: %(default)s)"
    )
    throwing.add_argument(
        "--duration", type=float, default=30.0, help="seconds per simulated scenario (default: %(default)s)"
    )
    throwing.add_argument(
        "--seed", type=int, default=None, help=f"first scenario seed (default: held-out {HELD_OUT_SEED})"
    )
    throwing.add_argument(
        "--tuning",
        action="store_true",
        help=f"score the tuning seeds (from {TUNING_SEED}) instead of the held-out ones",
    )
    throwing.add_argument(
        "--size", default="1280x720", help="simulated render size WxH (default: %(default)s)"
    )
    throwing.add_argument(
        "--fps", type=float, default=25.0, help="simulated frame rate (default: %(default)s)"
    )
    throwing.set_defaults(handler=_throwing)


def _throwing(args: argparse.Namespace) -> int:
    from citywatch.evaluation import throwing

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"eval throwing: --size {args.size!r} must look like 1280x720", file=sys.stderr)
        return 2
    if args.scenarios < 1 or args.duration <= 0:
        print("eval throwing: --scenarios and --duration must be positive", file=sys.stderr)
        return 2
    try:
        if args.data is not None:
            jobs = throwing.video_jobs(args.data)
            progress(f"scoring {len(jobs)} videos from {args.data}")
        else:
            seed = args.seed
            if seed is None:
                seed = throwing.TUNING_SEED if args.tuning else throwing.HELD_OUT_SEED
            count, duration = (4, 15.0) if args.quick else (args.scenarios, args.duration)
            jobs = throwing.held_out_jobs(count, seed, duration)
            progress(
                f"scoring {count} simulated scenarios of {duration:g} s (seeds {seed}..{seed + count - 1}, "
                f"{width}x{height} at {args.fps:g} fps)"
            )
        summary = throwing.evaluate(jobs, size=(width, height), fps=args.fps, progress=progress)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"eval throwing: {exc}", file=sys.stderr)
        return 2
    summary["source"] = str(args.data) if args.data is not None else "simulated"
    if args.data is None:
        summary["seeds"] = f"{jobs[0].seed}..{jobs[-1].seed}"
        summary["size"] = f"{width}x{height}"
        summary["fps"] = args.fps
    for line in throwing.table(summary):
        print(line)
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


def _register_parking(sub: argparse._SubParsersAction[Any]) -> None:
    from citywatch.evaluation.seeds import PARKING_HELD_OUT_SEED as HELD_OUT_SEED

    parking = sub.add_parser(
        "parking",
        help="street camera: violation recall, dwell error, false warnings per camera-hour, occlusions, plates",
        description="Progress on stderr; a table, then one JSON object with every figure as the last line. "
        f"Default: held-out simulated scenarios (seeds from {HELD_OUT_SEED}) through the street agent's "
        "per-frame path with the COCO detector, fast-forward.",
    )
    parking.add_argument(
        "--data",
        type=Path,
        help="directory of videos with <video>.json street ground truth (docs/evaluation.md)",
    )
    parking.add_argument(
        "--scenarios", type=int, default=16, help="simulated scenarios (default: %(default)s)"
    )
    parking.add_argument(
        "--seed", type=int, default=None, help=f"first scenario seed (default: held-out {HELD_OUT_SEED})"
    )
    parking.add_argument(
        "--quick",
        action="store_true",
        help="2 short preset scenarios with dwell 10 s, grace 20 s (a smoke run, not a measurement)",
    )
    parking.add_argument(
        "--oracle",
        action="store_true",
        help="the simulator's boxes instead of the detector: scores the analyzer alone",
    )
    parking.add_argument(
        "--plate-reader",
        default="citywatch",
        help="plate reader by name (edge/street/plates.py; none: plates are not read, plate_exact is null) "
        "(default: %(default)s)",
    )
    parking.add_argument(
        "--closeup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read plates from the pole's PTZ close-ups of stopped vehicles (simulated scenarios only; "
        "--no-closeup: from the fixed view) (default: on)",
    )
    parking.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="detector minimum score (default: the config's, 0.3)",
    )
    parking.add_argument(
        "--model",
        type=Path,
        default=None,
        help="detector ONNX file with COCO's vehicle labels (default: the street config's)",
    )
    parking.add_argument(
        "--size", default="1920x1080", help="simulated render size WxH (default: %(default)s)"
    )
    parking.add_argument("--fps", type=float, default=10.0, help="camera frame rate (default: %(default)s)")
    parking.add_argument(
        "--speed",
        type=float,
        default=5.0,
        help="time-lapse: scenario seconds between analysed frames = speed / fps (default: %(default)s)",
    )
    parking.add_argument(
        "--dwell", type=float, default=120.0, help="zones' dwell, seconds (default: %(default)s)"
    )
    parking.add_argument(
        "--grace", type=float, default=600.0, help="zones' grace, seconds (default: %(default)s)"
    )
    parking.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes, one onnxruntime thread each (default: %(default)s)",
    )
    parking.set_defaults(handler=_parking)


def _parking(args: argparse.Namespace) -> int:
    from citywatch.evaluation import parking

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"eval parking: --size {args.size!r} must look like 1920x1080", file=sys.stderr)
        return 2
    if args.scenarios < 1 or args.fps <= 0 or args.speed <= 0 or args.dwell <= 0 or args.grace <= 0:
        print(
            "eval parking: --scenarios, --fps, --speed, --dwell and --grace must be positive", file=sys.stderr
        )
        return 2
    if args.oracle and args.data is not None:
        print(
            "eval parking: --oracle needs simulated scenarios (videos have no per-frame boxes)",
            file=sys.stderr,
        )
        return 2
    from edge.street.plates import PLATE_READERS

    if args.plate_reader not in PLATE_READERS:
        print(
            f"eval parking: unknown --plate-reader {args.plate_reader!r}: known readers are "
            f"{', '.join(sorted(PLATE_READERS))}",
            file=sys.stderr,
        )
        return 2
    quick = args.quick and args.data is None
    options = parking.EvalOptions(
        size=(width, height),
        fps=args.fps,
        speed=args.speed,
        dwell_s=10.0 if quick else args.dwell,
        grace_s=20.0 if quick else args.grace,
        oracle=args.oracle,
        plate_reader=args.plate_reader,
        closeup=args.closeup and args.data is None,
        detector=_parking_detector(args),
    )
    try:
        if args.data is not None:
            jobs = parking.video_jobs(args.data)
            progress(f"scoring {len(jobs)} videos from {args.data}")
        else:
            seed = parking.HELD_OUT_SEED if args.seed is None else args.seed
            jobs = parking.quick_jobs(seed) if quick else parking.held_out_jobs(args.scenarios, seed)
            progress(
                f"scoring {len(jobs)} simulated scenarios (seeds {seed}..{seed + len(jobs) - 1}, {width}x{height}, "
                f"{args.speed / args.fps:g} s between frames, dwell {options.dwell_s:g} s, grace "
                f"{options.grace_s:g} s, {'oracle boxes' if args.oracle else _parking_model(args)}, "
                f"plates: {args.plate_reader}{', PTZ close-ups' if options.closeup else ', fixed view'})"
            )
        summary = parking.evaluate(jobs, options, workers=max(1, args.workers), progress=progress)
    except (ValueError, FileNotFoundError, NotADirectoryError, RuntimeError) as exc:
        print(f"eval parking: {exc}", file=sys.stderr)
        return 2
    summary["source"] = str(args.data) if args.data is not None else "simulated"
    summary["settings"] = {
        "detector": "oracle (simulator truth boxes)" if args.oracle else _parking_model(args),
        "score_threshold": args.score_threshold if args.score_threshold is not None else 0.3,
        "plate_reader": args.plate_reader,
        "plates_from": "ptz_closeup" if options.closeup else "fixed_view",
        "dwell_s": options.dwell_s,
        "grace_s": options.grace_s,
    }
    if args.data is None:
        summary["seeds"] = f"{jobs[0].seed}..{jobs[-1].seed}"
        summary["size"] = f"{width}x{height}"
        summary["frame_interval_s"] = round(args.speed / args.fps, 4)
    for line in parking.table(summary):
        print(line)
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


def _parking_detector(args: argparse.Namespace) -> dict[str, Any] | None:
    """Detector fields the parking command line sets over the street config's default detector."""
    fields: dict[str, Any] = {}
    if args.score_threshold is not None:
        fields["score_threshold"] = args.score_threshold
    if args.model is not None:
        fields["model"] = str(args.model)
    return fields or None


def _parking_model(args: argparse.Namespace) -> str:
    from edge.street.config import street_detector

    return str(args.model if args.model is not None else street_detector().model)


def _say(line: str) -> None:
    print(line, flush=True)


def _detector_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """DetectorConfig fields set on the command line; ValueError on a malformed --label-map."""
    from citywatch.evaluation.images import parse_label_map

    overrides: dict[str, Any] = {}
    if args.model != DEFAULT_MODEL or args.config is None:
        overrides["model"] = args.model
    if args.label_map is not None:
        overrides["label_map"] = parse_label_map(args.label_map)
    if args.layout is not None:
        overrides["layout"] = args.layout
    if args.input_size is not None:
        overrides["input_size"] = args.input_size
    if args.score_threshold is not None:
        overrides["score_threshold"] = args.score_threshold
    return overrides


def _elevator_config(args: argparse.Namespace) -> Any:
    """The elevator config to score: --config's, else the defaults, with the detector overrides."""
    from pydantic import ValidationError

    from citywatch.evaluation import rides
    from edge.config import ConfigError, load_config
    from edge.vision.config import DetectorConfig

    config = rides.default_elevator_config(args.model)
    if args.config is not None:
        try:
            device = load_config(args.config)
        except ConfigError as exc:
            raise ValueError(exc.render()) from None
        elevator = getattr(device, "elevator", None)
        if getattr(device, "kind", None) != "elevator" or elevator is None:
            raise ValueError(f"{args.config} is not an elevator device config")
        config = elevator
    overrides = _detector_overrides(args)
    try:
        detector = DetectorConfig.model_validate(config.detector.model_dump() | overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"detector settings: {problems}") from None
    return config.model_copy(update={"detector": detector})


def _ebike(args: argparse.Namespace) -> int:
    from edge.vision.detector import ModelError
    from edge.vision.pipeline import detector_options

    try:
        config = _elevator_config(args)
    except ValueError as exc:
        print(f"eval ebike: {exc}", file=sys.stderr)
        return 2

    if args.images is not None:
        from citywatch.evaluation.images import evaluate_images

        try:
            result = evaluate_images(args.images, detector_options(config), progress=_say)
        except (ModelError, ValueError, FileNotFoundError, NotADirectoryError) as exc:
            print(f"eval ebike: {exc}", file=sys.stderr)
            return 2
        ebike = result["classes"]["ebike"]
        _say(
            f"e-bike AP@0.5 {ebike['ap50']}, precision {ebike['precision']} recall {ebike['recall']} "
            f"at score >= {result['class_thresholds']['ebike']}, "
            f"e-bikes per empty-car frame {result['ebike_fp_per_empty_frame']} "
            f"({result['empty_frames']['frames']} frames)"
        )
        print(json.dumps(result, sort_keys=True))
        return 0

    from citywatch.evaluation import rides

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"--size {args.size!r} must look like 320x180", file=sys.stderr)
        return 2
    try:
        if args.data is not None:
            jobs = rides.video_jobs(args.data)
            _say(f"scoring {len(jobs)} videos from {args.data}")
        else:
            seed = rides.DEFAULT_SEED if args.seed is None else args.seed
            jobs = rides.simulated_jobs(args.rides, seed)
            _say(
                f"scoring {len(jobs)} simulated rides (seeds {seed}..{seed + len(jobs) - 1}, {width}x{height})"
            )
        summary = rides.evaluate_rides(
            jobs,
            config=config,
            size=(width, height),
            fps=args.fps,
            workers=max(1, args.workers),
            progress=_say,
            scores_out=args.scores,
            oracle=args.oracle,
        )
    except (ModelError, ValueError, FileNotFoundError) as exc:
        print(f"eval ebike: {exc}", file=sys.stderr)
        return 2
    summary["source"] = str(args.data) if args.data is not None else "simulated"
    if args.data is None:
        summary["seeds"] = f"{jobs[0].seed}..{jobs[-1].seed}"
    summary["settings"] = {  # what was scored, so a figure can be traced to its settings
        "model": "oracle (simulator truth boxes)" if args.oracle else str(config.detector.model),
        "detector_score_threshold": config.detector.score_threshold,
        "label_map": dict(config.detector.label_map),
        "ebike": config.ebike.model_dump(mode="json"),
    }
    _say(
        f"e-bike rides detected {summary['ebike_rides_detected']}/{summary['ebike_rides']}, "
        f"false alarms {summary['false_alarms']}/{summary['rides_without_ebike']}, "
        f"hold p95 {summary['hold_latency_s']['p95']}s, alarm p95 {summary['confirm_latency_s']['p95']}s"
    )
    print(json.dumps(summary, sort_keys=True))
    return 0
