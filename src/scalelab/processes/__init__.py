"""Processes: `children` (the one way to start a Python child, logs, ports), `programs` (a
learner's function run as a program) and `cluster` (local multi-process tf.distribute clusters)."""
