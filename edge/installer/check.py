"""``citywatch config check``: every mistake in every file of a site, each with file, line, field and a fix.

Three layers, all reported together:

1. the device config model (edge/config.py and each kind's config module): what it refuses, placed at
   the line of the field, an unknown key with the closest valid one, a missing one with its meaning;
2. the desk's own rules: the files a config names exist (models, CA), a detector's model loads and
   matches the config (input size, labels), a culvert's sensor still sees the water at the warning
   level, no MQTT password in a URL, a camera URL answers (``online=True``);
3. the site: device ids and MQTT identities (client id, user) unique, each config's site the site's.

Errors make ``check`` fail (the CLI exits 2); warnings are shown and pass.
"""

from __future__ import annotations

import difflib
import socket
import typing
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import TypeAdapter, ValidationError

from edge.config import _ADAPTER, AgentConfig, DeviceConfig
from edge.installer.fields import field_info, members, valid_keys
from edge.installer.site import SITE_FILE, SiteError, load_site
from edge.installer.yamlmap import YamlMap, align, dotted, split
from edge.uplink.config_push import input_files

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    line: int | None
    path: str
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.path}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass
class Checked:
    """One config file: its findings and, when the model took it, the config."""

    file: Path
    config: AgentConfig | None = None
    yaml: YamlMap | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(self, path: Sequence[str | int], message: str, severity: Severity = "error") -> None:
        line = self.yaml.line(path) if self.yaml is not None else None
        self.findings.append(Finding(str(self.file), line, dotted(path), message, severity))


@dataclass
class Report:
    files: list[Checked] = field(default_factory=list)
    site_findings: list[Finding] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        every = [f for checked in self.files for f in checked.findings] + self.site_findings
        return sorted(every, key=lambda f: (f.file, f.line or 0, f.path))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class CheckOptions:
    online: bool = False  # connect to camera URLs
    models: bool = True  # load detector models (needs the vision extra)
    connect_timeout_s: float = 3.0


def check_paths(paths: Iterable[Path], options: CheckOptions = CheckOptions()) -> Report:
    """Check config files and site folders (a folder: its site.yaml's devices, else every *.yaml)."""
    report = Report()
    for path in paths:
        if path.is_dir():
            _check_site(path, report, options)
        else:
            report.files.append(check_file(path, options))
    _check_identities(report)
    return report


def _check_site(directory: Path, report: Report, options: CheckOptions) -> None:
    site_file = directory / SITE_FILE
    if not site_file.is_file():
        files = sorted(p for p in directory.glob("*.yaml") if p.name != SITE_FILE)
        if not files:
            report.site_findings.append(
                Finding(str(directory), None, "<folder>", f"no {SITE_FILE} and no *.yaml device configs here")
            )
        report.files += [check_file(p, options) for p in files]
        return
    try:
        site = load_site(site_file)
    except SiteError as exc:
        report.site_findings += [
            Finding(str(site_file), line, path, text) for line, path, text in exc.problems
        ]
        return
    for index, entry in enumerate(site.devices):
        checked = check_file(directory / entry.config, options)
        report.files.append(checked)
        config = checked.config
        if config is None:
            continue
        where = site.yaml.line(["devices", index]) if site.yaml else None
        if config.device.site != site.site:
            checked.add(
                ["device", "site"],
                f"is {config.device.site!r}, but {site_file} is for site {site.site!r}: "
                f"set device.site to {site.site!r}",
            )
        kind = getattr(config, "kind", None)
        if entry.kind is not None and entry.kind != kind:
            report.site_findings.append(
                Finding(
                    str(site_file),
                    where,
                    f"devices[{index}].kind",
                    f"says {entry.kind!r}, but {entry.config} is a {kind!r} config: correct one of them",
                )
            )
    listed = {(directory / e.config).resolve() for e in site.devices}
    for stray in sorted(p for p in directory.glob("*.yaml") if p.name != SITE_FILE):
        if stray.resolve() not in listed:
            report.site_findings.append(
                Finding(
                    str(site_file),
                    None,
                    "devices",
                    f"{stray.name} is in the folder but not listed: add it to devices, or move it away",
                    "warning",
                )
            )


