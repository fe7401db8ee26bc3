"""Device registry: provisioned devices, their area and presence."""
