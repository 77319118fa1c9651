"""``python -m disciplined`` runs the command line."""

from disciplined.cli import main

raise SystemExit(main())
