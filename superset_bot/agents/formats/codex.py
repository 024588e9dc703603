"""Codex CLI's `codex exec --json` output (stdout) and its log lines (stderr, merged in)."""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping
from typing import Any

from superset_bot.agents.formats.event import (
    ACTION_ARG_MAX,
    FINAL_TEXT_MAX,
    LINE_MAX,
    AgentEvent,
    AgentParser,
    action_arg,
    as_count,
    as_dict,
    as_list,
    as_str,
    clean_line,
    clip,
    first_line,
    line_event,
    rel_path,
    remember,
    text_lines,
    unwrap_shell,
)
from superset_bot.domain.prices import Price, cost

CARRY_IN = "thread_tokens_in"  # thread-wide totals at the end of the previous run of the session
CARRY_OUT = "thread_tokens_out"
CARRY_CACHED = "thread_cached_in"  # of CARRY_IN, those served from the prompt cache

GRANT_WRITE = ('grant it by adding the directory to "writable" in the preset\'s agent.permissions '
               '(or set "sandbox": "danger-full-access")')

# stderr: `2026-12-01T19:55:54.872449Z ERROR codex_core::tools::router: error=patch rejected: ...`
_LOG_RE = re.compile(r"^\s*(?:\d{4}-\d\d-\d\dT[\d:.]+Z\s+)?(ERROR|WARN|INFO|DEBUG|TRACE)\s+([\w:]+):\s*(.*)$")
_NOISE = ("Reading additional input from stdin", "Reading prompt from stdin",
          "WARNING: proceeding, even though we could not create PATH aliases")
_BACKTRACE_RE = re.compile(r"^\s*(?:\d+:\s+(?:<unknown>|0x[0-9a-f]+|\S+::\S+)|at\s+\S.*|Stack backtrace:"
                           r"|Backtrace omitted\..*|note: run with `RUST_BACKTRACE.*|Location:)\s*$")
_NO_ROLLOUT_RE = re.compile(r"no rollout found for (?:thread|conversation|session) id\s+(\S+)")
_STATUS_RE = re.compile(r"(?:unexpected status|last status:?|status code:?|HTTP)\s*(\d{3})\b")
_RETRY_RE = re.compile(r"^Reconnecting\.\.\.\s*(\d+)/(\d+)\s*(?:\((.*)\))?\s*$", re.S)
_PREFIX_RE = re.compile(r"^unexpected status (\d{3}(?: [A-Za-z][\w ]*?)?):\s*(.*)$")
_URL_TAIL_RE = re.compile(r",?\s*url:\s*\S+\s*$")
_HIGH_DEMAND = "currently experiencing high demand"  # how codex words an HTTP 500 from the model API
_READ_ONLY = "Read-only file system"  # what a write outside the sandbox's writable roots fails with


def api_status(message: str) -> int | None:
    """The HTTP status a Codex error message names (a 500 reads "experiencing high demand")."""
    match = _STATUS_RE.search(message)
    if match:
        return int(match.group(1))
    return 500 if _HIGH_DEMAND in message else None


def _reason(message: str) -> str:
    """An API error message without its trailing `, url: http://...`."""
    return first_line(_URL_TAIL_RE.sub("", message.strip()))


def _api_error(message: str, status: int | None) -> str:
    """ "model API error 401 Unauthorized: Incorrect API key ..." from Codex's wording of it."""
    reason = _reason(message)
    if status is None:
        return reason
    match = _PREFIX_RE.match(reason)
    if match:  # "unexpected status 401 Unauthorized: detail"
        return f"model API error {match.group(1)}: {match.group(2)}"
    return f"model API error {status}: {reason}"


