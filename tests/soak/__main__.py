"""`python tests/soak [ARGS]` runs the soak, `python tests/soak crash [ARGS]` the crash soak (`make soak`,
`make soak-crash`; `--help` lists the arguments). No PYTHONPATH is needed: tests/ goes on sys.path
here, so `soak` and `support` import as they do under pytest (`python -m soak` with tests/ on the
path works the same).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# `python tests/soak` put tests/soak itself first on sys.path, where this package's own modules would
# shadow top-level names (soak/bot.py the old `bot` package): tests/ goes there instead
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

args = sys.argv[1:]
if args[:1] == ["crash"]:
    from soak.crash import main

    args = args[1:]
else:
    from soak.cli import main

sys.exit(main(args))
