"""``python -m driftwatch`` runs the CLI."""

import sys

from driftwatch.cli import main

sys.exit(main())
