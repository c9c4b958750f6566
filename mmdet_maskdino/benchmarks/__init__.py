"""Benchmark helpers shared by the tools under ``tools/analysis_tools``."""
