"""``citywatch sim facade``: facade scenarios as video files with ground-truth JSON.

The arguments are declared in ``simulators.cli`` (which must not import numpy or OpenCV to start).
"""

from __future__ import annotations

import argparse
import sys
import time


def run(args: argparse.Namespace) -> int:
    from simulators.facade.scenario import make_scenario
    from simulators.facade.video import write_scenario_video

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"--size {args.size!r} must look like 1920x1080", file=sys.stderr)
        return 2
    interactive = sys.stdout.isatty()
    step = max(1, round(args.fps))  # write_scenario_video reports once per second of video
    for index, seed in enumerate(range(args.seed, args.seed + args.count), start=1):
        try:
            scenario = make_scenario(
                seed,
                duration_s=args.duration,
                throws=args.throws,
                time_of_day=args.time_of_day,
                weather=args.weather,
                floors=args.floors,
                distractor_rate=args.distractors,
            )
        except ValueError as exc:
            print(f"seed {seed}: {exc}", file=sys.stderr)
            return 2
        started = time.monotonic()
        label = f"[{index}/{args.count}] facade-{seed}.{args.format}"

        def progress(done: int, total: int, label: str = label, started: float = started) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            line = f"{label}: frame {done}/{total} ({rate:.0f} fps)"
            if interactive:
                print(f"\r{line}", end="", flush=True)
            elif done == total or done * 4 // total != (done - step) * 4 // total:
                print(line, flush=True)  # a log gets a line per quarter, not a carriage-return smear

        truth = write_scenario_video(
            scenario,
            args.out / f"facade-{seed}.{args.format}",
            fps=args.fps,
            size=(width, height),
            progress=progress,
        )
        floors = ", ".join(f"floor {t.floor} col {t.column} {t.kind}" for t in scenario.throws) or "no throws"
        print(
            f"{chr(13) if interactive else ''}{label}: {scenario.building.floors} floors, {scenario.time_of_day}, {scenario.weather.kind}; "
            f"{floors}; {len(scenario.movers) + len(scenario.insects)} distractors -> {truth.name}",
            flush=True,
        )
    return 0
