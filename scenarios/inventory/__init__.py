"""MABIM-style multi-echelon inventory simulator for eSpark (eSpark paper, App. C.1; MABIM's ReplenishmentEnv
semantics; synthetic demand, see docs/espark.md)."""
