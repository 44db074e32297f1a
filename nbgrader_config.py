"""nbgrader reads this when started at the repository root (`make lab` and its Validate button).

The course's configuration lives in grader/nbgrader_config.py; this file only points there.
"""

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)
load_subconfig("grader/nbgrader_config.py")  # noqa: F821
