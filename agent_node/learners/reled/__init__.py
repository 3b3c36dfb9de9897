"""RELED core math (RELED paper, Secs. III-D, III-E; docs/reled.md, RL-8, RL-11): DTW weight alpha, RVI/PDI pairs."""
