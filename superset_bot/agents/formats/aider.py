"""aider's plain-text transcript (`aider --no-pretty --no-stream --message ...`), as aider 0.86 prints it.

What aider prints, and what becomes of it:
  * a banner ("Aider v0.86.2", "Model: openai/x with whole edit format", "Git repo: ...",
    "Repo-map: ...") -> one line naming version, model and edit format; the rest is dropped, as
    are terminal warnings, git identity hints, URL lines and the failed price-list download;
  * the model's reply, with edit blocks fenced in ``` (or <source>...) -> its prose as "text"
    lines (the last reply's prose is the final answer); code inside fences and the file name
    lines heading them are not shown;
  * `Tokens: 1.2k sent, 19 received. Cost: $0.0045 message, $0.0090 session.` after every
    model call -> a "usage" event (aider rounds counts of 1,000 and more to "1.2k" / "15k", so
    totals are as exact as aider's figures) and the run's cost so far ("session" is this
    process's total); a cache write/hit part may appear, and "Cost:" may move to its own line;
  * "Applied edit to FILE" -> a tool event "Editing FILE"; "Running CMD" -> "Running CMD";
  * shell commands the model suggests (```bash blocks, in the diff edit formats): aider echoes
    them and asks "Run shell commands?", which --yes-always answers "no" (the question itself
    goes only to the chat history), so an echoed command never followed by "Running CMD" was
    refused: a "denied" event saying how to let aider run tests;
  * model API errors: `litellm.AuthenticationError: AuthenticationError: OpenAIException - ...`
    (possibly wrapped over several lines at 80 columns), then aider's own explanation line and
    "Retrying in 0.5 seconds..." while it retries (up to 8 times, 0.25 s doubling to 32 s) ->
    "retry" events ("API error 500, retry 3/8"); an authentication or permission error is
    fatal at once (aider does not retry it).
aider exits 0 even when every model call failed, so `end()` reports a failed result when the
last model call failed (or none was made), naming the API's error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from superset_bot.agents.formats.event import (
    ACTION_ARG_MAX,
    FINAL_TEXT_MAX,
    AgentEvent,
    AgentParser,
    action_arg,
    clean_line,
    clip,
    rel_path,
)

SESSION_ID = "aider-chat-history"  # the session is .aider.chat.history.md in the worktree
MAX_RETRIES = 8  # aider retries 0.25 s, 0.5 s, ... 32 s, then gives up (RETRY_TIMEOUT = 60 s)
AUTH_STATUSES = (401, 403)
GRANT_COMMANDS = ('to let aider run your tests (and fix what fails), add "--test-cmd", "{command}", "--auto-test" '
                  "to the preset's agent.command and agent.followup")

# litellm's exception names (as aider lists them) -> the HTTP status behind them
STATUS_OF_ERROR = {
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "NotFoundError": 404,
    "BadRequestError": 400,
    "ContextWindowExceededError": 400,
    "ContentPolicyViolationError": 400,
    "UnprocessableEntityError": 422,
    "RateLimitError": 429,
    "RouterRateLimitError": 429,
    "InternalServerError": 500,
    "BadGatewayError": 502,
    "ServiceUnavailableError": 503,
}
# aider's explanations printed after an API error (aider/exceptions.py)
EXPLANATIONS = (
    "The API provider is not able to authenticate you.",
    "The API provider's servers are down or overloaded.",
    "The API provider has refused the request due to a safety policy",
    "The API provider was unable to fetch one or more images.",
    "The API provider has rate limited you.",
    "The API provider timed out without returning a response.",
)

_TOKENS_RE = re.compile(
    r"^Tokens: (?P<sent>[\d.]+k?) sent(?:, (?P<write>[\d.]+k?) cache write)?(?:, (?P<hit>[\d.]+k?) cache hit)?"
    r", (?P<received>[\d.]+k?) received\.(?P<rest>.*)$"
)
_COST_RE = re.compile(r"Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.")
_LITELLM_RE = re.compile(r"^litellm\.(?P<name>\w+): (?P<message>.*)$")
_MESSAGE_PREFIX_RE = re.compile(r"^(?:\w+Error: )?(?:\w+Exception - )?")
_RETRY_RE = re.compile(r"^Retrying in (?P<delay>[\d.]+) seconds\.\.\.$")
_APPLIED_RE = re.compile(r"^Applied edit to (?P<path>.+?)\s*$")
_RUNNING_RE = re.compile(r"^Running (?P<command>.+?)\s*$")
_VERSION_RE = re.compile(r"^Aider v(?P<version>\S+)$")
_MODEL_RE = re.compile(r"^(?:Main )?[Mm]odel: (?P<model>\S+) with (?P<format>[\w-]+) edit format(?P<rest>.*)$")
_BARE_PATH_RE = re.compile(r"^[\w@+~-][\w@+~./-]*\.\w+$|^[\w.@+~-]+(?:/[\w.@+~-]+)+/?$")
_URL_RE = re.compile(r"^<?https?://\S+>?$")
_FENCES = {"<source>": "</source>", "<code>": "</code>", "<pre>": "</pre>", "<codeblock>": "</codeblock>",
           "<sourcecode>": "</sourcecode>"}
_SHELL_LANGS = ("bash", "sh", "shell", "cmd", "batch", "powershell", "ps1", "zsh", "fish", "ksh", "csh", "tcsh")
_BACKTICKS_RE = re.compile(r"^(`{3,})(\S*)\s*$")
_BANNER_PREFIXES = (
    "Weak model:", "Editor model:", "Git repo:", "Repo-map:", "Added ", "Use /help", "Note: in-chat filenames",
    "Cur working dir:", "Git working dir:",
)
_STATUS_PREFIXES = (
    "Warning", "Note:", "Restored previous conversation history", "Missing these environment variables",
    "Did not apply edit", "The LLM did not conform", "Only 3 reflections allowed", "Empty response received",
    "Model ", "Commit ", "Committing ", "Creating empty file", "Added ", "Unable to ", "Error:", "Can't ",
    "Skipping ", "Attempt to fix", "Fix lint errors",
)
_NOISE_PREFIXES = (
    "Warning: Input is not a terminal", "Update git name with:", "Update git email with:",
    "You can skip this check with --no-show-model-warnings", "Opening release notes:",
    "Would you like to see what's new", "Newer aider version", "Run pip install", "Analytics have been",
)


def _count(text: str | None) -> int:
    """aider's token figure ("770", "1.2k", "15k") as a number."""
    if not text:
        return 0
    try:
        return round(float(text[:-1]) * 1000) if text.endswith("k") else round(float(text))
    except ValueError:
        return 0


