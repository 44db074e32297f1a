# @title On Colab, run this cell first (anywhere the course is installed, it does nothing)
# It clones the course and installs what Colab lacks, keeping Colab's TensorFlow and Jupyter.
# Colab has no nbgrader Validate button: the test cell under each exercise is your check.
import importlib
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("scalelab") is None:
    if not os.path.isdir("scalelab-course"):
        source = os.environ.get("SCALELAB_REPO", "https://github.com/scalelab/scalelab")
        subprocess.run(["git", "clone", "-q", "--depth=1", source, "scalelab-course"], check=True)
    subprocess.run([sys.executable, "scalelab-course/colab/install.py"], check=True)
    importlib.invalidate_caches()
