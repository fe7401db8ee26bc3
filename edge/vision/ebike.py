"""Elevator e-bike analyzer: a pure state machine driven by ``update(t, detections)``.

    idle --confident e-bike--> provisional (hold the door)
    provisional --enough e-bike frames in the window--> confirmed (voice warning, event new + snapshot)
    provisional --not confirmed by the timeout--> cooldown (release the door, stay quiet)
    cooldown --enough e-bike frames in the window--> confirmed (hold, warning, event: no chatter first)
    confirmed --e-bike still there--> (event update every update_interval_s, voice repeats)
    confirmed --no e-bike for gone_after_s--> idle (release the door, event end)
    cooldown --cooldown_s over--> idle

Only ``trigger_labels`` (default ``ebike``) count: bicycles, strollers and wheelchairs never trigger.
Time is the caller's (simulated time in the evaluation, the frame clock on a device), so tests script
it. ``detections=None`` means "no frame analysed at t" (the motion gate skipped it): timers run, the
vote is not touched.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from edge.vision.config import EbikeAnalyzerConfig
from edge.vision.types import Detection, iou

ActionKind = Literal["hold_door", "release_door", "voice_warning", "event_new", "event_update", "event_end"]


class Phase(StrEnum):
    IDLE = "idle"
    PROVISIONAL = "provisional"
    CONFIRMED = "confirmed"
    COOLDOWN = "cooldown"


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    t: float
    reason: str = ""
    confidence: float = 0.0
    started_t: float | None = None
    track_id: int | None = None
    frames_seen: int = 0
    door_held: bool = False
    floor: int | None = None
    detection: Detection | None = None  # the e-bike the action is about (snapshot boxes)


@dataclass(frozen=True, slots=True)
class _Observation:
    t: float
    ebike: Detection | None


class EbikeAnalyzer:
    def __init__(self, config: EbikeAnalyzerConfig | None = None) -> None:
        self.config = config or EbikeAnalyzerConfig()
        self.phase = Phase.IDLE
        self.door_held = False
        self.floor: int | None = None
        self.door_open: bool | None = None
        self._history: deque[_Observation] = deque()
        self._first_sighting_t = 0.0
        self._last_ebike_t = 0.0
        self._cooldown_until = 0.0
        self._last_update_t = 0.0
        self._last_voice_t = 0.0
        self._last_ebike: Detection | None = None
        self._quiet_candidate_t: float | None = None

    @property
    def busy(self) -> bool:
        """Deciding or alarming: the detector should look at every frame."""
        return self.phase in (Phase.PROVISIONAL, Phase.CONFIRMED)

    def update(
        self,
        t: float,
        detections: Sequence[Detection] | None,
        *,
        door_open: bool | None = None,
        floor: int | None = None,
    ) -> list[Action]:
        if door_open is not None:
            self.door_open = door_open
        if floor is not None:
            self.floor = floor
        ebike = None
        if detections is not None:
            ebikes = [
                d
                for d in detections
                if d.label in self.config.trigger_labels and not self._lookalike(d, detections)
            ]
            ebike = max(ebikes, key=lambda d: d.score, default=None)
            self._history.append(_Observation(t, ebike))
            if ebike is not None:
                self._last_ebike = ebike
        horizon = t - max(self.config.window_s, self.config.confirm_timeout_s)
        while self._history and self._history[0].t < horizon:
            self._history.popleft()

        actions: list[Action] = []
        if self.phase is Phase.COOLDOWN:
            if t >= self._cooldown_until:
                self.phase = Phase.IDLE
                self._quiet_candidate_t = None
            else:
                actions.extend(self._quiet(t, ebike))
        if self.phase is Phase.IDLE and ebike is not None and ebike.score >= self.config.provisional_score:
            self.phase = Phase.PROVISIONAL
            self._first_sighting_t = t
            if self.config.hold_door:
                self.door_held = True
                actions.append(self._action("hold_door", t, reason="provisional", detection=ebike))
        if self.phase is Phase.PROVISIONAL:
            actions.extend(self._provisional(t))
        elif self.phase is Phase.CONFIRMED:
            actions.extend(self._confirmed(t, ebike))
        return actions

    def _lookalike(self, ebike: Detection, detections: Sequence[Detection]) -> bool:
        """Two-wheelers confuse the model: the same object seen more surely as a bicycle is one."""
        return any(
            other.label in self.config.lookalike_labels
            and other.score > ebike.score
            and iou(other, ebike) >= self.config.lookalike_iou
            for other in detections
        )

    def _window(self, t: float) -> tuple[int, int, float]:
        start = max(self._first_sighting_t, t - self.config.window_s)
        frames = [o for o in self._history if o.t >= start]
        ebike_scores = [o.ebike.score for o in frames if o.ebike is not None]
        mean_score = sum(ebike_scores) / len(ebike_scores) if ebike_scores else 0.0
        return len(frames), len(ebike_scores), mean_score

    def _confirm_due(self, t: float) -> bool:
        config = self.config
        frames, ebike_frames, _mean_score = self._window(t)
        return (
            t - self._first_sighting_t >= config.confirm_min_s
            and ebike_frames >= config.confirm_min_frames
            and ebike_frames >= config.confirm_fraction * frames
        )

    def _confirm(self, t: float) -> list[Action]:
        _frames, ebike_frames, mean_score = self._window(t)
        self.phase = Phase.CONFIRMED
        self._last_ebike_t = t
        self._last_update_t = t
        self._last_voice_t = t
        return [
            self._action("voice_warning", t, reason="confirmed"),
            self._action(
                "event_new", t, confidence=mean_score, frames_seen=ebike_frames, detection=self._last_ebike
            ),
        ]

    def _quiet(self, t: float, ebike: Detection | None) -> list[Action]:
        """Cool-down: no provisional hold (no door chatter), but sustained evidence still confirms."""
        config = self.config
        if self._quiet_candidate_t is None:
            if ebike is None or ebike.score < config.provisional_score:
                return []
            self._quiet_candidate_t = t
        self._first_sighting_t = self._quiet_candidate_t
        if self._confirm_due(t):
            self._quiet_candidate_t = None
            actions = []
            if config.hold_door:
                self.door_held = True
                actions.append(self._action("hold_door", t, reason="confirmed", detection=ebike))
            return actions + self._confirm(t)
        if t - self._quiet_candidate_t >= config.confirm_timeout_s:
            self._quiet_candidate_t = None
        return []

    def _provisional(self, t: float) -> list[Action]:
        config = self.config
        if self._confirm_due(t):
            return self._confirm(t)
        if t - self._first_sighting_t >= config.confirm_timeout_s:
            self.phase = Phase.COOLDOWN
            self._cooldown_until = t + config.cooldown_s
            actions = []
            if self.door_held:
                self.door_held = False
                actions.append(self._action("release_door", t, reason="not_confirmed"))
            return actions
        return []

    def _confirmed(self, t: float, ebike: Detection | None) -> list[Action]:
        config = self.config
        if ebike is not None:
            self._last_ebike_t = t
        _frames, ebike_frames, mean_score = self._window(t)
        if t - self._last_ebike_t >= config.gone_after_s:
            actions = []
            if self.door_held:
                self.door_held = False
                actions.append(self._action("release_door", t, reason="ebike_left"))
            actions.append(self._action("event_end", t, confidence=mean_score, frames_seen=ebike_frames))
            self.phase = Phase.IDLE
            self._history.clear()
            return actions
        actions = []
        if ebike is not None and t - self._last_voice_t >= config.voice_repeat_s:
            self._last_voice_t = t
            actions.append(self._action("voice_warning", t, reason="repeat"))
        if t - self._last_update_t >= config.update_interval_s:
            self._last_update_t = t
            actions.append(
                self._action(
                    "event_update",
                    t,
                    confidence=mean_score,
                    frames_seen=ebike_frames,
                    detection=self._last_ebike,
                )
            )
        return actions

    def _action(
        self,
        kind: ActionKind,
        t: float,
        *,
        reason: str = "",
        confidence: float = 0.0,
        frames_seen: int = 0,
        detection: Detection | None = None,
    ) -> Action:
        track = detection or self._last_ebike
        return Action(
            kind=kind,
            t=t,
            reason=reason,
            confidence=round(min(1.0, max(0.0, confidence)), 4),
            started_t=self._first_sighting_t,
            track_id=track.track_id if track is not None else None,
            frames_seen=frames_seen,
            door_held=self.door_held,
            floor=self.floor,
            detection=detection,
        )