class AiderParser(AgentParser):
    """Reads one aider run's output; see the module docstring for what each line becomes."""

    def __init__(self, cwd: str | None, carried: Mapping[str, Any] | None = None) -> None:
        super().__init__(cwd, carried)
        self._version: str | None = None
        self._fence: str | None = None  # the closing fence while inside a fenced block
        self._shell_block: list[str] | None = None  # lines of a ```bash block of the reply
        self._suggested: set[str] = set()  # commands of the replies' shell blocks
        self._offered: list[str] = []  # suggested commands aider echoed (asked about) and did not run
        self._denied: set[str] = set()
        self._reply: list[str] = []  # prose of the reply in progress
        self._last_reply: list[str] = []
        self._replies = 0  # model calls that came back ("Tokens:" lines)
        self._cost: float | None = None
        self._message_costs = 0.0  # aider shows costs of a cent and more to the cent: the sum is finer
        self._error: dict[str, Any] | None = None  # the API error being read (it may wrap over lines)
        self._failure: dict[str, Any] | None = None  # the last API error not followed by a reply
        self._retries = 0
        self._fatal_sent = False
        self._in_traceback = False

    # ------------------------------------------------------------------ lines

    def parse(self, line: str) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for part in line.splitlines() or [""]:
            events.extend(self._line(part))
        return events

    def _line(self, raw: str) -> list[AgentEvent]:
        text = clean_line(raw)
        stripped = text.strip()
        if self._fence is not None:
            if not (_TOKENS_RE.match(stripped) or _LITELLM_RE.match(stripped) or _RETRY_RE.match(stripped)
                    or _APPLIED_RE.match(stripped)):
                return self._fenced(stripped)
            self._fence = self._shell_block = None  # a reply cut off inside a fence: aider speaks again
        if not stripped:
            return self._close_error()
        if self._error is not None:
            if self._continues_error(stripped):
                self._error["message"] += " " + stripped
                return []
            events = self._close_error()
            return events + self._line(raw)
        tokens = _TOKENS_RE.match(stripped)
        if tokens:
            return self._usage(tokens)
        cost = _COST_RE.match(stripped)
        if cost:  # on its own line when both cache figures are shown
            self._add_cost(cost)
            return [AgentEvent(kind="usage", text="", cost_usd=self._cost)]
        error = _LITELLM_RE.match(stripped)
        if error:
            self._in_traceback = False
            self._error = {"name": error.group("name"), "message": error.group("message").strip()}
            return []
        retry = _RETRY_RE.match(stripped)
        if retry:
            return self._retry()
        applied = _APPLIED_RE.match(stripped)
        if applied:
            path = rel_path(applied.group("path"), self.cwd)
            action = f"Editing {clip(path, ACTION_ARG_MAX * 2)}"
            return [AgentEvent(kind="tool", text=action, action=action, tool="edit")]
        running = _RUNNING_RE.match(stripped)
        if running and running.group("command") in self._offered:
            command = running.group("command")
            self._offered.remove(command)
            action = f"Running {action_arg(command)}"
            return [AgentEvent(kind="tool", text=action, action=action, tool="shell")]
        if stripped in self._suggested and self._replies:
            # aider echoes a suggested command before asking whether to run it
            if stripped not in self._offered:
                self._offered.append(stripped)
            return []
        return self._other(stripped, indented=text[:1].isspace())

    def _fenced(self, stripped: str) -> list[AgentEvent]:
        if stripped == self._fence:
            self._fence = None
            if self._shell_block is not None:
                for command in self._shell_block:
                    if len(self._suggested) < 200:
                        self._suggested.add(command)
                self._shell_block = None
            return []
        if self._shell_block is not None and stripped and not stripped.startswith("#"):
            self._shell_block.append(stripped)
        return []

    def _other(self, stripped: str, *, indented: bool = False) -> list[AgentEvent]:
        if self._in_traceback:
            if indented or stripped.startswith("During handling"):
                return []
            self._in_traceback = False
        if stripped.startswith("Traceback (most recent call last)"):
            self._in_traceback = True
            return []
        opening = _BACKTICKS_RE.match(stripped)
        if opening:
            self._fence = opening.group(1)
            self._shell_block = [] if opening.group(2).lower() in _SHELL_LANGS else None
            return []
        if stripped in _FENCES:
            self._fence = _FENCES[stripped]
            self._shell_block = None
            return []
        version = _VERSION_RE.match(stripped)
        if version:
            self._version = version.group("version")
            return []
        model = _MODEL_RE.match(stripped)
        if model:
            who = f"aider v{self._version}" if self._version else "aider"
            return [AgentEvent(kind="line", text=clean_line(
                f"{who}: {model.group('model')}, {model.group('format')} edit format"))]
        if stripped.startswith(_BANNER_PREFIXES) and not self._replies and not self._reply:
            return []
        if stripped.startswith(_NOISE_PREFIXES) or _URL_RE.match(stripped):
            return []
        if "model_prices_and_context_window.json" in stripped or stripped.startswith("HTTPSConnectionPool("):
            return []  # aider could not download the price list: it says so in the model warning
        if stripped.startswith(EXPLANATIONS):
            return []  # said with the error it follows
        if _BARE_PATH_RE.match(stripped):
            return []  # a file name heading an edit block, or echoed before "Create new file?"
        if stripped.startswith(_STATUS_PREFIXES):
            return [AgentEvent(kind="line", text=stripped)]  # aider's own words, not the model's
        if len(self._reply) < 400:
            self._reply.append(stripped)
        return [AgentEvent(kind="text", text=stripped)]

    # ------------------------------------------------------------------ model calls

    def _usage(self, match: re.Match[str]) -> list[AgentEvent]:
        events = self._flush_denials()
        sent, received = _count(match.group("sent")), _count(match.group("received"))
        cost = _COST_RE.search(match.group("rest") or "")
        if cost:
            self._add_cost(cost)
        first = self._replies == 0
        self._replies += 1
        self._failure = None
        self._retries = 0
        if self._reply:
            self._last_reply = self._reply
            self._reply = []
        events.append(AgentEvent(kind="usage", text="", tokens_in=sent, tokens_out=received, cost_usd=self._cost,
                                 session_id=SESSION_ID if first else None))
        return events

    def _add_cost(self, match: re.Match[str]) -> None:
        """The run's cost so far: the sum of the per-call figures, or aider's own total if they disagree."""
        message, session = _money(match.group("message")), _money(match.group("session"))
        self._message_costs += message or 0.0
        if session is None or abs(session - self._message_costs) <= 0.0051 * (self._replies + 1):
            self._cost = round(self._message_costs, 6)
        else:
            self._cost = session

    def _continues_error(self, stripped: str) -> bool:
        """Whether a line is the rest of a wrapped API error message."""
        if stripped.startswith(EXPLANATIONS) or _RETRY_RE.match(stripped) or _LITELLM_RE.match(stripped):
            return False
        if _TOKENS_RE.match(stripped) or _APPLIED_RE.match(stripped):
            return False
        return len(self._error["message"]) < 2000 if self._error else False

    def _close_error(self) -> list[AgentEvent]:
        error, self._error = self._error, None
        if error is None:
            return []
        name = str(error["name"])
        message = _MESSAGE_PREFIX_RE.sub("", str(error["message"]), count=1).strip() or name
        status = STATUS_OF_ERROR.get(name)
        if status is None:
            found = re.search(r"\b(?:status(?: code)?|HTTP|Error code:)\s*:?\s*([45]\d\d)\b", message)
            status = int(found.group(1)) if found else None
        repeated = self._failure is not None and self._failure["message"] == message
        self._failure = {"name": name, "message": message, "status": status}
        if status in AUTH_STATUSES:
            if self._fatal_sent:
                return []
            self._fatal_sent = True  # retrying cannot help: stop now and say why
            return [AgentEvent(kind="error", text=self._failed_text(), api_status=status, fatal=True, is_error=True)]
        if repeated:
            return []  # the retry line says it happened again
        said = f"API error {status}" if status is not None else f"API error ({_spaced(name)})"
        return [AgentEvent(kind="error", text=clean_line(f"{said}: {message}"), api_status=status)]

    def _retry(self) -> list[AgentEvent]:
        events = self._close_error()
        self._retries += 1
        failure = self._failure or {}
        status = failure.get("status")
        said = f"API error {status}" if status is not None else f"API error ({_spaced(str(failure.get('name') or 'unknown'))})"
        return events + [AgentEvent(kind="retry", text=f"{said}, retry {self._retries}/{MAX_RETRIES}",
                                    api_status=status if isinstance(status, int) else None)]

    def _failed_text(self) -> str:
        failure = self._failure or {}
        status, message = failure.get("status"), str(failure.get("message") or "")
        if status in AUTH_STATUSES:
            return clean_line(f"the model API refused aider's credentials (HTTP {status}): {clip(message, 200)}; "
                              "check the API key for AIDER_MODEL (e.g. OPENAI_API_KEY or ANTHROPIC_API_KEY)")
        what = f"HTTP {status}" if status is not None else _spaced(str(failure.get("name") or "error"))
        tries = f" after {self._retries} retries" if self._retries else ""
        return clean_line(f"aider's model API call failed ({what}: {clip(message, 200)}){tries}; "
                          "aider gave up without a reply")

    # ------------------------------------------------------------------ denials and the end

    def _flush_denials(self) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for command in self._offered:
            if command in self._denied or len(self._denied) >= 100:
                continue
            self._denied.add(command)
            shown = action_arg(command)
            grant = GRANT_COMMANDS.format(command=shown.replace('"', "'"))
            events.append(AgentEvent(kind="denied", tool="shell", denied=f"shell: {shown}", text=clean_line(
                f"denied: `{shown}` was not run (aider runs no command its model suggests headless); {grant}")))
        self._offered = []
        return events

    def end(self) -> list[AgentEvent]:
        events = self._close_error() + self._flush_denials()
        if self._reply:
            self._last_reply = self._reply
        final = clip("\n".join(self._last_reply), FINAL_TEXT_MAX) if self._last_reply else None
        if self._failure is not None:
            events.append(AgentEvent(kind="result", text=self._failed_text(), is_error=True, final_text=final,
                                     api_status=self._failure.get("status"), cost_usd=self._cost))
        elif not self._replies:
            events.append(AgentEvent(kind="result", text="aider ended without a reply from the model", is_error=True,
                                     final_text=final))
        else:
            events.append(AgentEvent(kind="result", text="", final_text=final, cost_usd=self._cost))
        return events


def _money(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _spaced(name: str) -> str:
    """"APIConnectionError" -> "API connection error"."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]*|[a-z]+|\d+", name.removesuffix("Error") or name)
    said = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return f"{said} error" if name.endswith("Error") else said or name
