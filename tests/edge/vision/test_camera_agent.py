"""The camera-agent base: frame clock anchored at the first frame, health on its interval, hooks called."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np

from citywatch.protocol import Channel, EventType
from edge.vision.camera_agent import CameraAgent
from edge.vision.sources import Frame


class ThreeFrames:
    """A finite fast-forward source whose clock starts at 100 s (as a file part-way through would)."""

    live = False
    fps = 10.0

    def __init__(self) -> None:
        self._next = 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self._next == 3:
            return None
        self._next += 1
        return Frame(t=100.0 + self._next, image=np.zeros((4, 4, 3), np.uint8), index=self._next)

    def close(self) -> None:
        pass


class RecordingUplink:
    queue_depth = 0
    refusals_received = 0

    def __init__(self) -> None:
        self.sent: list[tuple[Channel, Any]] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def send(self, channel: Channel, message: Any) -> None:
        self.sent.append((channel, message))


class CountingAgent(CameraAgent):
    agent_name = "test"
    event_type = EventType.OBJECT_THROWN

    def __init__(self, source: ThreeFrames | None = None) -> None:
        config = SimpleNamespace(
            device=SimpleNamespace(id="cam-1"), telemetry=SimpleNamespace(health_interval_s=0)
        )
        camera = SimpleNamespace(reconnect_initial_s=0.1, reconnect_max_s=0.1)
        self.seen: list[datetime] = []
        self.ended = False
        self.closed = False
        super().__init__(
            config, source=source or ThreeFrames(), camera=camera, paced=False, uplink=RecordingUplink()
        )

    def process(self, frame: Frame) -> None:
        time.sleep(0.05)  # the first event comes well after the agent started
        self.seen.append(self.timestamp(self.frame_time(frame)))

    def on_source_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        self.closed = True

    def health_fields(self) -> dict[str, Any]:
        return {"frames_seen": len(self.seen)}


def test_frame_times_are_wall_clock_from_the_first_frame_and_hooks_run() -> None:
    agent = CountingAgent()
    time.sleep(0.2)  # a camera that takes a while to deliver its first frame
    before = datetime.now(UTC)
    agent.start()
    assert agent.wait(5.0)
    agent.stop()

    assert len(agent.seen) == 3
    # Anchored when the first frame came: the first frame is "now", later ones follow the source clock.
    assert before <= agent.seen[0] <= before + timedelta(seconds=1)
    assert [round((t - agent.seen[0]).total_seconds(), 3) for t in agent.seen] == [0.0, 1.0, 2.0]
    assert agent.ended and agent.closed
    health = [m for channel, m in agent.uplink.sent if channel is Channel.TELEMETRY]
    assert health and health[-1].tags == {"agent": "test"}
    assert "frames_seen" in health[-1].fields and "refusals_received" in health[-1].fields


class WallClockFrames(ThreeFrames):
    """Frames that know their wall-clock time (a simulated morning), fast-forwarded."""

    START = datetime(2025, 3, 3, 7, 59, 58, tzinfo=UTC)

    def read(self) -> Frame | None:
        frame = super().read()
        if frame is None:
            return None
        return Frame(
            t=frame.t,
            image=frame.image,
            index=frame.index,
            wall=self.START + timedelta(seconds=frame.t - 100.0),
        )


def test_frames_that_carry_their_wall_clock_time_are_stamped_with_it() -> None:
    agent = CountingAgent(WallClockFrames()).start()
    assert agent.wait(5.0)
    agent.stop()

    start = WallClockFrames.START
    assert agent.seen == [start + timedelta(seconds=s) for s in (1, 2, 3)]
    # Times between frames (a case's start, a photo's) follow the frame clock from the latest frame.
    assert agent.timestamp(101.5) == start + timedelta(seconds=1.5)
