"""netmarl dashboard: a local web page that follows runs and sweeps live (and replays them after)."""
