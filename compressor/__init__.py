"""compressor: distil, prune, quantize, export and benchmark transformer classifiers."""

__version__ = "0.1.0"
