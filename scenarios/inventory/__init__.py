"""MABIM-style multi-echelon inventory simulator for eSpark (spec §2.2, App. A.3-A.4)."""
