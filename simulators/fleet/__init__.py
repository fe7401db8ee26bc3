"""A fleet of simulated devices (culverts, elevator cameras) as real MQTT sessions from one process.

``simulators.fleet.fleet``: the fleet (``FleetOptions``, ``Fleet``, ``FleetThread``); ``packets``: the
MQTT packets; ``provision``: registering the fleet at a gateway; ``cli``: ``citywatch sim fleet``.
"""
