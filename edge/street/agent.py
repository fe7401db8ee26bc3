"""The street camera agent: source -> detector -> ParkingAnalyzer -> one ``illegal_parking`` event per case,
with evidence photos and the plate.

``StreetAgent(config)`` (registered for ``kind: street`` in edge.agent) loads the detector, the plate
reader and the face cascade in its constructor, so a missing model stops ``citywatch edge run`` at start
with a clear message. Per case (one stopped vehicle in one zone): ``new`` at the warning (severity
notice) with the first photo and the plate crop, ``update`` at the violation (severity warning) with the
second photo, ``end`` when it left or the zone's hours ended (docs/protocol.md, ``illegal_parking``).
The camera is opened through ``STREET_CAMERAS`` (file, stream and usb built in; the street simulator is
the entry point ``camera.street_simulator``, see edge/registry.py).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from citywatch.protocol import Channel, EventType, Severity
from citywatch.protocol.messages import IllegalParkingDetails
from edge.config import StreetAgentConfig
from edge.events import EventEmitter
from edge.registry import NoSourceDriver
from edge.street.appearance import colour_histogram
from edge.street.closeup import CloseUpSource, source_can_zoom, vehicle_cut
from edge.street.config import StreetCameraConfig, StreetConfig
from edge.street.evidence import PhotoContent, plate_crop, render_photo
from edge.street.geometry import Box
from edge.street.parking import ParkingAction, ParkingAnalyzer
from edge.street.tracker import Sighting
from edge.uplink.evidence import evidence_messages
from edge.vision.camera_agent import CameraAgent
from edge.vision.config import DetectorConfig
from edge.vision.detector import Detector, DetectorOptions, labels_problem
from edge.vision.errors import VisionStartError
from edge.vision.sources import Frame, FrameSource, camera_registry
from edge.vision.types import Detection

log = logging.getLogger(__name__)

# The "camera" family: the built-in kinds, and entry points named camera.<kind> that every family shares.
STREET_CAMERAS = camera_registry("street.camera.source.kind")


def make_street_source(camera: StreetCameraConfig) -> FrameSource:
    return STREET_CAMERAS.get(camera.source.kind)(camera.source, camera)


class StreetStartError(VisionStartError):
    """Something the street agent needs cannot be loaded; the message says what and where."""


def detector_options(detector: DetectorConfig) -> DetectorOptions:
    return DetectorOptions(
        model_path=detector.model,
        layout=detector.layout,
        score_threshold=detector.score_threshold,
        iou_threshold=detector.iou_threshold,
        threads=detector.threads,
        labels=tuple(detector.labels) if detector.labels else None,
        input_size=detector.input_size,
        class_thresholds=dict(detector.class_thresholds),
        label_map=dict(detector.label_map),
        keep_labels=tuple(detector.keep_labels),
    )


def load_plate_reader(name: str) -> Any:
    from edge.street.plates import PlateModelError, make_plate_reader

    try:
        return make_plate_reader(name)
    except (PlateModelError, ValueError) as exc:
        raise StreetStartError(f"street.plate.reader: {exc}") from None


def load_face_finder() -> Any:
    from edge.evidence.privacy import FaceFinder

    return FaceFinder()  # EvidenceStartError (a VisionStartError) says what to install


def preflight(config: StreetAgentConfig) -> list[str]:
    """What ``citywatch edge check`` can add for a street camera: the model loads and reports the vehicle
    classes, the plate reader and face cascade load, the source kind has a driver."""
    street = config.street
    problems = []
    try:
        detector = Detector.load(detector_options(street.detector))
    except VisionStartError as exc:
        problems.append(f"street.detector.model: {exc}")
    else:
        if problem := labels_problem("street.vehicle_classes", street.vehicle_classes, detector):
            problems.append(problem)
    for load in (lambda: load_plate_reader(street.plate.reader), load_face_finder):
        if load is load_face_finder and not street.evidence.blur_faces:
            continue
        try:
            load()
        except VisionStartError as exc:
            problems.append(str(exc))
    try:
        driver = STREET_CAMERAS.get(street.camera.source.kind)
    except NoSourceDriver as exc:
        problems.append(f"street.camera.source: {exc}")
    else:
        if _wants_closeups(street) and not source_can_zoom(driver):
            problems.append(_cannot_zoom(street.camera.source.kind))
    return problems


def _wants_closeups(street: StreetConfig) -> bool:
    """A PTZ is asked for, and plates are read at all."""
    return street.camera.closeup.enabled and street.plate.reader != "none"


def _cannot_zoom(kind: str) -> str:
    return (
        f"street.camera.closeup.enabled: the {kind!r} source kind has no PTZ camera to zoom with; "
        "set enabled: false (plates are then read from the fixed view)"
    )


@dataclass(frozen=True, slots=True)
class _Retuned:
    detector: Detector
    face_finder: Any


class StreetAgent(CameraAgent):
    agent_name: ClassVar[str] = "street"
    event_type: ClassVar[EventType] = EventType.ILLEGAL_PARKING

    def __init__(
        self,
        config: StreetAgentConfig,
        *,
        uplink: Any = None,
        source: FrameSource | None = None,
        detector: Detector | None = None,
        plate_reader: Any = None,
        face_finder: Any = None,
        clock: Any = None,  # accepted for symmetry with the culvert agent; frames carry their own time
    ) -> None:
        street = config.street
        # Everything that can fail at start, before the uplink and the grabber exist.
        self.detector = detector or Detector.load(detector_options(street.detector))
        self.plate_reader = (
            plate_reader if plate_reader is not None else load_plate_reader(street.plate.reader)
        )
        self.face_finder = face_finder
        if face_finder is None and street.evidence.blur_faces:
            self.face_finder = load_face_finder()
        self.analyzer = ParkingAnalyzer(street)
        self.street = street
        super().__init__(
            config,
            source=source if source is not None else make_street_source(street.camera),
            camera=street.camera,
            paced=bool(getattr(street.camera.source, "realtime", False)),
            uplink=uplink,
        )
        self._zoom: CloseUpSource | None = None
        if _wants_closeups(street):
            if not isinstance(self.grabber.source, CloseUpSource):
                raise StreetStartError(_cannot_zoom(street.camera.source.kind))
            self._zoom = self.grabber.source
        self._frame_t = 0.0  # the source's own clock at the frame in hand (a close-up is taken at it)
        self.cases: dict[int, EventEmitter] = {}  # open events by case id
        self.plates: dict[int, Any] = {}  # the best plate reading by case id
        self._plate_tried: dict[int, float] = {}
        self._zoomed: dict[int, float] = {}  # when each case's last close-up was taken
        self.actions: list[ParkingAction] = []
        self.evidence_sent = 0
        # Photos (face search, drawing, JPEG: up to a second) are made off the frame loop, one at a time.
        self._photos = ThreadPoolExecutor(max_workers=1, thread_name_prefix="street-photos")

    # -- frame loop -------------------------------------------------------------------------------
    def process(self, frame: Frame) -> list[ParkingAction]:
        t = self.frame_time(frame)
        self._frame_t = frame.t
        wall = self.timestamp(t)
        image = frame.image
        detections = self.detector.detect(image)
        vehicles = set(self.street.vehicle_classes)
        sightings = []
        for det in detections:
            if det.label in vehicles:
                box = Box(det.x1, det.y1, det.x2, det.y2)
                sightings.append(Sighting(det.label, det.score, box, colour_histogram(image, box)))
        actions = self.analyzer.update(t, wall, sightings)
        self.health.processed(self.detector.last_inference_ms)
        self.frames_processed += 1
        for action in actions:
            self.actions.append(action)
            try:
                self._apply(action, image, detections)
            except Exception:  # a failed photo must not lose the event or stop the loop
                log.exception("street agent: case %d %s failed", action.case_id, action.kind)
        self._retry_plates(t, image)
        return actions

    def _apply(self, action: ParkingAction, image: np.ndarray, detections: list[Detection]) -> None:
        ts = self.timestamp(action.t)
        if action.kind == "warning":
            self._read_plate(action.case_id, image, action.box, action.t)
            opened = self.emitter()
            message = opened.open(
                ts=ts,
                severity=Severity.NOTICE,
                details=self._details(action),
                confidence=self._confidence(action),
                started_at=self.timestamp(action.started_t),
            )
            self.cases[action.case_id] = opened
            self.uplink.send(Channel.EVENT, message)
            self._submit_photo(action, message.event_id, image, detections, ts)
            log.warning(
                "illegal parking warning: %s in zone %s for %.0f s (event %s)",
                action.vehicle_class,
                action.zone,
                action.dwell_s,
                message.event_id,
            )
        elif action.kind == "violation":
            current = self.cases.get(action.case_id)
            if current is None or not current.is_open:
                return
            self._read_plate(action.case_id, image, action.box, action.t)
            message = current.update(
                ts=ts,
                details=self._details(action),
                severity=Severity.WARNING,
                confidence=self._confidence(action),
            )
            self.uplink.send(Channel.EVENT, message)
            self._submit_photo(action, message.event_id, image, detections, ts)
            log.warning("illegal parking violation: zone %s, event %s", action.zone, message.event_id)
        else:
            self._end_case(action)

    def _end_case(self, action: ParkingAction) -> None:
        ending = self.cases.pop(action.case_id, None)
        if ending is None or not ending.is_open:
            return
        ts = self.timestamp(action.t)
        message = ending.end(ts=ts, details=self._details(action), confidence=self._confidence(action))
        self.uplink.send(Channel.EVENT, message)
        self.plates.pop(action.case_id, None)
        self._plate_tried.pop(action.case_id, None)
        self._zoomed.pop(action.case_id, None)
        log.info("illegal parking %s: event %s ended", action.stage, message.event_id)

    def _details(self, action: ParkingAction) -> dict[str, Any]:
        plate = self.plates.get(action.case_id)
        vehicle_class = action.vehicle_class if action.vehicle_class in _PROTOCOL_CLASSES else None
        return IllegalParkingDetails(
            stage=action.stage,
            zone=action.zone,
            dwell_s=round(max(action.dwell_s, 0.0), 1),
            grace_s=round(action.grace_s, 1) if action.grace_s is not None else None,
            vehicle_class=vehicle_class,  # type: ignore[arg-type]  # checked against the protocol's list
            plate=plate.text if plate is not None else None,
            plate_colour=plate.colour if plate is not None else None,
            plate_confidence=round(float(plate.confidence), 3) if plate is not None else None,
            box=[round(float(v), 1) for v in action.box.as_tuple()],
            departure=action.departure,
            violation_recorded=action.violation_recorded if action.kind == "end" else None,
        ).model_dump(exclude_none=True)

    def _confidence(self, action: ParkingAction) -> float:
        track = next((tr for tr in self.analyzer.tracker.tracks if tr.track_id == action.track_id), None)
        if track is None or track.hits == 0:
            return 0.9
        mean_score = sum(track.label_votes.values()) / track.hits
        return round(min(max(mean_score, 0.05), 1.0), 3)

    # -- plates -----------------------------------------------------------------------------------
    def _read_plate(self, case_id: int, image: np.ndarray, box: Box, t: float) -> None:
        """Read the plate: from a close-up where the pole has a PTZ camera (at most every
        ``camera.closeup.retry_s`` per case), else from the fixed view. With a PTZ the fixed view is not
        read at all: its plates are a few pixels high, where confident readings are often wrong
        (models/plates/plate-reader.md), and a wrong plate sends the notice to someone else."""
        self._plate_tried[case_id] = t
        if self._zoom is not None:
            self._read_closeup(case_id, box, t)
            return
        height, width = image.shape[:2]
        x1, y1 = max(0, int(box.x1)), max(0, int(box.y1))
        x2, y2 = min(width, int(np.ceil(box.x2))), min(height, int(np.ceil(box.y2)))
        if x2 - x1 < 8 or y2 - y1 < 8:
            return
        reading = self.plate_reader.read(image[y1:y2, x1:x2])
        if self._keep(case_id, reading):
            px1, py1, px2, py2 = reading.box
            # Keep where it was read in the frame too, for the photo and the crop.
            self.plates[case_id] = _FramePlate(
                reading.text, reading.colour, reading.confidence, Box(x1 + px1, y1 + py1, x1 + px2, y1 + py2)
            )

    def _read_closeup(self, case_id: int, box: Box, t: float) -> None:
        closeup = self.street.camera.closeup
        if t - self._zoomed.get(case_id, -1e9) < closeup.retry_s:
            return
        self._zoomed[case_id] = t
        assert self._zoom is not None
        try:
            shot = self._zoom.closeup(
                box.as_tuple(),
                self._frame_t,
                fill=closeup.fill,
                max_zoom=closeup.max_zoom,
                frames=closeup.frames,
            )
        except Exception as exc:  # a PTZ that fails costs the plate, never the case's event
            log.warning(
                "street agent: the close-up of case %d failed (%s); the plate stays unread", case_id, exc
            )
            return
        if shot is None:
            return
        # Each frame is read and let go before the next (only the plate with its margin is kept).
        readings: dict[str, list[tuple[Any, tuple[np.ndarray, Box]]]] = {}
        taken = 0
        for image in shot.frames:
            taken += 1
            cut = vehicle_cut(image, shot.box)
            reading = self.plate_reader.read(cut)
            if reading is not None and reading.confidence >= self.street.plate.min_confidence:
                readings.setdefault(reading.text, []).append((reading, _around_plate(cut, reading.box)))
        agreed = [group for group in readings.values() if len(group) >= min(2, taken)]
        if not agreed:
            return
        # The text most frames agree on; of its readings, the surest.
        most = max(len(group) for group in agreed)
        group = next(group for group in agreed if len(group) == most)
        reading, around = max(group, key=lambda item: item[0].confidence)
        if self._keep(case_id, reading):
            # The plate crop is made from the close-up (the fixed view's photo draws no plate box: the
            # reading is not in its pixels).
            self.plates[case_id] = _FramePlate(
                reading.text, reading.colour, reading.confidence, None, closeup=around
            )
            log.info("plate %s read from a close-up (zoom %.1fx)", "*" * len(reading.text), shot.zoom)

    def _keep(self, case_id: int, reading: Any) -> bool:
        if reading is None or reading.confidence < self.street.plate.min_confidence:
            return False
        best = self.plates.get(case_id)
        return best is None or reading.confidence > best.confidence

    def _retry_plates(self, t: float, image: np.ndarray) -> None:
        """Open cases without a sure plate: read again every plate.retry_s while the vehicle is seen."""
        for case in self.analyzer.open_cases():
            if case.case_id in self.plates or case.track.last_seen_t != t:
                continue
            if t - self._plate_tried.get(case.case_id, -1e9) >= self.street.plate.retry_s:
                self._read_plate(case.case_id, image, case.track.box, t)

    # -- evidence ---------------------------------------------------------------------------------
    def _submit_photo(
        self,
        action: ParkingAction,
        event_id: str,
        image: np.ndarray,
        detections: list[Detection],
        ts: datetime,
    ) -> None:
        """Queue the stage's photo; the frame and the plate reading are taken now, as they are."""
        plate = self.plates.get(action.case_id)
        self._photos.submit(
            self._send_photo_logged, action, event_id, image.copy(), list(detections), ts, plate, self.street
        )

    def _send_photo_logged(self, *args: Any) -> None:
        try:
            self._send_photo(*args)
        except Exception:  # a failed photo must not lose the event (already sent) or stop later photos
            log.exception("street agent: the photo of event %s failed", args[1])

    def _send_photo(
        self,
        action: ParkingAction,
        event_id: str,
        image: np.ndarray,
        detections: list[Detection],
        ts: datetime,
        plate: Any,
        street: StreetConfig,  # as it was at the action (a config applied live may change self.street)
    ) -> None:
        evidence = street.evidence
        zone = next(z for z in street.zones if z.name == action.zone)
        vehicles = set(street.vehicle_classes)
        people = set(street.privacy_classes)
        own = action.box
        others = [
            Box(d.x1, d.y1, d.x2, d.y2)
            for d in detections
            if d.label in vehicles and Box(d.x1, d.y1, d.x2, d.y2) != own
        ]
        local = ts.astimezone(self.analyzer.timezone)
        caption = f"{local:%Y-%m-%d %H:%M:%S %z}  {action.zone}  {action.stage.upper()}  dwell {action.dwell_s:.0f} s"
        content = PhotoContent(
            zone=zone.polygon,
            vehicle=own,
            own_plate=plate.box if plate is not None else None,
            other_vehicles=others,
            people=[Box(d.x1, d.y1, d.x2, d.y2) for d in detections if d.label in people],
            faces=self.face_finder.find(image)
            if (self.face_finder is not None and evidence.blur_faces)
            else [],
            caption=caption,
        )
        locate = getattr(self.plate_reader, "locate", None)
        jpeg = render_photo(
            image, content, evidence, (lambda crop: _box_only(locate(crop))) if locate else None
        )
        self._send_evidence(event_id, "photo", jpeg, ts, f"{action.stage} {action.zone}")
        if evidence.plate_crop and plate is not None:
            crop = (
                plate_crop(image, plate.box, quality=evidence.jpeg_quality)
                if plate.box is not None
                else plate_crop(*plate.closeup, quality=evidence.jpeg_quality)
            )
            if crop is not None:
                self._send_evidence(event_id, "plate_crop", crop, ts, "plate")

    def _send_evidence(self, event_id: str, kind: str, data: bytes, taken_at: datetime, caption: str) -> None:
        for message in evidence_messages(
            device_id=self.config.device.id,
            event_id=event_id,
            kind=kind,
            content_type="image/jpeg",
            data=data,
            taken_at=taken_at,
            caption=caption,
        ):
            self.uplink.send(Channel.EVIDENCE, message)
        self.evidence_sent += 1

    # -- live config (edge/live_fields.py: what may change while it runs) -------------------------
    def prepare_config(self, config: StreetAgentConfig, changed: tuple[str, ...] | list[str]) -> _Retuned:
        street = config.street
        detector = self.detector
        if any(path.startswith("street.detector.") for path in changed):
            detector = detector.retuned(detector_options(street.detector))  # ModelError: not for this model
        if problem := labels_problem("street.vehicle_classes", street.vehicle_classes, detector):
            raise ValueError(problem)
        face_finder = self.face_finder
        if street.evidence.blur_faces and face_finder is None:
            face_finder = load_face_finder()
        return _Retuned(detector, face_finder)

    def swap_config(self, config: StreetAgentConfig, changed: tuple[str, ...], prepared: _Retuned) -> None:
        self.detector, self.face_finder = prepared.detector, prepared.face_finder
        ended = self.analyzer.retune(config.street)  # open cases in a zone that is gone
        self.street = config.street
        for action in ended:
            self.actions.append(action)
            self._end_case(action)

    # -- hooks ------------------------------------------------------------------------------------
    def close(self) -> None:
        self._photos.shutdown(wait=True)  # queued photos go out before the uplink stops

    def on_source_end(self) -> None:
        open_cases = self.analyzer.open_cases()
        if open_cases:
            log.info("source ended with %d parking case(s) open; they stay open", len(open_cases))

    def health_fields(self) -> dict[str, Any]:
        return {
            "tracks": len(self.analyzer.tracker.tracks),
            "open_cases": len(self.analyzer.open_cases()),
            "warnings": self.analyzer.warnings,
            "violations": self.analyzer.violations,
        }


