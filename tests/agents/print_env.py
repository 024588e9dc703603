"""Scripted agent: prints NAME=value for each variable named on the command line."""

import os
import sys

for name in sys.argv[1:]:
    print(f"{name}={os.environ.get(name, '<unset>')}", flush=True)
