"""Traffic-signal control on the RESCO maps for eSpark (eSpark.md §2.3, App. A.5; sumo.md §4.1)."""
