"""The installer's workflow: from a site folder at the desk to a signed, verified device.

Desk side (``citywatch config|keys|device ...``): ``check`` (every mistake in every file, with file, line
and field), ``site`` (the site file listing its devices), ``template`` (``config new``), ``keys`` (the
site's Ed25519 signing keys), ``document`` (the config as a device runs it: file references made
bundle-relative), ``flash`` (the bundle written, read back, verified), ``push`` (a signed config sent
through the gateway), ``commissioning`` (``device check``).

Device side (imported by ``citywatch edge run --bundle``): ``signing`` (verify), ``bundle`` (load and
verify a bundle), ``live`` (run the agent, apply pushed configs live or by restarting the agent).

It lives in ``edge`` because both halves share the device config model and the bundle format, and the
device imports nothing but ``edge`` and the protocol (tests/test_layout.py).
"""
