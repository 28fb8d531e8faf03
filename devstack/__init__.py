"""The local stack: moto, provider emulators, a local API gateway and Lambda runtimes.

Local tooling only: nothing here is deployed, and nothing deployed imports it. The
shared layer's package is put on the path here, as the Lambda runtime puts /opt/python.
"""

import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "shared")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
