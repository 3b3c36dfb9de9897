"""Alternating-MARL learners: G-LEARN (subsampled mean-field value iteration), L-LEARN, UPDATE."""
