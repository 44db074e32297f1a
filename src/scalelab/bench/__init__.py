"""Benchmarks, each a function that measures and returns its report (`scalelab bench NAME`):
`rest_vs_grpc`, `tflite`, `strategies`, `tuning`, `grading`, `memory`. They print measurements
taken side by side in one run; nothing asserts on time."""
