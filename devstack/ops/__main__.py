"""``python -m devstack.ops``: the ``decline-rescue`` CLI without the console script."""

from devstack.ops.cli import main

raise SystemExit(main())
