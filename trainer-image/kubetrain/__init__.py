"""kubetrain: a declarative PyTorch trainer, local or on Kubernetes."""

__version__ = "0.1.0"
