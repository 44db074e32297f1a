"""The course's nbgrader preprocessors, one per module as nbgrader lays out its own (named in
grader/nbgrader_config.py): StartReport, RestoreCells, GuardedExecute, HideTestTracebacks, and
their base Reporting, which writes what they find to each student's report."""
