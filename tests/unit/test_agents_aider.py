"""The "aider" parser over aider 0.86's recorded output (tests/samples/aider_*.txt) and edge cases."""

from __future__ import annotations

from support.agentsamples import SAMPLES, run_lines

from superset_bot.agents.formats import AgentEvent, Progress, make_parser


def run(lines: list[str] | str, cwd: str = "/TMP") -> tuple[list[AgentEvent], Progress]:
    return run_lines("aider", lines.splitlines() if isinstance(lines, str) else lines, cwd=cwd)


def sample(name: str) -> tuple[list[AgentEvent], Progress]:
    return run((SAMPLES / f"aider_{name}.txt").read_text())


def shown(events: list[AgentEvent]) -> str:
    return "\n".join(e.text for e in events if e.text)


def test_whole_format_run_edits_a_file_with_tokens_and_no_cost() -> None:
    events, progress = sample("whole")
    tools = [e for e in events if e.kind == "tool"]
    assert [(e.action, e.tool) for e in tools] == [("Editing hello.txt", "edit")]
    assert (progress.tokens_in, progress.tokens_out) == (770, 19)
    assert progress.cost_usd is None  # aider prints no cost for a model it has no prices for
    assert progress.session_id and not progress.is_error and progress.error is None
    assert progress.final_text == "I'll create hello.txt with a greeting."
    assert "aider v0.86.2: openai/fake-coder, whole edit format" in shown(events)
    text = shown(events)
    for noise in ("Git repo:", "Repo-map:", "https://", "Input is not a terminal", "```", "hello from the model",
                  "--no-show-model-warnings", "Tokens:"):
        assert noise not in text


def test_diff_format_run_reports_cost_and_the_shell_commands_aider_declined() -> None:
    events, progress = sample("diff")
    assert [e.action for e in events if e.kind == "tool"] == ["Editing hello.txt"]
    assert (progress.tokens_in, progress.tokens_out) == (1200, 56)  # "1.2k sent"
    assert progress.cost_usd == 0.0045
    assert [e.denied for e in events if e.kind == "denied"] == ["shell: python3 -m pytest -q", "shell: cat hello.txt"]
    assert progress.denials[0].startswith("denied: `python3 -m pytest -q` was not run")
    assert '"--test-cmd", "python3 -m pytest -q", "--auto-test"' in progress.denials[0]
    assert not progress.is_error
    text = shown(events)
    assert "<<<<<<< SEARCH" not in text and "python3 -m pytest -q\n" not in text


def test_followup_sums_every_model_call_and_keeps_the_session_cost() -> None:
    events, progress = sample("diff_followup")
    usage = [e for e in events if e.kind == "usage"]
    assert [(e.tokens_in, e.tokens_out, e.cost_usd) for e in usage] == [(15000, 300, 0.05), (15000, 300, 0.10)]
    assert (progress.tokens_in, progress.tokens_out, progress.cost_usd) == (30000, 600, 0.10)
    assert "Restored previous conversation history." in shown(events)
    assert [e.action for e in events if e.kind == "tool"] == ["Editing hello.txt"]
    assert progress.final_text == "Changing the greeting." and not progress.is_error


def test_auth_error_is_fatal_at_once_with_the_reason() -> None:
    events, progress = sample("auth")
    fatal = [i for i, e in enumerate(events) if e.fatal]
    assert len(fatal) == 1 and events[fatal[0]].api_status == 401
    assert events[-1].kind == "result" and fatal[0] < len(events) - 1  # before the end, not at it
    assert progress.fatal and progress.is_error
    assert progress.error and "HTTP 401" in progress.error and "Incorrect API key provided" in progress.error
    assert "OPENAI_API_KEY" in progress.error
    assert not [e for e in events if e.kind == "retry"]


def test_server_errors_become_retries_then_a_failed_result() -> None:
    events, progress = sample("500")
    retries = [e.text for e in events if e.kind == "retry"]
    assert retries == [f"API error 500, retry {n}/8" for n in range(1, 9)]
    assert len([e for e in events if e.kind == "error"]) == 1  # the same message is not repeated
    assert not progress.fatal and progress.is_error
    assert progress.error and "HTTP 500" in progress.error and "after 8 retries" in progress.error
    assert "The API provider's servers are down" not in shown(events)


