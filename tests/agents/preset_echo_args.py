"""Scripted agent for preset tests: prints its arguments (argv[1:]) as one JSON line and exits 0.

Lets a test check exactly which argv an agent received, e.g. that a prompt full of shell
syntax arrived as one untouched argument.
"""

import json
import sys

print(json.dumps(sys.argv[1:]), flush=True)