class CodexParser(AgentParser):
    """`codex exec --json PROMPT`, one JSON event per line, with Codex's stderr in between.

    Shapes seen from Codex 0.171 (`codex-rs/exec/src/exec_events.rs`): thread.started{thread_id},
    turn.started, turn.completed{usage{input_tokens, cached_input_tokens, output_tokens,
    reasoning_output_tokens}}, turn.failed{error{message}}, error{message} (also
    "Reconnecting... N/M (reason)" before a retry), item.started|item.updated|item.completed{
    item{id, type: agent_message|reasoning|command_execution{command, aggregated_output,
    exit_code, status}|file_change{changes[{path, kind}], status}|mcp_tool_call{server, tool}|
    web_search{query}|todo_list{items}|error{message}}}.

    `turn.completed.usage` counts from the start of the thread, so a resumed session reports the
    earlier runs too: the run's own figures are the difference from the totals the previous run
    left in `carry` (`self.carried`), and this run leaves its totals for the next. Codex reports
    no cost: given the `price` of the run's model (see `agents.models` and `domain.prices`), the
    result carries the run's cost at that price, marked as estimated from it; without one the
    cost stays None and the run is shown by its tokens.

    On stderr: a patch the sandbox refused (`ERROR codex_core::tools::router: error=patch
    rejected: ...`; no JSON item is printed for it) is a denial; "no rollout found" on resume is
    a failed run; backtrace frames and stdin notices are dropped. Codex before 0.44 printed
    {"id", "msg": {"type": ...}} instead: its most useful messages are understood too.
    """

    def __init__(self, cwd: str | None, carried: Mapping[str, Any] | None = None, *,
                 price: Price | None = None) -> None:
        super().__init__(cwd, carried)
        self.price = price
        self._items: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self._last_message: str | None = None
        self._thread_id: str | None = None
        self._base_in = as_count(self.carried.get(CARRY_IN)) or 0
        self._base_out = as_count(self.carried.get(CARRY_OUT)) or 0
        self._base_cached = as_count(self.carried.get(CARRY_CACHED)) or 0
        # an older bot's carry has the thread's input total but not its cached part: this run's cached
        # share cannot be told, so none of it is priced at the cached rate (never an under-estimate)
        self._cached_unknown = CARRY_IN in self.carried and CARRY_CACHED not in self.carried
        self._tokens_in: int | None = None  # this run's figures, once a turn completed
        self._tokens_out: int | None = None
        self._cost: float | None = None
        self._completed = False
        self._fatal_sent = False

    # ------------------------------------------------------------------ lines

    def parse(self, line: str) -> list[AgentEvent]:
        obj = self.decode(line)
        if obj is None:
            return self._stderr(line)
        kind = obj.get("type")
        if kind == "thread.started":
            self._thread_id = as_str(obj.get("thread_id"))
            carry = self._base_carry() if self.carried else None
            text = "Session resumed" if self.carried else "Session started"
            return [AgentEvent(kind="session", text=text, session_id=self._thread_id, carry=carry)]
        if kind == "turn.started":
            return []
        if kind == "turn.completed":
            return self._turn_completed(obj)
        if kind == "turn.failed":
            message = as_str(as_dict(obj.get("error")).get("message")) or "unknown error"
            return self._turn_failed(message)
        if kind == "error":
            return self._error(as_str(obj.get("message")) or "unknown error")
        if kind in ("item.started", "item.updated", "item.completed") and isinstance(obj.get("item"), dict):
            return self._item(kind, obj["item"])
        if kind is None and isinstance(obj.get("msg"), dict):
            return self._legacy(obj["msg"])
        return [AgentEvent(kind="line", text=_summary("event", kind, obj))]

    def end(self) -> list[AgentEvent]:
        """A run that never completed a turn still hands the earlier totals on to the next run."""
        if self._completed or not self.carried:
            return []
        return [AgentEvent(kind="usage", text="", carry=self._base_carry())]

    def _base_carry(self) -> dict[str, Any]:
        return {CARRY_IN: self._base_in, CARRY_OUT: self._base_out, CARRY_CACHED: self._base_cached}

    # ------------------------------------------------------------------ turns and errors

    def _turn_completed(self, obj: dict[str, Any]) -> list[AgentEvent]:
        usage = as_dict(obj.get("usage"))
        thread_in = as_count(usage.get("input_tokens")) or 0
        thread_out = as_count(usage.get("output_tokens")) or 0
        thread_cached = as_count(usage.get("cached_input_tokens")) or 0
        # a thread total below what the last run left means the counts started over: take it whole
        restarted = thread_in < self._base_in
        self._tokens_in = thread_in if restarted else thread_in - self._base_in
        # output, and the cached part of the input, start over with the input (one reset for the thread)
        self._tokens_out = thread_out if restarted else max(thread_out - self._base_out, 0)
        if restarted:
            cached = thread_cached
        elif self._cached_unknown:
            cached = 0
        else:
            cached = max(thread_cached - self._base_cached, 0)
        if self.price is not None:
            self._cost = cost(self.price, self._tokens_in, cached, self._tokens_out)
        self._completed = True
        final = self._last_message
        return [
            AgentEvent(
                kind="result",
                text=f"Done ({self._tokens_in:,} tokens in, {self._tokens_out:,} out)",
                session_id=self._thread_id,
                tokens_in=self._tokens_in,
                tokens_out=self._tokens_out,
                cost_usd=self._cost,
                cost_estimated_from=self._priced_as(),
                final_text=clip(final, FINAL_TEXT_MAX) if final is not None else None,
                carry={CARRY_IN: thread_in, CARRY_OUT: thread_out, CARRY_CACHED: thread_cached},
            )
        ]

    def _priced_as(self) -> str | None:
        """The model whose price `self._cost` was estimated at (None while there is no estimate)."""
        return self.price.model if self._cost is not None and self.price is not None else None

    def _turn_failed(self, message: str) -> list[AgentEvent]:
        status = api_status(message)
        text = clean_line(f"Failed: {_api_error(message, status)}")
        return [
            AgentEvent(
                kind="result",
                text=text,
                session_id=self._thread_id,
                is_error=True,
                api_status=status,
                final_text=clip(self._last_message or message, FINAL_TEXT_MAX),
                tokens_in=self._tokens_in,
                tokens_out=self._tokens_out,
                cost_usd=self._cost,
                cost_estimated_from=self._priced_as(),
            )
        ]

    def _error(self, message: str) -> list[AgentEvent]:
        retry = _RETRY_RE.match(message.strip())
        if retry:
            attempt, limit, why = int(retry.group(1)), int(retry.group(2)), retry.group(3) or ""
            status = api_status(why)
            said = f"API error {status}" if status is not None else "API error"
            events = [AgentEvent(kind="retry", text=clean_line(f"{said}, retry {attempt}/{limit}"),
                                 api_status=status)]
            return events + self._refused(status, why)
        status = api_status(message)
        events = [AgentEvent(kind="error", text=clean_line(f"Error: {_api_error(message, status)}"),
                             is_error=True, api_status=status)]
        return events + self._refused(status, message)

    def _refused(self, status: int | None, message: str) -> list[AgentEvent]:
        """One fatal event when the model API refused the credentials: retrying cannot help."""
        if status not in (401, 403) or self._fatal_sent:
            return []
        self._fatal_sent = True
        text = clean_line(f"The model API refused Codex's credentials: {_api_error(message, status)}; check the "
                          "API key its model provider reads (env_key in $CODEX_HOME/config.toml, or codex login)")
        return [AgentEvent(kind="error", text=text, is_error=True, api_status=status, fatal=True)]

    def _stderr(self, line: str) -> list[AgentEvent]:
        text = clean_line(line)
        stripped = text.strip()
        if not stripped or stripped.startswith(_NOISE) or _BACKTRACE_RE.match(stripped):
            return []
        rollout = _NO_ROLLOUT_RE.search(stripped)
        if rollout:
            session = rollout.group(1).rstrip(").,")
            return [AgentEvent(kind="result", is_error=True,
                               text=clean_line(f"Failed: Codex cannot resume session {session}: it has no record "
                                               "of it (no rollout found in its CODEX_HOME); spawn a new task"))]
        log = _LOG_RE.match(stripped)
        if log:
            level, target, message = log.groups()
            message = re.sub(r"^error=", "", message)
            if "patch rejected" in message:
                why = message.split("patch rejected", 1)[1].lstrip(": ")
                why = why.split(";", 1)[0] or "outside the writable directories"
                return [AgentEvent(kind="denied", denied=clip(f"apply_patch: {why}", LINE_MAX),
                                   text=clean_line(f"denied: a patch {why} was rejected by the sandbox; {GRANT_WRITE}"))]
            if level in ("ERROR", "WARN"):
                return [AgentEvent(kind="line", text=clean_line(f"codex {level.lower()}: {message}"))]
            return []
        if stripped.startswith("Error:") and not self._completed:
                return [AgentEvent(kind="result", is_error=True, text=clean_line(f"Failed: codex {stripped}"))]
        return line_event(line)

    # ------------------------------------------------------------------ items

    def _tool(self, item_id: str | None, action: str, tool: str) -> list[AgentEvent]:
        """A tool event, once per item id (items start, update and complete)."""
        if item_id is not None:
            if item_id in self._items:
                return []
            remember(self._items, item_id, True)
        return [AgentEvent(kind="tool", text=action, action=action, tool=tool)]

    def _item(self, kind: str, item: dict[str, Any]) -> list[AgentEvent]:
        item_id = as_str(item.get("id"))
        itype = item.get("type", item.get("item_type"))  # "item_type" in codex 0.44
        done = kind == "item.completed"
        if itype in ("agent_message", "assistant_message"):
            text = as_str(item.get("text"))
            if not done or text is None:
                return []
            self._last_message = text
            return [AgentEvent(kind="text", text=t) for t in text_lines(text)]
        if itype == "reasoning":
            text = (as_str(item.get("text")) or "").replace("**", "")
            first = first_line(text, LINE_MAX - 2)
            return [AgentEvent(kind="text", text=f"({first})")] if done and first else []
        if itype == "command_execution":
            return self._command(item_id, item, done)
        if itype == "file_change":
            paths = [
                rel_path(p, self.cwd)
                for p in (as_str(as_dict(c).get("path")) for c in as_list(item.get("changes")))
                if p
            ]
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            action = clip(f"Editing {shown}" if shown else "Editing files", ACTION_ARG_MAX * 3)
            events = self._tool(item_id, action, "file_change")
            if done and item.get("status") == "failed":
                events.append(AgentEvent(kind="line", text=clean_line(f"Patch failed: {shown}")))
            return events
        if itype == "mcp_tool_call":
            server = as_str(item.get("server")) or "mcp"
            tool = as_str(item.get("tool")) or "tool"
            return self._tool(item_id, clip(f"Using {server}: {tool}", ACTION_ARG_MAX * 2), "mcp_tool_call")
        if itype == "web_search":
            query = as_str(item.get("query")) or ""
            action = f"Searching the web for '{action_arg(query)}'" if query else "Searching the web"
            return self._tool(item_id, action, "web_search")
        if itype == "todo_list":
            return self._tool(item_id, "Updating the plan", "todo_list")
        if itype == "error":
            message = as_str(item.get("message")) or "unknown error"
            return (
                [AgentEvent(kind="error", text=clean_line(f"Error: {first_line(message)}"))] if done else []
            )
        if done:
            return [AgentEvent(kind="line", text=_summary("item", itype, item))]
        return []

    def _command(self, item_id: str | None, item: dict[str, Any], done: bool) -> list[AgentEvent]:
        command = unwrap_shell(item.get("command"))
        action = f"Running {action_arg(command)}" if command.strip() else "Running a command"
        events = self._tool(item_id, action, "command_execution")
        if not done:
            return events
        exit_code = item.get("exit_code")
        if isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
            events.append(AgentEvent(kind="line", text=clean_line(f"Exit {exit_code}: {command}")))
            output = as_str(item.get("aggregated_output")) or ""
            if _READ_ONLY in output[-20_000:]:
                shown = action_arg(command)
                events.append(AgentEvent(
                    kind="denied", denied=clip(f"command: {shown}", LINE_MAX),
                    text=clean_line(f"denied: `{shown}` could not write outside the sandbox's writable "
                                    f"directories (Read-only file system); {GRANT_WRITE}")))
        elif item.get("status") == "declined":
            events.append(AgentEvent(kind="line", text=clean_line(f"Declined: {command}")))
        return events

    # ------------------------------------------------------------------ codex < 0.44

    def _legacy(self, msg: dict[str, Any]) -> list[AgentEvent]:
        """Codex < 0.44: {"id": "0", "msg": {"type": "agent_message", "message": ...}}."""
        mtype = msg.get("type")
        if mtype == "agent_message":
            text = as_str(msg.get("message")) or ""
            self._last_message = text or self._last_message
            return [AgentEvent(kind="text", text=t) for t in text_lines(text)]
        if mtype == "exec_command_begin":
            command = unwrap_shell(msg.get("command"))
            action = f"Running {action_arg(command)}" if command.strip() else "Running a command"
            return self._tool(as_str(msg.get("call_id")), action, "command_execution")
        if mtype == "exec_command_end":
            exit_code = msg.get("exit_code")
            if isinstance(exit_code, int) and not isinstance(exit_code, bool) and exit_code != 0:
                return [AgentEvent(kind="line", text=f"Command exited with {exit_code}")]
            return []
        if mtype == "error":
            message = as_str(msg.get("message")) or "unknown error"
            return [
                AgentEvent(kind="error", text=clean_line(f"Error: {first_line(message)}"), is_error=True)
            ]
        if mtype == "session_configured":
            self._thread_id = as_str(msg.get("session_id"))
            return [AgentEvent(kind="session", text="Session started", session_id=self._thread_id)]
        if mtype == "task_complete":
            final = as_str(msg.get("last_agent_message")) or self._last_message
            return [
                AgentEvent(
                    kind="result",
                    text="Done",
                    session_id=self._thread_id,
                    final_text=clip(final, FINAL_TEXT_MAX) if final is not None else None,
                )
            ]
        if isinstance(mtype, str) and mtype and mtype.endswith("_delta"):
            return []
        return [AgentEvent(kind="line", text=_summary("message", mtype, msg))]


def _summary(what: str, kind: Any, obj: dict[str, Any]) -> str:
    """One short line for an event or item this parser does not know: its type and field names."""
    name = clean_line(kind, 60) if isinstance(kind, str) and kind.strip() else "untyped"
    fields = [clean_line(k, 30) for k in list(obj)[:6] if isinstance(k, str) and k not in ("type", "id")]
    tail = f" ({', '.join(fields)})" if fields else ""
    return clip(f"[codex {what} {name}{tail}]", 120)
