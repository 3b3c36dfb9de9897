"""eSpark: LLM-written exploration functions that prune MARL action spaces, searched evolutionarily (docs/espark.md)."""
