"""``python -m jupyter_env_manager.cli``: the CLI (the magics run it in the manager's Python)."""

import sys

from .commands import main

sys.exit(main())