_PROTOCOL_CLASSES = frozenset({"car", "truck", "bus", "motorbike", "ebike"})


class _FramePlate:
    """A plate reading with its box in frame pixels (the reader's is in the vehicle crop); read from a
    close-up, ``box`` is None and ``closeup`` holds the plate as the close-up shows it (image, box in it)."""

    __slots__ = ("box", "closeup", "colour", "confidence", "text")

    def __init__(
        self, text: str, colour: str, confidence: float, box: Box | None, *, closeup: Any = None
    ) -> None:
        self.text, self.colour, self.confidence, self.box = text, colour, confidence, box
        self.closeup = closeup


def _around_plate(cut: np.ndarray, plate: tuple[int, int, int, int]) -> tuple[np.ndarray, Box]:
    """The plate with a margin, copied out of a close-up's vehicle cut (so the frame can go), and the
    plate's box in that copy."""
    px1, py1, px2, py2 = plate
    left, top = max(0, px1 - (px2 - px1)), max(0, py1 - 2 * (py2 - py1))
    around = cut[top : py2 + 2 * (py2 - py1), left : px2 + (px2 - px1)].copy()
    return around, Box(px1 - left, py1 - top, px2 - left, py2 - top)


def _box_only(found: Any) -> tuple[int, int, int, int] | None:
    """OnnxPlateReader.locate returns (box, score); the photo only needs the box."""
    return None if found is None else found[0]
