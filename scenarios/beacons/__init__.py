"""The beacon world on the figure-eight: vehicles in SUMO broadcasting beacons through the medium."""