def test_token_figures_with_k_suffixes_cache_parts_and_cost_on_its_own_line() -> None:
    events, progress = run([
        "Tokens: 12k sent, 1.1k cache write, 5.0k cache hit, 200 received.",
        "Cost: $0.12 message, $0.34 session.",
        "Tokens: 999 sent, 1.5k received. Cost: $0.0012 message, $0.3412 session.",
    ])
    usage = [e for e in events if e.kind == "usage"]
    assert [(e.tokens_in, e.tokens_out) for e in usage if e.tokens_in is not None] == [(12000, 200), (999, 1500)]
    assert (progress.tokens_in, progress.tokens_out, progress.cost_usd) == (12999, 1700, 0.3412)
    assert not progress.is_error


def test_a_wrapped_error_is_read_whole_and_a_connection_error_has_no_status() -> None:
    events, progress = run([
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect ",
        "API key provided: sk-bad. You can find your API key at ",
        "https://platform.openai.com.",
        "The API provider is not able to authenticate you. Check your API key.",
    ])
    assert progress.fatal and progress.error
    assert "Incorrect API key provided: sk-bad. You can find your API key at https://platform.openai.com." \
        in progress.error
    events, progress = run([
        "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.",
        "Retrying in 0.2 seconds...",
        "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error.",
    ])
    assert [e.text for e in events if e.kind == "retry"] == ["API error (API connection error), retry 1/8"]
    assert progress.error and "Connection error." in progress.error and not progress.fatal


def test_a_reply_after_retries_clears_the_failure() -> None:
    events, progress = run([
        "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for requests.",
        "The API provider has rate limited you. Try again later or check your quotas.",
        "Retrying in 0.2 seconds...",
        "Done, nothing to change.",
        "Tokens: 100 sent, 5 received.",
    ])
    assert [(e.text, e.api_status) for e in events if e.kind == "retry"] == [("API error 429, retry 1/8", 429)]
    assert not progress.is_error and progress.final_text == "Done, nothing to change."


def test_a_command_aider_ran_is_an_action_not_a_denial() -> None:
    events, progress = run([
        "```bash", "make test", "```", "Tokens: 100 sent, 5 received.", "make test", "Running make test", "ok",
    ])
    assert [e.action for e in events if e.kind == "tool"] == ["Running make test"]
    assert progress.denials == []


def test_prose_is_text_and_never_mistaken_for_actions() -> None:
    events, progress = run([
        "Running the tests should now pass.", "Applied edit to /TMP/src/app.py", "Tokens: 10 sent, 2 received.",
    ])
    assert [e.action for e in events if e.kind == "tool"] == ["Editing src/app.py"]
    assert [e.text for e in events if e.kind == "text"] == ["Running the tests should now pass."]


def test_a_run_without_any_model_reply_fails() -> None:
    _, progress = run(["Aider v0.86.2", "Model: openai/x with whole edit format", "Git repo: none"])
    assert progress.is_error and progress.error == "aider ended without a reply from the model"


def test_tracebacks_and_the_failed_price_download_are_not_shown() -> None:
    events, _ = run([
        "HTTPSConnectionPool(host='raw.githubusercontent.com', port=443): Max retries exceeded with url: "
        "/BerriAI/litellm/main/model_prices_and_context_window.json (Caused by NameResolutionError(...))",
        "Traceback (most recent call last):",
        '  File "/venv/lib/python3.12/site-packages/aider/coders/base_coder.py", line 1, in send',
        "    yield from self.send(messages)",
        "ValueError: boom",
    ])
    assert shown(events).splitlines()[0] == "ValueError: boom"


def test_the_parser_never_raises_and_bounds_what_it_keeps() -> None:
    huge = "x" * 100_000
    events, progress = run(["\x1b[31m\x00garbage\x1b[0m", huge, "```", "Tokens: nan sent, k received.", "\ud800"])
    assert all(len(e.text) <= 500 for e in events)
    assert progress.is_error  # no model reply came back
    parser = make_parser("aider")
    assert parser(b"Applied edit to a.py") == parser(b"Applied edit to a.py")  # type: ignore[arg-type]


def test_cost_sums_the_per_call_figures_that_aider_rounds_less() -> None:
    _, progress = run([
        "Tokens: 2.0k sent, 40 received. Cost: $0.0066 message, $0.0066 session.",
        "Tokens: 2.0k sent, 40 received. Cost: $0.0066 message, $0.01 session.",  # the total, to the cent
    ])
    assert progress.cost_usd == 0.0132


def test_a_reply_cut_off_inside_a_fence_does_not_hide_what_aider_says_next() -> None:
    events, progress = run(["Here:", "app.py", "```python", "def f(", "Tokens: 50 sent, 4k received.",
                            "Applied edit to app.py"])
    assert [e.action for e in events if e.kind == "tool"] == ["Editing app.py"]
    assert (progress.tokens_in, progress.tokens_out) == (50, 4000) and not progress.is_error
