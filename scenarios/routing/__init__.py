"""RELED city routing: maps, the event-driven SUMO environment, the world process and the run plan."""
