"""Reference answers to the exercises, one module per chapter (`ch01` ... `ch05`).

Tests grade against them instead of a student's other answers, and later cells fall back to
them (`course.answer`) when an answer is missing, so one stuck exercise costs only its points.
"""
