"""The RSM-MASAC connected-vehicle scenarios: figure-eight and highway merge, episodic, in SUMO."""
