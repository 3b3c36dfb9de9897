"""eSpark's world-side parts: the exploration-function contract, the masker that runs candidates in a sandbox
worker at every decision, and the [algo.espark] settings the worlds and the loop share."""
