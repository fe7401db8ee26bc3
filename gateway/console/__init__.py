"""The operations console: server-rendered pages for the dispatch room, operators and managers.

``app.mount_console`` serves it from the gateway's API app: the login at ``/``, pages under ``/console``
(``docs/console.md``). Modules: ``web`` (context, sessions check, rendering), ``views`` (routes),
``session`` (signed cookie, CSRF), ``i18n`` (one JSON file per language), and the queries behind each
screen: ``desk``, ``eventpage``, ``devicespage``, ``governance``, with ``series``, ``siteplan`` and
``evidence``.
"""
