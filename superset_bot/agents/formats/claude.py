"""Claude Code's `claude -p --output-format stream-json --verbose` output."""

from __future__ import annotations

import collections
import re
import shlex
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
    as_number,
    as_str,
    clean_line,
    clip,
    first_line,
    line_event,
    rel_path,
    remember,
    sum_counts,
    text_lines,
)

GRANT = "in the preset's agent.permissions"
AUTH_STATUSES = (401, 403)
# words after these programs still name the command ("npm run build", "python3 -m pytest")
_TWO_WORD = {"npm", "pnpm", "yarn", "bun", "npx", "cargo", "go", "uv", "poetry", "pipenv", "git", "docker",
             "dotnet", "mvn", "gradle", "bundle", "rake", "mix", "deno", "just", "nox", "tox", "hatch", "pdm"}
_THREE_WORD = {("npm", "run"), ("pnpm", "run"), ("yarn", "run"), ("bun", "run"), ("uv", "run"), ("poetry", "run"),
               ("pdm", "run"), ("hatch", "run"), ("docker", "compose")}
_PATH_BLOCKED = ("allowed working directories", "outside the allowed", "haven't granted it yet")


def claude_tool_action(name: str, tool_input: dict[str, Any], cwd: str | None = None) -> str:
    """What a Claude Code tool call is doing, as a short phrase for a status card."""

    def path(*keys: str) -> str:
        for key in keys:
            value = as_str(tool_input.get(key))
            if value:
                return clip(rel_path(value, cwd), ACTION_ARG_MAX * 2)
        return "a file"

    if name in ("Edit", "MultiEdit"):
        return f"Editing {path('file_path', 'path')}"
    if name == "NotebookEdit":
        return f"Editing {path('notebook_path', 'file_path')}"
    if name == "Write":
        return f"Writing {path('file_path', 'path')}"
    if name == "Read":
        return f"Reading {path('file_path', 'path')}"
    if name == "Bash":
        command = as_str(tool_input.get("command")) or as_str(tool_input.get("description")) or ""
        return f"Running {action_arg(command)}" if command.strip() else "Running a command"
    if name in ("Grep", "Glob"):
        pattern = as_str(tool_input.get("pattern")) or ""
        return f"Searching for '{action_arg(pattern)}'" if pattern else "Searching"
    if name == "LS":
        return f"Listing {path('path')}"
    if name == "WebFetch":
        url = as_str(tool_input.get("url")) or ""
        return f"Fetching {action_arg(url)}" if url else "Fetching a web page"
    if name == "WebSearch":
        query = as_str(tool_input.get("query")) or ""
        return f"Searching the web for '{action_arg(query)}'" if query else "Searching the web"
    if name == "TodoWrite":
        return "Updating the plan"
    if name == "TaskCreate":
        subject = as_str(tool_input.get("subject")) or as_str(tool_input.get("description")) or ""
        return f"Planning: {action_arg(subject)}" if subject.strip() else "Planning"
    if name == "TaskUpdate":
        subject = as_str(tool_input.get("subject")) or ""
        status = as_str(tool_input.get("status")) or ""
        task = as_str(tool_input.get("taskId")) or ""
        what = action_arg(subject) if subject.strip() else (f"task {action_arg(task)}" if task else "a task")
        return f"Planning: {what} {action_arg(status).replace('_', ' ')}".rstrip()
    if name in ("TaskList", "TaskGet"):
        return "Reading the plan"
    if name in ("Task", "Agent"):
        desc = as_str(tool_input.get("description")) or as_str(tool_input.get("prompt")) or ""
        return f"Delegating: {action_arg(desc)}" if desc.strip() else "Delegating to a sub-agent"
    if name.startswith("mcp__"):
        server, _, tool = name[len("mcp__") :].partition("__")
        return clip(f"Using {server}: {tool}" if tool else f"Using {server}", ACTION_ARG_MAX * 2)
    return clip(f"Using {name}", ACTION_ARG_MAX * 2)


