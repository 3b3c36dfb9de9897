"""`python -m agent_node`: run one agent process (same as `netmarl node`)."""

import sys

from .cli import main

sys.exit(main())
