"""Models: the registry (linear, mlp, cnn, gpt), user factories, init and parameter counts."""