def command_prefix(command: str) -> str:
    """The prefix of a shell command to allow: `python3 -m pytest -q x` -> `python3 -m pytest`."""
    head = command
    for sep in ("&&", "||", ";", "|", "\n"):
        head = head.split(sep, 1)[0]
    try:
        words = shlex.split(head)
    except ValueError:
        words = head.split()
    while words and "=" in words[0] and not words[0].startswith("="):  # FOO=1 pytest
        words = words[1:]
    if not words:
        return clip(command.strip(), ACTION_ARG_MAX)
    program = words[0].rsplit("/", 1)[-1] if words[0].startswith("/") else words[0]
    rest = words[1:]
    if program.startswith("python") and len(rest) >= 2 and rest[0] == "-m":
        return " ".join([words[0], "-m", rest[1]])
    if rest and (program, rest[0]) in _THREE_WORD and len(rest) >= 2:
        return " ".join(words[:3])
    if program in _TWO_WORD and rest and not rest[0].startswith("-"):
        return " ".join(words[:2])
    return words[0]


def denial(tool_name: str, tool_input: Mapping[str, Any], reason: str, cwd: str | None) -> AgentEvent:
    """One refused tool call as a "denied" event whose text says how to grant it in preset terms."""
    tool_name = clean_line(tool_name, 80) or "tool"
    path_blocked = any(marker in reason for marker in _PATH_BLOCKED)
    if tool_name == "Bash":
        command = clean_line(as_str(tool_input.get("command")) or "", 200).strip()
        shown = action_arg(command) or "a command"
        if path_blocked and "allowed working directories" in reason:
            # "rm in '/tmp/x/a.txt' was blocked. For security, Claude Code may only ..."
            blocked = re.search(r" in '(/[^']+)' was blocked", reason[:2000])
            where = clean_line(blocked.group(1).rsplit("/", 1)[0] or "/", 200) if blocked else "/path"
            text = (f"denied: `{shown}` writes outside the worktree; grant a directory with "
                    f'"writable": ["{clip(where, ACTION_ARG_MAX * 2)}"] {GRANT}')
        else:
            prefix = command_prefix(command) if command else "COMMAND"
            text = f'denied: `{shown}` needs approval; grant it with "commands": ["{prefix}"] {GRANT}'
        return AgentEvent(kind="denied", text=text, tool=tool_name, denied=f"Bash: {shown}")
    file_path = as_str(tool_input.get("file_path")) or as_str(tool_input.get("notebook_path")) or ""
    if file_path and tool_name in ("Write", "Edit", "MultiEdit", "NotebookEdit"):
        relative = rel_path(clean_line(file_path, 300), cwd)
        shown = clip(relative, ACTION_ARG_MAX * 2)
        verb = "writing" if tool_name == "Write" else "editing"
        if relative != file_path or not file_path.startswith("/"):  # inside the worktree: a rule grants it
            text = f'denied: {verb} {shown} needs approval; grant it with "tools": ["{tool_name}({shown})"] {GRANT}'
        else:
            parent = file_path.rsplit("/", 1)[0] or "/"
            text = (f"denied: {verb} {shown} (outside the worktree); grant it with "
                    f'"writable": ["{clip(clean_line(parent, 200), ACTION_ARG_MAX * 2)}"] {GRANT}')
        return AgentEvent(kind="denied", text=text, tool=tool_name, denied=f"{tool_name}: {shown}")
    text = f'denied: {tool_name} needs approval; grant it with "tools": ["{tool_name}"] {GRANT}'
    return AgentEvent(kind="denied", text=text, tool=tool_name, denied=tool_name)


def _denial_key(tool_name: str, tool_input: Mapping[str, Any]) -> str:
    arg = as_str(tool_input.get("command")) or as_str(tool_input.get("file_path")) or \
        as_str(tool_input.get("notebook_path")) or as_str(tool_input.get("url")) or ""
    return f"{tool_name}\0{arg}"


def _tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        content = " ".join(as_str(as_dict(c).get("text")) or "" for c in content)
    return as_str(content) or ""


