"""Source kinds and the code that opens them, so the edge names no package it does not ship.

A registry maps the kind a device config names (``sensor.type: serial``, ``camera.source.kind: usb``)
to a factory. The edge's own drivers register in code with ``@registry.register("serial")``. Other
packages declare theirs as entry points in the ``citywatch.edge_sources`` group, named
``<family>.<kind>`` (the simulators' ``sensor.simulated``, ``sensor.replay`` and ``camera.simulator``:
see pyproject.toml). An entry point is loaded only when a configured kind has no driver yet, so a
serial culvert never imports the simulators, nor numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

ENTRY_POINT_GROUP = "citywatch.edge_sources"

Factory = TypeVar("Factory", bound=Callable[..., Any])


class NoSourceDriver(LookupError):
    """A configured source kind that nothing installed can open; the message says what to install."""


class SourceRegistry(Generic[Factory]):
    def __init__(self, family: str, *, config_field: str) -> None:
        self.family = family  # the entry-point name prefix: "sensor", "camera"
        self.config_field = config_field  # where the kind is written in a device config, for messages
        self._factories: dict[str, Factory] = {}

    def register(self, kind: str) -> Callable[[Factory], Factory]:
        def add(factory: Factory) -> Factory:
            self._factories[kind] = factory
            return factory

        return add

    def get(self, kind: str) -> Factory:
        """The factory for ``kind``: built in, or loaded from the entry point that provides it."""
        if kind not in self._factories:
            self._factories[kind] = self._load(kind)
        return self._factories[kind]

    def kinds(self) -> list[str]:
        """Every kind available here: built in or provided by an installed package."""
        return sorted({*self._factories, *self._provided()})

    def _provided(self) -> dict[str, EntryPoint]:
        prefix = f"{self.family}."
        return {
            point.name.removeprefix(prefix): point
            for point in entry_points(group=ENTRY_POINT_GROUP)
            if point.name.startswith(prefix)
        }

    def _load(self, kind: str) -> Factory:
        point = self._provided().get(kind)
        if point is None:
            raise NoSourceDriver(
                f"{self.config_field} {kind!r} has no driver: the edge has none built in and no installed"
                f" package provides one (entry point '{self.family}.{kind}' in group {ENTRY_POINT_GROUP!r});"
                f" known here: {', '.join(self.kinds()) or 'none'}. The simulated and replayed sources come"
                " with the simulators package of the citywatch distribution (pip install citywatch)."
            )
        try:
            factory: Factory = point.load()
        except ImportError as exc:  # the provider is declared but its own dependencies are missing
            raise NoSourceDriver(
                f"{self.config_field} {kind!r} needs {point.value}, which cannot be imported: {exc}"
            ) from exc
        return factory
