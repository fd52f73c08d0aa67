"""Preprocessing fitted on the training split only; its state is saved with the model."""
