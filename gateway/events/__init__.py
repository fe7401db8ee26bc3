"""Events: one open event per (device, type), revisions from devices, status and audit trail."""