def check_file(path: Path, options: CheckOptions = CheckOptions()) -> Checked:
    checked = Checked(path)
    try:
        text = path.read_text()
    except OSError as exc:
        checked.add([], f"cannot read the file: {exc.strerror or exc}")
        return checked
    try:
        checked.yaml = YamlMap(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f", column {mark.column + 1}" if mark else ""
        message = f"YAML syntax error{column}: {exc.problem or exc}: fix the indentation or quoting there"
        checked.findings.append(Finding(str(path), line, "<yaml>", message))
        return checked
    data = checked.yaml.data
    if data is None:
        checked.add([], "the file is empty: start from `citywatch config new`")
        return checked
    if not isinstance(data, dict):
        checked.add([], f"the top level must be a mapping of sections, got {type(data).__name__}")
        return checked
    try:
        checked.config = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        for error in exc.errors():
            _model_finding(checked, data, error)
        partial = _valid_sections(data)
        if partial is not None:  # the desk's rules on the sections the model took: every mistake at once
            _desk_rules(checked, partial, options)
        return checked
    assert checked.config is not None
    _desk_rules(checked, checked.config, options)
    return checked


def _valid_sections(data: dict[str, Any]) -> Any:
    """The config built from the sections that are valid on their own (the others left out), or None."""
    for model in members(DeviceConfig):
        if data.get("kind") not in typing.get_args(model.model_fields["kind"].annotation):
            continue
        sections: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            if name in data:
                try:
                    sections[name] = TypeAdapter(info.annotation).validate_python(data[name])
                except ValidationError:
                    continue
            elif not info.is_required():
                sections[name] = info.get_default(call_default_factory=True)
        return model.model_construct(**sections)
    return None


def _model_finding(checked: Checked, data: dict[str, Any], error: Any) -> None:
    loc = list(error["loc"])
    if loc and loc[0] == data.get("kind"):
        loc = loc[1:]  # the device kind's tag (for a culvert also the name of its section)
    path = align(data, loc)
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed = valid_keys(data, path[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        message = f"unknown field (typo?) {key!r}: {hint}valid here: {', '.join(allowed)}"
    elif kind == "missing":
        info = field_info(data, path)
        meaning = ""
        if info is not None:
            meaning = ": " + ". ".join(t for t in (info.title, info.description) if t)
        message = f"required key {str(path[-1])!r} is missing: add it{meaning}"
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        message = message.replace("Input tag", "kind/type")
    elif "input" in error and not isinstance(error["input"], dict | list) and kind != "model_type":
        message += f" (got {error['input']!r})"
    checked.add(path, message)


def _desk_rules(checked: Checked, config: AgentConfig, options: CheckOptions) -> None:
    _files_exist(checked, config)
    _culvert_rules(checked, config)
    _mqtt_rules(checked, config)
    if options.models:
        _detector_rules(checked, config)
    if options.online:
        _online_rules(checked, config, options)


def _files_exist(checked: Checked, config: AgentConfig) -> None:
    for field_path, path in input_files(config).items():
        if field_path == "mqtt.password_file":
            continue  # written by config flash into the bundle
        if not path.is_file():
            checked.add(
                split(field_path),
                f"file {path} does not exist (relative paths are from the working directory, "
                f"{Path.cwd()}): correct the path or put the file there",
            )


def _culvert_rules(checked: Checked, config: AgentConfig) -> None:
    section = getattr(config, "culvert", None)
    if section is None:
        return
    mount = section.mount_height_mm
    thresholds = section.thresholds
    for name in ("notice_cm", "warning_cm", "critical_cm"):
        level_mm = getattr(thresholds, name) * 10
        distance = mount - level_mm
        if distance < section.min_range_mm:
            severity: Severity = "error" if name != "critical_cm" else "warning"
            where = "above the sensor" if distance <= 0 else "inside the sensor's blind zone"
            checked.add(
                ["culvert", "mount_height_mm"],
                f"{mount} mm is too low for {name} ({getattr(thresholds, name):g} cm): water at that level is "
                f"{where} (min_range_mm {section.min_range_mm}); mount the sensor higher (at least "
                f"{int(level_mm + section.min_range_mm)} mm) or lower the threshold",
                severity,
            )


def _mqtt_rules(checked: Checked, config: AgentConfig) -> None:
    section = getattr(config, "mqtt", None)
    if section is None:
        return
    url = urlsplit(section.url)
    if url.password:
        checked.add(
            ["mqtt", "url"],
            "carries a password: a config is pushed over MQTT and stored by the gateway; leave it out, "
            "`citywatch config flash` writes the device's own credentials into its bundle",
            "warning",
        )


def _detector_sections(config: AgentConfig) -> list[tuple[str, Any]]:
    """(path, section) of every part of the config that has a detector (elevator, street...)."""
    found = []
    for name in type(config).model_fields:
        section: Any = getattr(config, name, None)
        if hasattr(section, "detector") and hasattr(section.detector, "model"):
            found.append((name, section))
    return found


def _detector_rules(checked: Checked, config: AgentConfig) -> None:
    sections = [(n, s) for n, s in _detector_sections(config) if Path(s.detector.model).is_file()]
    if not sections:
        return
    try:
        import onnxruntime as ort

        from edge.vision.detector import Detector
        from edge.vision.errors import VisionStartError
        from edge.vision.pipeline import detector_options
    except ImportError:
        checked.add(
            [], "detector models not checked: install the vision extra (citywatch[vision])", "warning"
        )
        return
    for name, section in sections:
        detector = section.detector
        try:
            session = ort.InferenceSession(str(detector.model), providers=["CPUExecutionProvider"])
            shape = session.get_inputs()[0].shape
        except Exception:  # not a model at all: Detector.load below says so
            shape = []
        static = [d for d in shape[2:4] if isinstance(d, int)]
        if detector.input_size is not None and len(static) == 2 and static[0] != detector.input_size:
            checked.add(
                [name, "detector", "input_size"],
                f"is {detector.input_size}, but {detector.model} takes {static[0]}x{static[1]} inputs: "
                "remove input_size (it is only for models with dynamic input shapes)",
            )
            continue
        try:
            loaded = Detector.load(detector_options(section))
        except VisionStartError as exc:
            text = str(exc).removeprefix("model file ")
            unloadable = "not a loadable" in text or "does not exist" in text
            where = [name, "detector", "model"] if unloadable else [name, "detector"]
            checked.add(where, f"{text}: correct the detector section")
            continue
        trigger = getattr(getattr(section, "ebike", None), "trigger_labels", None) or []
        if missing := sorted(set(trigger) - set(loaded.labels)):
            checked.add(
                [name, "ebike", "trigger_labels"],
                f"{missing} are not labels of {detector.model} {list(loaded.output_labels)}: use its labels, "
                "or map them with detector.label_map",
            )
        vehicles = getattr(section, "vehicle_classes", None) or []
        if missing := sorted(set(vehicles) - set(loaded.output_labels)):
            checked.add(
                [name, "vehicle_classes"],
                f"{missing} are not labels of {detector.model} {list(loaded.output_labels)}: use its labels, "
                "or map them with detector.label_map",
            )


def _online_rules(checked: Checked, config: AgentConfig, options: CheckOptions) -> None:
    for name in type(config).model_fields:
        camera = getattr(getattr(config, name, None), "camera", None)
        source = getattr(camera, "source", None)
        url = getattr(source, "url", None)
        if not isinstance(url, str):
            continue
        parts = urlsplit(url)
        default_port = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}.get(parts.scheme, 554)
        host, port = parts.hostname or "", parts.port or default_port
        try:
            with socket.create_connection((host, port), timeout=options.connect_timeout_s):
                pass
        except OSError as exc:
            checked.add(
                [name, "camera", "source", "url"],
                f"{parts.scheme}://{host}:{port} does not answer ({exc.strerror or exc}): check the camera's "
                "power, address and the network from the device's place",
            )


def _check_identities(report: Report) -> None:
    """Device ids, MQTT client ids and users: one device each, across every file checked together."""
    by_key: dict[tuple[str, str], list[Checked]] = defaultdict(list)
    for checked in report.files:
        config = checked.config
        if config is None:
            continue
        device = config.device
        by_key[("device id", device.id)].append(checked)  # the gateway's registry: one id, one device
        by_key[("MQTT client id", f"citywatch-{device.site}-{device.id}")].append(checked)
        if config.mqtt.username:
            by_key[("MQTT user", config.mqtt.username)].append(checked)
    for (what, value), holders in by_key.items():
        if len(holders) < 2:
            continue
        if what == "MQTT client id" and len({h.config.device.id for h in holders if h.config}) < 2:
            continue  # the same id twice: said once, as a device id
        names = ", ".join(str(h.file) for h in holders)
        for checked in holders:
            path = ["mqtt", "username"] if what == "MQTT user" else ["device", "id"]
            checked.add(path, f"{what} {value} is also used by {names}: every device needs its own")
