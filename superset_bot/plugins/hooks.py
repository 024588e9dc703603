"""Lifecycle events fanned out to plugins, each isolated by its own timeout and error handling.

A plugin is an async callable taking a HookEvent. All plugins for an event run concurrently;
one that raises is logged with the task id and reported, one that hangs is cancelled at its
timeout, and one that ignores cancellation is left behind rather than waited for, so a slow
or broken plugin never stalls a task or another plugin. Third-party plugins are found through
the `superset_bot.plugins` entry-point group. A preset's checks are not a plugin: the engine runs
them itself (superset_bot.engine.checks) before it hands `agent_finished` to the plugins.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from superset_bot.presets import Preset, short_duration

log = logging.getLogger(__name__)

LIFECYCLE_EVENTS: tuple[str, ...] = (
    "task_created",
    "worktree_ready",
    "setup_done",
    "agent_started",
    "agent_finished",
    "review_ready",
    "merged",
    "discarded",
    "pruned",
)
ENTRY_POINT_GROUP = "superset_bot.plugins"


@dataclass(frozen=True)
class HookEvent:
    """What happened to which task. `env` is the task's environment, `data` event details."""

    name: str
    task_id: str
    repo: str
    worktree: Path | None = None
    preset: Preset | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.name not in LIFECYCLE_EVENTS:
            raise ValueError(
                f"unknown lifecycle event {self.name!r}; expected one of {', '.join(LIFECYCLE_EVENTS)}"
            )
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))


Plugin = Callable[[HookEvent], Awaitable[Any]]
Timeout = float | Callable[[HookEvent], float] | None


@dataclass(frozen=True)
class PluginOutcome:
    plugin: str
    event: str
    ok: bool
    timed_out: bool
    error: str | None
    result: Any
    duration: float


@dataclass(frozen=True)
class _Registration:
    name: str
    plugin: Callable[[HookEvent], Any]
    events: frozenset[str]
    timeout: Timeout


