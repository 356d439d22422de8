"""Experiments: method comparisons and runs against peer tools (`make bench-*`).

They drive the product (`compressor.pipeline`, the exporters, the latency harness) from
above and are not part of the wheel: their results are tables for the project's own
documentation, generated into committed files under `benchmarks/results/`.
"""