class ClaudeParser(AgentParser):
    """`claude -p ... --output-format stream-json --verbose`, one JSON object per line.

    Shapes as Claude Code 2.1 prints them:
    {"type":"system","subtype":"init","session_id","cwd","model","tools"},
    {"type":"assistant","message":{"id","content":[{"type":"text"|"tool_use"|"thinking"}],"usage",
     "stop_reason"},"parent_tool_use_id"} (one line per content block, sharing the message id),
    {"type":"user","message":{"content":[{"type":"tool_result","tool_use_id","is_error","content"}]}},
    {"type":"system","subtype":"api_retry","attempt","max_retries","error_status","error"},
    {"type":"system","subtype":"task_started"|"task_progress"|"task_updated"|"task_notification",
     "task_id","description","summary","patch","status"} (sub-agents),
    {"type":"result","subtype","is_error","api_error_status","result","session_id","num_turns",
     "duration_ms","total_cost_usd","usage","modelUsage":{model:{inputTokens,outputTokens,
     cacheReadInputTokens,cacheCreationInputTokens,costUSD}},"permission_denials":[{tool_name,
     tool_input}]}, plus tool_progress, tool_use_summary, auth_status, rate_limit_event and
    "stream_event" lines (--include-partial-messages; the complete message follows).

    Tokens: an assistant line's usage is the stream-start snapshot (message_start): its input
    counts are final, its output_tokens is a placeholder (1) while stop_reason is null. So the
    running input is counted once per message id and output only from a usage that carries a
    stop_reason (or a partial-messages message_delta); the result's modelUsage (every model,
    sub-agents included) gives the totals.
    """

    def __init__(self, cwd: str | None, carried: Mapping[str, Any] | None = None) -> None:
        super().__init__(cwd, carried)
        self._usage_by_message: collections.OrderedDict[str, tuple[int, int]] = collections.OrderedDict()
        self._tool_uses: collections.OrderedDict[str, tuple[str, dict[str, Any]]] = collections.OrderedDict()
        self._subagents: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._denied: set[str] = set()
        self._streaming: collections.OrderedDict[str, str] = collections.OrderedDict()  # stream -> message id
        self._fatal_sent = False

    def parse(self, line: str) -> list[AgentEvent]:
        obj = self.decode(line)
        if obj is None:
            return line_event(line)
        kind = obj.get("type")
        if kind == "system":
            return self._system(obj)
        if kind == "assistant":
            return self._assistant(obj)
        if kind == "user":
            return self._user(obj)
        if kind == "result":
            return self._result(obj)
        if kind == "stream_event":
            return self._stream_event(obj)
        if kind in ("keep_alive", "prompt_suggestion", "tool_progress") or (
            isinstance(kind, str) and kind.startswith("control_")
        ):
            return []  # partial messages, heartbeats, suggestions, "still running" ticks
        if kind == "tool_use_summary":
            summary = first_line(as_str(obj.get("summary")) or "", LINE_MAX - 10)
            return [AgentEvent(kind="line", text=f"Summary: {summary}")] if summary else []
        if kind == "auth_status":
            error = first_line(as_str(obj.get("error")) or "", LINE_MAX - 30)
            return [AgentEvent(kind="line", text=f"Authentication problem: {error}")] if error else []
        if kind == "rate_limit_event":
            info = as_dict(obj.get("rate_limit_info"))
            status = as_str(info.get("status")) or ""
            if status in ("", "allowed"):
                return []
            return [AgentEvent(kind="line", text=clean_line(f"Rate limit: {status.replace('_', ' ')}"))]
        if kind == "conversation_reset":
            return [AgentEvent(kind="line", text="Conversation reset")]
        if isinstance(kind, str) and kind:
            return [AgentEvent(kind="line", text=clean_line(f"[claude: {clip(kind, 60)}]"))]
        return line_event(line)

    # ----------------------------------------------------------------------- system

    def _system(self, obj: dict[str, Any]) -> list[AgentEvent]:
        subtype = as_str(obj.get("subtype")) or ""
        if subtype == "init":
            session_id = as_str(obj.get("session_id"))
            cwd = as_str(obj.get("cwd"))
            if cwd and not self.cwd:
                self.cwd = cwd
            model = as_str(obj.get("model"))
            tools = as_list(obj.get("tools"))
            text = "Session started" + (f" (model {clip(model, 60)}, {len(tools)} tools)" if model else "")
            return [AgentEvent(kind="session", text=text, session_id=session_id)]
        if subtype == "api_retry":
            return self._retry(obj)
        if subtype.startswith("task_"):
            return self._subagent(subtype, obj)
        if subtype == "permission_denied":
            tool_use = self._tool_uses.get(as_str(obj.get("tool_use_id")) or "")
            name = tool_use[0] if tool_use else (as_str(obj.get("tool_name")) or "tool")
            return self._deny(name, tool_use[1] if tool_use else {}, as_str(obj.get("message")) or "")
        if subtype == "compact_boundary":
            return [AgentEvent(kind="line", text="Compacting the conversation")]
        if subtype in ("model_fallback", "model_refusal_fallback", "model_refusal_no_fallback", "informational",
                       "notification", "api_error", "mirror_error"):
            said = as_str(obj.get("content")) or as_str(obj.get("text")) or as_str(obj.get("error")) or ""
            said = first_line(said, LINE_MAX)
            if subtype == "informational" and said == "Session completed successfully":
                return []
            return [AgentEvent(kind="line", text=said)] if said else []
        if subtype in ("status", "hook_started", "hook_progress", "hook_response", "thinking_tokens", "turn_starting",
                       "turn_duration", "session_state_changed", "commands_changed", "file_snapshot",
                       "bridge_state", "bridge_status", "post_turn_summary", "stop_hook_summary"):
            return []  # bookkeeping a person does not need
        if subtype:
            return [AgentEvent(kind="line", text=clean_line(f"[system: {clip(subtype, 60)}]"))]
        return [AgentEvent(kind="line", text="[system]")]

    def _retry(self, obj: dict[str, Any]) -> list[AgentEvent]:
        status = as_count(obj.get("error_status"))
        attempt = as_count(obj.get("attempt"))
        most = as_count(obj.get("max_retries"))
        what = f"API error {status}" if status is not None else "API error"
        error = as_str(obj.get("error"))
        if status is None and error:
            what += f" ({clip(clean_line(error, 60), 60)})"
        count = f"{attempt}/{most}" if attempt is not None and most is not None else (str(attempt or "") or "")
        text = f"{what}, retry {count}" if count else f"{what}, retrying"
        events = [AgentEvent(kind="retry", text=text, api_status=status)]
        if status in AUTH_STATUSES and not self._fatal_sent:
            self._fatal_sent = True
            events.append(AgentEvent(kind="error", text=self._auth_text(status), api_status=status, fatal=True,
                                     is_error=True))
        return events

    @staticmethod
    def _auth_text(status: int | None) -> str:
        return (f"the model API refused the credentials ({status}): check ANTHROPIC_API_KEY or `claude login`")

    def _subagent(self, subtype: str, obj: dict[str, Any]) -> list[AgentEvent]:
        task_id = as_str(obj.get("task_id")) or ""
        desc = as_str(obj.get("description")) or ""
        if desc and task_id:
            remember(self._subagents, task_id, desc)
        desc = desc or self._subagents.get(task_id, "")
        name = f"Sub-agent '{action_arg(desc)}'" if desc.strip() else "Sub-agent"
        if subtype == "task_started":
            return [AgentEvent(kind="line", text=f"{name} started")]
        if subtype == "task_progress":
            summary = first_line(as_str(obj.get("summary")) or "", 200)
            last = as_str(obj.get("last_tool_name"))
            detail = summary or (f"using {clip(clean_line(last, 60), 60)}" if last else "working")
            return [AgentEvent(kind="line", text=clean_line(f"{name}: {detail}"))]
        if subtype == "task_updated":
            status = as_str(as_dict(obj.get("patch")).get("status"))
            if not status or status in ("completed",):  # the notification that follows says it
                return []
            return [AgentEvent(kind="line", text=clean_line(f"{name}: {status.replace('_', ' ')}"))]
        if subtype == "task_notification":
            status = (as_str(obj.get("status")) or "finished").replace("_", " ")
            summary = first_line(as_str(obj.get("summary")) or "", 200)
            said = f"{name} {status}" + (f": {summary}" if summary and summary != desc else "")
            return [AgentEvent(kind="line", text=clean_line(said))]
        summary = first_line(as_str(obj.get("summary")) or as_str(obj.get("detail")) or "", 200)
        return [AgentEvent(kind="line", text=clean_line(f"{name}: {summary}" if summary else f"[system: {subtype}]"))]

    # ----------------------------------------------------------------------- messages

    def _assistant(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = as_dict(obj.get("message"))
        sub = obj.get("parent_tool_use_id") not in (None, "")
        events: list[AgentEvent] = []
        for block in as_list(message.get("content")):
            block = as_dict(block)
            btype = block.get("type")
            if btype == "text":
                for text_line in text_lines(as_str(block.get("text")) or ""):
                    events.append(AgentEvent(kind="text", text=clip(f"(sub-agent) {text_line}", LINE_MAX)
                                             if sub else text_line))
            elif btype == "tool_use":
                name = clean_line(as_str(block.get("name")) or "tool", 80) or "tool"
                tool_input = as_dict(block.get("input"))
                tool_id = as_str(block.get("id"))
                if tool_id:
                    remember(self._tool_uses, tool_id, (name, tool_input))
                action = claude_tool_action(name, tool_input, self.cwd)
                events.append(AgentEvent(kind="tool", text=action, action=action, tool=name))
        usage = self._usage_increment(message)
        if usage is not None:
            events.append(usage)
        return events

    def _usage_increment(self, message: dict[str, Any]) -> AgentEvent | None:
        usage = as_dict(message.get("usage"))
        if not usage:
            return None
        tokens_in = sum_counts(
            usage.get("input_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
        )
        # while stop_reason is null this is message_start's snapshot: output_tokens is a placeholder
        final = message.get("stop_reason") is not None
        tokens_out = as_count(usage.get("output_tokens")) if final else None
        if tokens_in is None and tokens_out is None:
            return None
        now = (tokens_in or 0, tokens_out or 0)
        msg_id = as_str(message.get("id"))
        before = self._usage_by_message.get(msg_id, (0, 0)) if msg_id else (0, 0)
        if msg_id:
            # a repeated message id repeats (or grows) its usage: count only the growth
            now = (max(now[0], before[0]), max(now[1], before[1]))
            remember(self._usage_by_message, msg_id, now)
        delta_in, delta_out = now[0] - before[0], now[1] - before[1]
        if delta_in == 0 and delta_out == 0:
            return None
        return AgentEvent(kind="usage", text="", tokens_in=delta_in, tokens_out=delta_out)

    def _stream_event(self, obj: dict[str, Any]) -> list[AgentEvent]:
        """--include-partial-messages: only the usage matters (the complete message follows).

        message_start carries the input counts, message_delta the final output count, which
        the complete assistant lines never have.
        """
        event = as_dict(obj.get("event"))
        stream = str(obj.get("parent_tool_use_id") or "")
        if event.get("type") == "message_start":
            message = as_dict(event.get("message"))
            msg_id = as_str(message.get("id"))
            if msg_id:
                remember(self._streaming, stream, msg_id)
            usage = self._usage_increment({**message, "stop_reason": None})
            return [usage] if usage else []
        if event.get("type") == "message_delta":
            msg_id = self._streaming.get(stream)
            output = as_dict(event.get("usage")).get("output_tokens")
            usage = self._usage_increment({"id": msg_id, "stop_reason": "final", "usage": {"output_tokens": output}})
            return [usage] if usage else []
        return []

    def _user(self, obj: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for block in as_list(as_dict(obj.get("message")).get("content")):
            block = as_dict(block)
            if block.get("type") != "tool_result" or block.get("is_error") is not True:
                continue
            said = _tool_result_text(block)
            tool_use = self._tool_uses.get(as_str(block.get("tool_use_id")) or "")
            if tool_use and self._is_denial(said):
                events += self._deny(tool_use[0], tool_use[1], said)
                continue
            detail = first_line(said, LINE_MAX - 12)
            if re.fullmatch(r"Exit code \d+", detail):  # the command's own words are on the next line
                more = first_line(said.split("\n", 1)[1] if "\n" in said else "", LINE_MAX - 30)
                detail = clip(f"{detail}: {more}", LINE_MAX - 12) if more else detail
            events.append(AgentEvent(kind="line", text=f"Tool error: {detail}" if detail else "Tool error"))
        return events

    @staticmethod
    def _is_denial(said: str) -> bool:
        head = said[:2000]
        return ("requires approval" in head or "haven't granted it yet" in head
                or "allowed working directories" in head or ("Permission to use" in head and "denied" in head))

    def _deny(self, name: str, tool_input: dict[str, Any], reason: str) -> list[AgentEvent]:
        key = _denial_key(name, tool_input)
        if key in self._denied or len(self._denied) >= 1000:
            return []
        self._denied.add(key)
        return [denial(name, tool_input, reason, self.cwd)]

    # ----------------------------------------------------------------------- result

    def _result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for entry in as_list(obj.get("permission_denials")):
            entry = as_dict(entry)
            name = as_str(entry.get("tool_name"))
            if name:
                events += self._deny(name, as_dict(entry.get("tool_input")), "")
        subtype = as_str(obj.get("subtype")) or ""
        is_error = obj.get("is_error") is True or (bool(subtype) and subtype != "success")
        tokens_in, tokens_out, model_cost = self._model_usage(as_dict(obj.get("modelUsage")))
        if tokens_in is None and tokens_out is None:
            usage = as_dict(obj.get("usage"))
            tokens_in = sum_counts(
                usage.get("input_tokens"),
                usage.get("cache_creation_input_tokens"),
                usage.get("cache_read_input_tokens"),
            )
            tokens_out = as_count(usage.get("output_tokens"))
        cost = as_number(obj.get("total_cost_usd"))
        if cost is None:
            cost = as_number(obj.get("cost_usd"))  # older Claude Code versions
        if cost is None:
            cost = model_cost
        duration_ms = as_number(obj.get("duration_ms"))
        duration = duration_ms / 1000 if duration_ms is not None and duration_ms >= 0 else None
        final = as_str(obj.get("result"))
        if final is None and is_error:
            errors = [e for e in as_list(obj.get("errors")) if isinstance(e, str)]
            final = "\n".join(errors) or None
        status = as_count(obj.get("api_error_status"))
        turns = as_count(obj.get("num_turns"))
        bits = []
        if duration is not None:
            bits.append(f"{duration:.1f} s")
        if turns is not None:
            bits.append(f"{turns} turn{'s' if turns != 1 else ''}")
        if cost is not None:
            bits.append(f"${cost:.4f}")
        if is_error:
            if status in AUTH_STATUSES:
                head = f"Failed: {self._auth_text(status)}"
            elif status is not None:
                head = f"Failed (API error {status})"
            elif subtype and subtype != "success":
                head = f"Failed ({clip(subtype, 40)})"
            else:
                head = "Failed"
            reason = first_line(final or "", 300)
            if status is not None:  # "API Error: 500 Internal server error..." names the status already
                reason = re.sub(rf"^API Error:?\s*{status}\b[\s:.-]*", "", reason)
            text = head + (f": {reason}" if reason and status not in AUTH_STATUSES else "")
        else:
            text = "Done" + (f" in {', '.join(bits)}" if bits else "")
        text = clean_line(text)
        events.append(
            AgentEvent(
                kind="result",
                text=text,
                session_id=as_str(obj.get("session_id")),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost,
                duration_s=duration,
                is_error=is_error,
                final_text=clip(final, FINAL_TEXT_MAX) if final is not None else None,
                api_status=status,
            )
        )
        return events

    @staticmethod
    def _model_usage(models: dict[str, Any]) -> tuple[int | None, int | None, float | None]:
        """Totals over every model of the run (the main model, sub-agents, small helper models)."""
        tokens_in: int | None = None
        tokens_out: int | None = None
        cost: float | None = None
        for figures in models.values():
            figures = as_dict(figures)
            got_in = sum_counts(figures.get("inputTokens"), figures.get("cacheReadInputTokens"),
                                figures.get("cacheCreationInputTokens"))
            got_out = as_count(figures.get("outputTokens"))
            got_cost = as_number(figures.get("costUSD"))
            if got_in is not None:
                tokens_in = (tokens_in or 0) + got_in
            if got_out is not None:
                tokens_out = (tokens_out or 0) + got_out
            if got_cost is not None and got_cost >= 0:
                cost = (cost or 0.0) + got_cost
        return tokens_in, tokens_out, cost
