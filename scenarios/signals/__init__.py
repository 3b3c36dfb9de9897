"""Traffic-signal control on the RESCO maps for eSpark (eSpark paper, Sec. 5.1, App. C.2; maps from sumo-rl)."""
