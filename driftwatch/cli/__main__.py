"""``python -m driftwatch.cli`` runs the CLI (as ``python -m driftwatch`` and the ``driftwatch`` script do)."""

import sys

from driftwatch.cli import main

sys.exit(main())
