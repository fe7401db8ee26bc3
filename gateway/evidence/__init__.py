"""Evidence of events: clips, annotated stills, photos and plate crops sent in parts on ``evidence``.

- ``models``: ``evidence_items`` (one row per item: the event it belongs to, kind, type, size, SHA-256
  and SHA-1, caption, times, status) and ``evidence_parts`` (chunks waiting for the rest of their item);
  the API shapes.
- ``service``: what the ingest does with a part (store, join, check, refuse), the follow-up push of
  evidence completed after its event, and the purge of partial items.
- ``files``: the joined items on disk, ``Settings.evidence_dir/<device_id>/<evidence_id>.<ext>``.
- ``links``: an event's evidence as links, for the API, the webhook payload and the CAP ``<resource>``s.
- ``views``: ``GET /events/{id}/evidence`` and ``GET /events/{id}/evidence/{evidence_id}``.
"""
