"""Event lifecycle: the state machine, SLA and escalation, de-duplication, plans. Pure functions, no I/O."""
