"""SUMO helpers shared by the SUMO worlds: the simulator wrapper and the figure-eight network builder."""
