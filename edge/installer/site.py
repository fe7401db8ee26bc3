"""The site file: a site folder's ``site.yaml``, listing the device configs installed there.

```yaml
site: maple-gardens            # every device's device.site
description: "Maple Gardens compound, Xinhua Road and the Shuikou village road"
devices:
  - config: lift-a1.yaml       # relative to this folder
    kind: elevator             # optional: checked against the config
```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from citywatch.protocol.topics import ID_PATTERN
from edge.installer.yamlmap import YamlMap, align, dotted

SITE_FILE = "site.yaml"


class SiteDevice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    config: str = Field(min_length=1, title="Config file", description="Relative to the site folder.")
    kind: str | None = Field(default=None, title="Kind", description="Optional; checked against the config.")


class SiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str = Field(pattern=ID_PATTERN, title="Site", description="Every device's device.site.")
    description: str = Field(default="", max_length=500, title="Description")
    devices: list[SiteDevice] = Field(min_length=1, title="Devices")


@dataclass(frozen=True, slots=True)
class Site:
    path: Path
    site: str
    description: str
    devices: list[SiteDevice]
    yaml: YamlMap | None

    @property
    def directory(self) -> Path:
        return self.path.parent

    def config_paths(self) -> list[Path]:
        return [self.directory / device.config for device in self.devices]


class SiteError(Exception):
    """Every problem of a site file: (line, field path, message)."""

    def __init__(self, path: Path, problems: list[tuple[int | None, str, str]]) -> None:
        super().__init__(f"{path}: {len(problems)} problem(s)")
        self.path = path
        self.problems = problems


def load_site(path: Path) -> Site:
    try:
        text = path.read_text()
        mapped = YamlMap(text)
    except OSError as exc:
        raise SiteError(path, [(None, "<file>", f"cannot read it: {exc.strerror or exc}")]) from None
    except yaml.YAMLError as exc:
        raise SiteError(path, [(None, "<yaml>", f"YAML syntax error: {exc}")]) from None
    try:
        parsed = SiteFile.model_validate(mapped.data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = align(mapped.data, error["loc"]) if isinstance(mapped.data, dict) else []
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key: a site file has site, description and devices (each: config, kind)"
            problems.append((mapped.line(where), dotted(where), message))
        raise SiteError(path, problems) from None
    problems = []
    seen: set[str] = set()
    for index, device in enumerate(parsed.devices):
        if device.config in seen:
            problems.append((mapped.line(["devices", index]), f"devices[{index}]", "listed twice"))
        seen.add(device.config)
        if not (path.parent / device.config).is_file():
            problems.append(
                (
                    mapped.line(["devices", index, "config"]),
                    f"devices[{index}].config",
                    f"{device.config} is not in {path.parent}: correct the name or add the file",
                )
            )
    if problems:
        raise SiteError(path, problems)
    return Site(path, parsed.site, parsed.description, list(parsed.devices), mapped)
