"""The training runtime: distributed setup, the loop, checkpoints, the run directory."""
