"""`python -m scalelab COMMAND ...`: the project's command line (scalelab.cli)."""

from scalelab.cli import main

raise SystemExit(main())
