"""Learners that run inside agent nodes or offline against a known model."""
