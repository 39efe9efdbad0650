"""recbench: a Hydra-configured benchmark harness for recommender systems."""

__version__ = "0.1.0"
