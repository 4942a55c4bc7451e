"""The DualTetraX worker: durable jobs, statistics, reports and OTA rollouts."""

__version__ = "0.1.0"
