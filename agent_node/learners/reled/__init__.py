"""RELED core math (spec RELED.md §3.3-3.4, §4.3, §9.4-9.7): DTW weight alpha, RVI/PDI feedback pairs."""
