"""`python -m scalelab.serving [flags]` runs the local model server."""

from scalelab.serving.local.cli import main

raise SystemExit(main())
