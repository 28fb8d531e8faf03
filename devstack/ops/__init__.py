"""``decline-rescue``, the operator's CLI (a console script of the project's virtualenv:
``pip install -e . --no-deps``, which every ``make`` target does): orders, dead-letter
queues, webhooks and the recovery report of a deployed stack (``--stack``) or of the local
stack (``--local``). See ``devstack.ops.cli``."""
