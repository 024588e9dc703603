"""Deprecated alias of `python -m superset_bot.agents.demo`, kept for one release."""

from superset_bot.agents.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