def _is_async_callable(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    # an instance whose class defines `async def __call__`
    return callable(obj) and inspect.iscoroutinefunction(type(obj).__call__)


def _validate_events(events: Iterable[str] | None, who: str) -> frozenset[str]:
    if events is None:
        return frozenset(LIFECYCLE_EVENTS)
    if isinstance(events, str):
        events = (events,)
    chosen = frozenset(events)
    unknown = sorted(chosen - set(LIFECYCLE_EVENTS))
    if unknown:
        raise ValueError(
            f"plugin {who}: unknown event(s) {', '.join(unknown)}; expected some of {', '.join(LIFECYCLE_EVENTS)}"
        )
    return chosen


class Hooks:
    """The plugin registry and dispatcher for lifecycle events."""

    def __init__(self, default_timeout: float = 5.0) -> None:
        if default_timeout <= 0:
            raise ValueError("default_timeout must be positive")
        self.default_timeout = default_timeout
        self._plugins: list[_Registration] = []
        self._stragglers: set[asyncio.Future[Any]] = set()  # timed-out plugins that ignored cancel

    @property
    def names(self) -> list[str]:
        return [r.name for r in self._plugins]

    def register(
        self,
        plugin: Plugin,
        *,
        name: str | None = None,
        events: Iterable[str] | None = None,
        timeout: Timeout = None,
    ) -> None:
        """Add a plugin for `events` (None: all). `timeout` in seconds, or a function of the event.

        A plain (non-async) callable is accepted too and runs in a worker thread, so it cannot
        block the event loop.
        """
        if not callable(plugin):
            raise TypeError(f"plugin {plugin!r} is not callable")
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        if label in self.names:
            raise ValueError(f"a plugin named {label!r} is already registered")
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout <= 0:
            raise ValueError(f"plugin {label}: timeout must be positive, got {timeout}")
        self._plugins.append(_Registration(label, plugin, _validate_events(events, label), timeout))

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every plugin advertised under the entry-point `group`; returns the names loaded.

        An entry point may name an async callable (all events, default timeout), an object
        with optional `events` / `timeout` attributes (and `name`), a class to instantiate, or
        a factory function returning such an object. A broken entry point is logged and skipped.
        """
        loaded: list[str] = []
        for ep in importlib.metadata.entry_points(group=group):
            try:
                loaded.append(self._register_loaded(ep.name, ep.load()))
            except Exception:
                log.exception(
                    "plugin entry point %r (%s) could not be loaded; skipping it", ep.name, ep.value
                )
        return loaded

    def _register_loaded(self, ep_name: str, obj: Any) -> str:
        if isinstance(obj, type):
            obj = obj()
        elif callable(obj) and not _is_async_callable(obj):
            obj = obj()  # a factory
        if not _is_async_callable(obj):
            raise TypeError(f"entry point {ep_name!r} gave {obj!r}, which is not an async callable")
        own_name = getattr(obj, "name", None)
        name = own_name if isinstance(own_name, str) and own_name else ep_name
        self.register(
            obj, name=name, events=getattr(obj, "events", None), timeout=getattr(obj, "timeout", None)
        )
        return name

    def _timeout_for(self, reg: _Registration, event: HookEvent) -> float:
        value: Any = reg.timeout
        if callable(value):
            try:
                value = value(event)
            except Exception:
                log.exception("plugin %s: timeout function failed; using the default", reg.name)
                value = None
        if value is None or isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return self.default_timeout
        return float(value)

    async def dispatch(self, event: HookEvent) -> list[PluginOutcome]:
        """Run every plugin registered for `event` concurrently and report each one's outcome.

        Never raises for a plugin's failure, and returns no later than the longest timeout
        (plus a moment), whatever the plugins do.
        """
        chosen = [reg for reg in self._plugins if event.name in reg.events]
        if not chosen:
            return []
        return list(await asyncio.gather(*(self._supervise(reg, event) for reg in chosen)))

    async def _supervise(self, reg: _Registration, event: HookEvent) -> PluginOutcome:
        loop = asyncio.get_running_loop()
        timeout = self._timeout_for(reg, event)
        start = loop.time()
        inner = asyncio.ensure_future(_invoke(reg.plugin, event))
        try:
            done, _ = await asyncio.wait({inner}, timeout=timeout)
        except asyncio.CancelledError:
            inner.cancel()
            self._keep(inner)
            raise
        duration = loop.time() - start
        if not done:
            inner.cancel()
            self._keep(inner)  # if it ignores the cancel, it finishes (or not) on its own
            log.warning(
                "plugin %s timed out after %s on %s for task %s; cancelled",
                reg.name, short_duration(timeout), event.name, event.task_id,
            )  # fmt: skip
            return PluginOutcome(
                reg.name,
                event.name,
                False,
                True,
                f"timed out after {short_duration(timeout)}",
                None,
                duration,
            )
        if inner.cancelled():
            return PluginOutcome(
                reg.name, event.name, False, False, "the plugin was cancelled", None, duration
            )
        exc = inner.exception()
        if exc is not None:
            log.warning(
                "plugin %s failed on %s for task %s: %s: %s",
                reg.name, event.name, event.task_id, type(exc).__name__, exc,
                exc_info=exc,
            )  # fmt: skip
            return PluginOutcome(
                reg.name, event.name, False, False, f"{type(exc).__name__}: {exc}", None, duration
            )
        return PluginOutcome(reg.name, event.name, True, False, None, inner.result(), duration)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        if task.done():
            _consume(task)
            return
        self._stragglers.add(task)

        def forget(t: asyncio.Future[Any]) -> None:
            self._stragglers.discard(t)
            _consume(t)

        task.add_done_callback(forget)


def _consume(task: asyncio.Future[Any]) -> None:
    """Fetch a finished task's exception so asyncio does not warn that it was never retrieved."""
    if not task.cancelled():
        task.exception()


async def _invoke(plugin: Callable[[HookEvent], Any], event: HookEvent) -> Any:
    if _is_async_callable(plugin):
        return await plugin(event)
    result = await asyncio.to_thread(plugin, event)
    if inspect.isawaitable(result):  # e.g. a lambda or partial that returns a coroutine
        return await result
    return result


def builtin_hooks(default_timeout: float = 5.0) -> Hooks:
    """A Hooks with the built-in plugins registered: none today (a preset's checks are a core step of
    the engine, superset_bot.engine.checks, run before the agent_finished plugins)."""
    return Hooks(default_timeout)
