"""Benchmarks (``make bench``): each figure against a baseline measured in the same run."""

import os

# Lambda sets a function's environment before it imports the handler, and module-level
# Powertools objects (logger, metrics) read it then. The emulators the harness imports
# import the shared package, so the template's Globals (and the harness's log level) are
# set here, before any benchmark imports it (as tests/conftest.py does for the tests).
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "decline-rescue")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DeclineRescue")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
