"""Start-up errors of the camera agent (stdlib only, so ``citywatch edge`` can catch them cheaply)."""


class VisionStartError(RuntimeError):
    """The camera agent cannot start: the message says what to fix (model file, video source)."""
