"""`superset-bot run | console`: start the engine with a front end, or say exactly what is missing."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from slack_sdk.errors import SlackApiError

from superset_bot import __version__
from superset_bot.aio import stack_of
from superset_bot.composition import open_runtime
from superset_bot.config import ConfigError, Settings, load_settings, missing_for_slack
from superset_bot.git.commands import GitError
from superset_bot.presets import PresetError
from superset_bot.redact import Redactor
from superset_bot.store import StoreError

log = logging.getLogger("bot")


class RedactingFilter(logging.Filter):
    """Tokens never reach a log line, whoever logs them."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str, secrets: Sequence[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def task_stacks() -> str:
    """Every asyncio task of the running loop and where it waits: for diagnosing a hang in the field."""
    tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
    parts = [f"{len(tasks)} asyncio tasks:"]
    for task in tasks:
        state = "cancelling" if task.cancelling() else "done" if task.done() else "pending"
        parts.append(f"--- {task.get_name()} ({state})\n{stack_of(task, limit=40)}")
    return "\n".join(parts)


def dump_stacks_on_signal(loop: asyncio.AbstractEventLoop) -> None:
    """`kill -USR1 <pid>` logs every coroutine's stack; only whoever may signal the bot's process can."""
    import signal

    def dump() -> None:
        log.warning("SIGUSR1: %s", task_stacks())

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals on this platform or thread
        loop.add_signal_handler(signal.SIGUSR1, dump)


async def _run_slack(settings: Settings, http: bool) -> int:
    import signal

    from superset_bot.frontends.slack.runtime import SlackBot

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dump_stacks_on_signal(loop)
    async with open_runtime(settings) as runtime:
        bot = SlackBot(settings, runtime.engine, http=http, housekeeper=runtime.housekeeper, service=runtime.service)
        try:
            await bot.start()
            await runtime.start()  # after the front end subscribed: recovery's events reach Slack
            log.info("superset-bot is running (%s); Ctrl-C stops it, agents keep running",
                     "HTTP" if http else "Socket Mode")
            await stop.wait()
            log.info("stopping; running agents stay alive and are picked up at the next start")
        finally:
            await bot.stop()
    return 0


async def _console(settings: Settings) -> int:
    from superset_bot.frontends.console import CONSOLE_USER, run_console

    dump_stacks_on_signal(asyncio.get_running_loop())
    async with open_runtime(settings, operators={CONSOLE_USER}) as runtime:
        await run_console(runtime)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="superset-bot", description="Run many CLI coding agents from Slack.")
    parser.add_argument("--version", action="version", version=f"superset-bot {__version__}")
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="settings file (default: .env)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="overrides SUPERSET_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the Slack bot (Socket Mode when SLACK_APP_TOKEN is set)")
    run.add_argument("--http", action="store_true", help="serve Slack over HTTP on SUPERSET_HTTP_PORT instead")
    sub.add_parser("console", help="the same engine in this terminal, no Slack needed")
    sub.add_parser("worker", help="a worker host: run agents sent through Temporal (SUPERSET_TEMPORAL_ADDRESS)")
    doctor = sub.add_parser("doctor", help="check tokens, scopes, git, repos, presets and disk; print what to fix")
    doctor.add_argument("--http", action="store_true", help="check HTTP mode (signing secret) instead of Socket Mode")
    args = parser.parse_args(argv)

    if args.command == "doctor":  # before loading settings: a broken config is one of its checks
        from superset_bot.doctor import run_doctor

        return asyncio.run(run_doctor(lambda: load_settings(env_file=args.env_file),
                                      http=True if args.http else None))

    try:
        settings = load_settings(env_file=args.env_file)
    except ConfigError as exc:
        print(f"superset-bot: the configuration has problems ({args.env_file} and the environment):",
              file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        return 2
    # the console prints progress itself; its log only shows problems unless --log-level says otherwise
    default_level = "WARNING" if args.command == "console" else settings.log_level
    setup_logging(args.log_level or default_level, settings.secrets())

    try:
        if args.command == "worker":
            try:
                from superset_bot.temporal.worker import run_worker
            except ImportError as exc:
                print(f"superset-bot: the worker needs the Temporal SDK ({exc}); install superset-bot[temporal]",
                      file=sys.stderr)
                return 2
            return asyncio.run(run_worker(settings))
        if args.command == "console":
            if not settings.repos:
                print("superset-bot: SUPERSET_REPOS is not set: name at least one repository, e.g.\n"
                      "  SUPERSET_REPOS=demo=/path/to/repo superset-bot console", file=sys.stderr)
                return 2
            return asyncio.run(_console(settings))
        missing = missing_for_slack(settings, http=args.http)
        if missing:
            print("superset-bot cannot connect to Slack yet:", file=sys.stderr)
            for item in missing:
                print(f"  - {item}", file=sys.stderr)
            print("Put these in .env (see .env.example and README.md). Meanwhile you can try every command\n"
                  "without Slack in the console: `make console` or `.venv/bin/superset-bot console`.",
                  file=sys.stderr)
            return 2
        return asyncio.run(_run_slack(settings, http=args.http))
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else str(exc)
        print(f"superset-bot: Slack refused to connect ({error}). Check SLACK_BOT_TOKEN / SLACK_APP_TOKEN "
              "and that the app is installed in the workspace.", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"superset-bot: {exc}", file=sys.stderr)
        return 2
    except (GitError, PresetError, StoreError) as exc:
        print(f"superset-bot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
