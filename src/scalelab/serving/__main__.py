"""`python -m scalelab.serving [flags]` runs the local model server."""

from scalelab.processes import skip_imports

skip_imports()  # the server never uses scikit-learn, SciPy or matplotlib: it starts sooner

from scalelab.serving.local.cli import main  # noqa: E402 (after skip_imports)

raise SystemExit(main())
