"""Secret redaction and the agent's environment."""

from __future__ import annotations

from superset_bot.redact import Redactor, agent_environment, secret_values


def test_secret_values_by_name_case_insensitive_and_long_enough() -> None:
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-123456",
        "github_token": "ghp_abcdef",
        "DB_PASSWORD": "hunter22",
        "MY_SECRET": "short",  # under 6 characters: too generic to redact
        "PATH": "/usr/bin:/bin",
        "KEYBOARD": "us-intl-layout",  # contains KEY: better safe than sorry
    }
    assert secret_values(env, extra=["extra-value-1", "abc"]) == [
        "sk-ant-123456",
        "ghp_abcdef",
        "hunter22",
        "us-intl-layout",
        "extra-value-1",
    ]


def test_secret_values_deduplicates() -> None:
    assert secret_values({"A_TOKEN": "same-value", "B_TOKEN": "same-value"}, ["same-value"]) == ["same-value"]


def test_redact_every_occurrence_longest_first() -> None:
    redactor = Redactor(["abcdef", "abcdefghij", "x.y*z+"])
    assert (
        redactor.redact("abcdefghij and abcdef and abcdefXYZ")
        == "[redacted] and [redacted] and [redacted]XYZ"
    )
    assert redactor.redact("regex chars x.y*z+ are literal, xay*z+ is not") == (
        "regex chars [redacted] are literal, xay*z+ is not"
    )


def test_redactor_without_secrets_is_a_no_op() -> None:
    redactor = Redactor([])
    assert not redactor
    assert redactor.redact("anything") == "anything"
    assert Redactor([""]).redact("anything") == "anything"


def test_multi_line_secret_is_redacted_line_by_line() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END KEY-----\n"
    redactor = Redactor([pem])
    assert redactor.redact("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") == "[redacted]"
    assert redactor.redact("key: BKcwggSjAgEAAoIBAQC7") == "key: [redacted]"


def test_safe_cut_never_splits_a_secret() -> None:
    redactor = Redactor(["SECRET-VALUE"])
    data = b"0123456789SECRET-VALUE0123456789"
    for cut in range(11, 22):
        assert redactor.safe_cut(data, cut) == 10
    assert redactor.safe_cut(data, 5) == 5
    assert redactor.safe_cut(data, 22) == 22


def test_agent_environment_drops_bot_credentials_and_disables_git_prompts() -> None:
    base = {
        "PATH": "/bin",
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_APP_TOKEN": "xapp-1",
        "SLACK_SIGNING_SECRET": "sig",
        "ANTHROPIC_API_KEY": "sk-ant",
        "INTERNAL": "x",
        "GIT_TERMINAL_PROMPT": "1",
    }
    env = agent_environment(base, {"NODE_ENV": "development", "SLACK_BOT_TOKEN": "again"}, drop=["INTERNAL"])
    assert env == {
        "PATH": "/bin",
        "ANTHROPIC_API_KEY": "sk-ant",
        "NODE_ENV": "development",
        "GIT_TERMINAL_PROMPT": "0",
    }
    assert base["SLACK_BOT_TOKEN"] == "xoxb-1"  # the caller's mapping is untouched
