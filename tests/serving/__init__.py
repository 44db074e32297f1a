"""Conformance tests for scalelab.serving (any backend) and unit tests of the local server."""
