"""Predictions over HTTP with a succeeded job's model (onnxruntime, no torch)."""
