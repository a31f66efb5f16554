"""`python -m rare_triage`: the command line (see rare_triage.cli)."""

import sys

from rare_triage.cli import main

sys.exit(main())
