"""Device <-> broker link with a store-and-forward outbox on disk (used by every edge agent).

``send`` appends to the SQLite outbox and returns at once; one network thread connects (with
backoff), publishes the retained birth ``state`` with a fresh session number (the will carries the
same number), drains the outbox in order with QoS 1, and deletes each row once the gateway's receipt
lists it (or, with ``receipts=None``, on its PUBACK). Commands and config pushes arrive on ``cmd`` /
``config`` and are answered on ``ack``; receipts arrive on ``receipt``; what the gateway refused, on
``refusal`` (logged and counted).

- ``link``: ``Uplink``, what an agent holds (send, start, stop, flush, counters);
- ``connection``: the network thread (connect and back off, birth and will, paho's loop);
- ``pump``: the outbox onto the wire, a row kept until delivered, sent again when it was lost;
- ``commands``: commands answered on ``ack``; ``config_push``: config pushes checked and answered;
- ``refusals``: the gateway's refusals of this device's messages, logged and counted.
"""

from edge.uplink.link import Uplink

__all__ = ["Uplink"]
