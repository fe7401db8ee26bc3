"""Write simulated elevator rides as video files with ground truth, or preview stills.

``python -m simulators.elevator rides --out DIR --count 10`` writes ``ride-<seed>.mp4`` and
``ride-<seed>.json`` per ride (format in docs/evaluation.md), ready for ``citywatch eval ebike --data DIR``.
``python -m simulators.elevator stills --out DIR --count 20`` writes pictures with their boxes drawn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.elevator", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    rides = sub.add_parser("rides", help="ride videos + ground-truth JSON")
    rides.add_argument("--out", type=Path, required=True)
    rides.add_argument("--count", type=int, default=10)
    rides.add_argument("--seed", type=int, default=1, help="first ride seed")
    rides.add_argument("--kind", default=None, help="ride kind (default: drawn from each seed)")
    rides.add_argument("--size", default="1280x720", help="WxH (default: %(default)s)")
    rides.add_argument("--fps", type=float, default=15.0)
    rides.add_argument("--format", choices=("mp4", "avi"), default="mp4")
    stills = sub.add_parser("stills", help="pictures with their truth boxes drawn (to look at the renderer)")
    stills.add_argument("--out", type=Path, required=True)
    stills.add_argument("--count", type=int, default=20)
    stills.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import cv2

    from simulators.elevator import make_ride, render_still, write_ride_video

    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "stills":
        for seed in range(args.seed, args.seed + args.count):
            image, boxes = render_still(seed)
            for box in boxes:
                cv2.rectangle(image, (int(box.x1), int(box.y1)), (int(box.x2), int(box.y2)), (0, 255, 0), 1)
                cv2.putText(image, box.cls, (int(box.x1), int(box.y1) + 12), 0, 0.4, (0, 255, 0), 1)
            cv2.imwrite(str(args.out / f"still-{seed}.jpg"), image)
        print(f"wrote {args.count} stills to {args.out}")
        return 0
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r} must look like 1280x720")
    for index, seed in enumerate(range(args.seed, args.seed + args.count), start=1):
        ride = make_ride(seed, args.kind)
        truth = write_ride_video(
            ride, args.out / f"ride-{seed}.{args.format}", fps=args.fps, size=(width, height)
        )
        print(
            f"[{index}/{args.count}] {truth.with_suffix('.' + args.format).name}: {ride.kind}, "
            f"{ride.duration_s:.1f}s, e-bike {ride.truth.has_ebike}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
