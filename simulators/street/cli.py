"""``citywatch sim street``: street scenarios as videos (or frame directories) with ground-truth JSON.

The arguments are declared in ``simulators.cli`` (which must not import numpy or OpenCV to start).
"""

from __future__ import annotations

import argparse
import sys
import time


def run(args: argparse.Namespace) -> int:
    from simulators.street.scenario import StreetRules, make_scenario
    from simulators.street.truth import frame_count
    from simulators.street.video import write_scenario_video

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
        if width < 64 or height < 64:
            raise ValueError
    except ValueError:
        print(f"--size {args.size!r} must look like 1920x1080 (each side at least 64)", file=sys.stderr)
        return 2
    if args.fps <= 0 or args.speed <= 0:
        print("--fps and --speed must be positive", file=sys.stderr)
        return 2
    try:
        rules = StreetRules(args.dwell, args.grace)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    interactive = sys.stdout.isatty()
    step = max(1, round(args.fps))
    for index, seed in enumerate(range(args.seed, args.seed + args.count), start=1):
        started = time.monotonic()
        try:
            scenario = make_scenario(
                seed,
                args.scenario,
                duration_s=args.duration,
                time_of_day=args.time_of_day,
                weather=args.weather,
                rules=rules,
            )
        except ValueError as exc:
            print(f"seed {seed}: {exc}", file=sys.stderr)
            return 2
        stem = f"street-{args.scenario}-{seed}"
        name = stem if args.format == "frames" else f"{stem}.{args.format}"
        label = f"[{index}/{args.count}] {name}"
        total = frame_count(scenario, args.fps, args.speed)
        print(
            f"{label}: {scenario.duration_s:.0f} s of {scenario.time_of_day}, {scenario.weather}, {len(scenario.tracks)} vehicles, "
            f"{len(scenario.pedestrians)} pedestrians planned in {time.monotonic() - started:.1f} s; {total} frames",
            flush=True,
        )
        rendering = time.monotonic()

        def progress(done: int, total: int, label: str = label, rendering: float = rendering) -> None:
            rate = done / max(time.monotonic() - rendering, 1e-6)
            line = f"{label}: frame {done}/{total} ({rate:.0f} fps, {rate * args.speed / args.fps:.1f}x real time)"
            if interactive:
                print(f"\r{line}", end="", flush=True)
            elif done == total or done * 4 // total != (done - step) * 4 // total:
                print(line, flush=True)  # a log gets a line per quarter, not a carriage-return smear

        truth_path = write_scenario_video(
            scenario,
            args.out / name,
            fps=args.fps,
            size=(width, height),
            speed=args.speed,
            rules=rules,
            progress=progress,
        )
        if interactive:
            print()
        import json

        truth = json.loads(truth_path.read_text())
        zoned = [s for s in truth["stops"] if s["zone"] is not None]
        print(
            f"{label}: {len(truth['stops'])} stops ({len(zoned)} in zones: {sum(s['warning'] for s in zoned)} warnings, "
            f"{sum(s['violation'] for s in zoned)} violations), {len(truth['occlusions'])} occlusions -> {truth_path.name}",
            flush=True,
        )
    return 0
