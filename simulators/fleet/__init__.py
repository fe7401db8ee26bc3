"""A fleet of simulated devices (culverts, elevator cameras) as real MQTT sessions from one process.

``simulators.fleet.fleet``: the fleet (``FleetOptions``, ``Fleet``, ``FleetThread``), its MQTT packets
encoded by ``citywatch.mqtt_packets`` (shared with the bench publisher); ``provision``: registering the
fleet at a gateway; ``cli``: ``citywatch sim fleet``.
"""
