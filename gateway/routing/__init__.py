"""Routing: which department handles an event, within which SLA; unmatched events go to triage.

``models`` holds the YAML schema, ``service`` loads, checks and routes; ``cli`` adds
``citywatch gateway routing check``. This package file imports nothing, so the CLI stays light.
"""
