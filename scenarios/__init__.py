"""Environments, scenario files and the world process that owns the simulator."""
