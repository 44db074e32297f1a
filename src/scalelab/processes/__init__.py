"""Processes: `children` (the one way to start a Python child, logs, ports), `forkserver` (warm
starts: children forked from a process that has imported TensorFlow), `kernels` (Jupyter kernels
started the same way), `pids` (is a process alive), `programs` (a learner's function run as a
program), `cluster` (local multi-process tf.distribute clusters) and `nginx` (a reverse proxy
in front of model servers)."""
