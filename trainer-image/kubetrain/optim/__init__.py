"""Optimizers with no-decay parameter groups, l1, and learning-rate schedules."""
