"""The price table and Codex's model: a token-only agent's cost is estimated from a list price when
its model is known, and never made up when it is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.blocksamples import NOW, dumps, make_task, progress, review

from superset_bot.agents.models import codex_config_path, codex_model, read_codex_config, run_model
from superset_bot.domain.prices import (
    DEFAULT_PRICES,
    Price,
    PriceFileError,
    cost,
    estimate_label,
    load_prices,
    parse_prices,
    price_for,
)
from superset_bot.domain.progress import ProgressSnapshot
from superset_bot.domain.review import Review
from superset_bot.domain.spend import Spend, usage_detail
from superset_bot.domain.state import TaskState
from superset_bot.frontends.console import format_review
from superset_bot.frontends.slack.blocks.card import task_card
from superset_bot.frontends.slack.blocks.figures import cost_text
from superset_bot.frontends.slack.blocks.review import review_message

GPT5 = Price("gpt-5", 1.25, 0.125, 10.0)


# ---------------------------------------------------------------------- the table


def test_lookup_is_by_exact_name_ignoring_case_and_an_openai_prefix() -> None:
    assert price_for(DEFAULT_PRICES, "gpt-5-codex") == Price("gpt-5-codex", 1.25, 0.125, 10.0)
    assert price_for(DEFAULT_PRICES, " GPT-5-Codex ") == price_for(DEFAULT_PRICES, "openai/gpt-5-codex")
    assert price_for(DEFAULT_PRICES, "o4-mini") == Price("o4-mini", 1.10, 0.275, 4.40)
    for model in ("gpt-5.1-codex", "gpt-5.1-codex-mini", "gpt-5.1", "gpt-5-mini", "o3"):
        assert price_for(DEFAULT_PRICES, model) is not None, model


def test_an_unknown_model_has_no_price_not_a_neighbours() -> None:
    for model in (None, "", "gpt-5.5", "gpt-5-codex-2025-09-15", "gpt-5-", "gpt", "azure/gpt-5", "gpt-oss:20b"):
        assert price_for(DEFAULT_PRICES, model) is None, model


def test_every_shipped_price_is_sane() -> None:
    for key, price in DEFAULT_PRICES.items():
        assert key == price.model == price.model.lower()
        assert 0 < price.cached_input <= price.input <= price.output < 100


def test_cost_charges_cached_input_at_its_own_price() -> None:
    # 10,000 in of which 8,000 cached, 500 out: 2,000 x 1.25 + 8,000 x 0.125 + 500 x 10 per million
    assert cost(GPT5, 10_000, 8_000, 500) == pytest.approx(0.0085)
    assert cost(GPT5, 1_000_000, 0, 0) == pytest.approx(1.25)
    assert cost(GPT5, 1_000_000, 1_000_000, 1_000_000) == pytest.approx(0.125 + 10.0)
    assert cost(GPT5, 0, 0, 0) == 0.0


def test_cost_never_goes_below_zero_or_counts_more_cached_than_input() -> None:
    assert cost(GPT5, 100, 500, 0) == pytest.approx(100 * 0.125 / 1e6)  # cached at most all the input
    assert cost(GPT5, -5, -5, -5) == 0.0
    assert cost(GPT5, 100, -5, 0) == pytest.approx(100 * 1.25 / 1e6)


def test_the_label_names_the_model_and_that_it_is_a_list_price() -> None:
    assert estimate_label("gpt-5-codex") == "est. from gpt-5-codex list price"


# ---------------------------------------------------------------------- the override file


def test_an_override_file_adds_changes_and_removes_models(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({
        "GPT-5.5": {"input": 2, "cached_input": 0.2, "output": 16},  # added, its name as the table spells it
        "openai/gpt-5": {"input": 1, "cached_input": 0.1, "output": 8},  # changed
        "o3": None,  # removed: shown by its tokens only
        "house-model": {"input": 3, "output": 6},  # no cached price: cached tokens pay the full input one
    }))
    table = load_prices(path)
    assert price_for(table, "gpt-5.5") == Price("gpt-5.5", 2.0, 0.2, 16.0)
    assert price_for(table, "gpt-5") == Price("gpt-5", 1.0, 0.1, 8.0)
    assert price_for(table, "o3") is None
    assert price_for(table, "house-model") == Price("house-model", 3.0, 3.0, 6.0)
    assert price_for(table, "gpt-5-codex") == DEFAULT_PRICES["gpt-5-codex"]  # the rest as shipped
    assert price_for(DEFAULT_PRICES, "o3") is not None  # the shipped table is left alone


@pytest.mark.parametrize(("text", "problem"), [
    ("{not json", "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)"),
    ('["gpt-5"]', "expected an object of models, like {\"gpt-5\": {"),
    ('{"gpt-5": 1.25}', 'model "gpt-5" should be an object like {"input": 1.25, "cached_input": 0.125'),
    ('{"gpt-5": {"input": 1}}', 'model "gpt-5" lacks "output" (US dollars per million tokens)'),
    ('{"gpt-5": {"input": 1, "output": 2, "ouput": 3}}', "model \"gpt-5\" has unknown key(s) 'ouput'"),
    ('{"gpt-5": {"input": "1.25", "output": 10}}', 'model "gpt-5": "input" should be US dollars per million '
                                                   'tokens, a number from 0 to 1,000,000, not "1.25"'),
    ('{"gpt-5": {"input": -1, "output": 10}}', 'not -1'),
    ('{"gpt-5": {"input": NaN, "output": 10}}', "not NaN"),
    ('{"gpt-5": {"input": true, "output": 10}}', "not true"),
    ('{"gpt-5": {"input": 1e400, "output": 10}}', '"input" should be US dollars'),
    ('{"gpt-5": {"input": 1, "output": 100000000000000000000000000}}', '"output" should be US dollars'),
    ('{" ": {"input": 1, "output": 2}}', "a model has an empty name"),
    ('{"gpt-5": {"input": 1, "output": 2}, "GPT-5": null}', 'model "gpt-5" is given twice'),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(text)
    with pytest.raises(PriceFileError) as caught:
        load_prices(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert problem in message, message


def test_a_missing_or_unreadable_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"prices\.json: no such file$"):
        load_prices(tmp_path / "prices.json")
    with pytest.raises(PriceFileError, match="cannot be read"):
        load_prices(tmp_path)  # a directory
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(PriceFileError, match="not UTF-8 text"):
        load_prices(binary)


def test_parsing_merges_over_the_base_it_is_given() -> None:
    table = parse_prices('{"m": {"input": 1, "cached_input": 0.5, "output": 2}}', "inline", base={})
    assert table == {"m": Price("m", 1.0, 0.5, 2.0)}


# ---------------------------------------------------------------------- the ledger


def test_a_repeated_model_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"gpt-5": {"input": 1, "output": 2}, "gpt-5": {"input": 9, "output": 9}}')
    with pytest.raises(PriceFileError, match='"gpt-5" is given twice'):
        load_prices(path)


def test_a_task_line_says_runs_with_tokens_only_are_not_in_its_dollars() -> None:
    mixed = Spend.of_usage(usage_detail(1, 0.42, 100, 10, "gpt-5")).plus(Spend.of_usage(usage_detail(2, None, 50, 5)))
    assert mixed.brief() == "$0.42 est. + 1 run with tokens only"
    assert Spend.of_usage(usage_detail(1, 0.42, 100, 10)).brief() == "$0.42"
    assert Spend().brief() == ""


def test_the_ledger_says_which_costs_are_estimates_and_sums_them() -> None:
    estimated = usage_detail(1, 0.5, 1000, 200, "gpt-5-codex")
    assert estimated["cost_estimated_from"] == "gpt-5-codex"
    assert "cost_estimated_from" not in usage_detail(1, 0.5, 1000, 200)  # a reported cost: as before
    assert "cost_estimated_from" not in usage_detail(1, None, 1000, 200, "gpt-5")  # nothing to estimate
    total = Spend.of_usage(estimated).plus(Spend.of_usage(usage_detail(2, 0.25, 100, 10)))
    assert (total.cost_usd, total.runs, total.estimated, total.unpriced) == (0.75, 2, 1, 0)
    assert total.text() == "$0.75 (1.3k tokens; 1 run estimated from list prices)"
    both = total.plus(Spend.of_usage(usage_detail(3, None, 5000, 0)))
    assert both.text() == "$0.75 (6.3k tokens; 1 run estimated from list prices; 1 run with tokens only)"
    assert Spend.of_usage({"cost_usd": 1, "cost_estimated_from": 7}).estimated == 0


# ---------------------------------------------------------------------- Codex's model


CONFIG = """
model = "gpt-5"
profile = "deep"

[profiles.deep]
model = "o3"

[profiles.quick]
model = "gpt-5-mini"

[profiles.bare]
approval_policy = "never"
"""


@pytest.mark.parametrize(("argv", "model"), [
    (["codex", "exec", "-m", "gpt-5-codex", "--", "{prompt}"], "gpt-5-codex"),
    (["codex", "exec", "--model", "gpt-5-codex", "{prompt}"], "gpt-5-codex"),
    (["codex", "exec", "--model=gpt-5-codex"], "gpt-5-codex"),
    (["codex", "exec", "-mgpt-5-codex"], "gpt-5-codex"),
    (["codex", "exec", "-m", "o3", "-m", "o4-mini"], "o4-mini"),  # the last one wins, as in clap
    (["codex", "exec", "-m", "o3", "resume", "{session}"], "o3"),
    (["codex", "exec", "--json", "--", "-m gpt-5-codex"], None),  # the prompt is not an option
])
def test_the_model_from_the_command_line(argv: list[str], model: str | None) -> None:
    assert codex_model(argv, None) == model
    assert codex_model(argv, CONFIG) == (model or "o3")  # -m beats any config


@pytest.mark.parametrize(("argv", "model"), [
    ([], "o3"),  # the config's own profile's model
    (["-p", "quick"], "gpt-5-mini"),  # a profile chosen on the command line
    (["--profile=quick"], "gpt-5-mini"),
    (["-c", "profile=quick"], "gpt-5-mini"),
    (["-c", "profile=bare"], "gpt-5"),  # a profile without a model: the top-level one
    (["-p", "missing"], "gpt-5"),
    (["-c", "profile=bare", "-c", 'model="gpt-5.1-codex"'], "gpt-5.1-codex"),
    (["-c", "profile=bare", "-c", "model=gpt-5.1-codex"], "gpt-5.1-codex"),  # unquoted: the raw string
    (["--config", "profiles.deep.model='gpt-5.1'"], "gpt-5.1"),  # a dotted key
    (["-c", "model=gpt-5.1"], "o3"),  # as in Codex, the profile's model beats the top-level one
    (["--oss"], None),  # a local model: not priced
    (["--ignore-user-config"], None),
    (["--ignore-user-config", "-c", "model=o3"], "o3"),
])
def test_the_model_from_the_config_and_its_overrides(argv: list[str], model: str | None) -> None:
    assert codex_model(["codex", "exec", *argv, "--", "{prompt}"], CONFIG) == model


def test_no_model_anywhere_or_a_broken_config_is_unknown() -> None:
    assert codex_model(["codex", "exec"], None) is None  # Codex's built-in default varies by version
    assert codex_model(["codex", "exec"], 'approval_policy = "never"\n') is None
    assert codex_model(["codex", "exec"], "model = [broken") is None
    assert codex_model(["codex", "exec"], 'model = 5\n[profiles]\nx = 1\nprofile = "x"') is None
    assert codex_model(["codex", "exec", "-m"], None) is None  # -m without its value
    assert codex_model(["codex", "exec", "-c", "nokey"], 'model = "o3"') == "o3"


def test_the_config_is_read_from_codex_home_else_home(tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text('model = "gpt-5-codex"\n')
    env = {"CODEX_HOME": str(home), "HOME": str(tmp_path / "nobody")}
    assert codex_config_path(env) == home / "config.toml"
    assert read_codex_config(env) == 'model = "gpt-5-codex"\n'
    assert run_model("codex-json", ["codex", "exec", "--json"], env) == "gpt-5-codex"
    assert run_model("codex-json", ["codex", "exec", "-m", "o3"], env) == "o3"
    assert run_model("claude-stream-json", ["claude"], env) is None  # it reports its own cost
    assert codex_config_path({"HOME": "/home/ann"}) == Path("/home/ann/.codex/config.toml")
    assert codex_config_path({"CODEX_HOME": "rel"}, cwd="/wt") == Path("/wt/rel/config.toml")
    assert codex_config_path({}) is None
    assert read_codex_config({"CODEX_HOME": str(tmp_path / "none")}) is None
    assert run_model("codex-json", ["codex", "exec"], {}) is None


def test_a_model_another_config_layer_may_change_is_not_guessed(tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text('model = "gpt-5"\n')
    env = {"CODEX_HOME": str(home)}
    worktree = tmp_path / "wt"
    (worktree / ".codex").mkdir(parents=True)
    (worktree / ".codex" / "config.toml").write_text('model = "gpt-5-mini"\n')
    assert run_model("codex-json", ["codex", "exec"], env, str(worktree)) is None, "the project's config may rule"
    assert run_model("codex-json", ["codex", "exec", "-m", "o3"], env, str(worktree)) == "o3"
    assert run_model("codex-json", ["codex", "exec"], env, str(tmp_path)) == "gpt-5"
    # a wrapper hides the command line: "sh -c 'codex exec -m gpt-5-mini'" is not read as codex's
    assert run_model("codex-json", ["sh", "-c", "codex exec -m gpt-5-mini"], env) is None
    assert run_model("codex-json", ["/usr/local/bin/codex", "exec"], env) == "gpt-5"


# ---------------------------------------------------------------------- the marker travels and is shown


def test_the_marker_is_kept_by_the_codecs_and_old_rows_read_without_it() -> None:
    snapshot = ProgressSnapshot(cost_usd=0.5, cost_estimated_from="gpt-5-codex")
    assert snapshot.cost_estimated and ProgressSnapshot.from_dict(snapshot.to_dict()) == snapshot
    assert "cost_estimated_from" not in ProgressSnapshot(cost_usd=0.5).to_dict()  # a reported cost: as before
    assert ProgressSnapshot.from_dict({"cost_usd": 0.5}).cost_estimated_from is None
    # an estimate of no cost, or a marker that is not a name, is no estimate
    assert ProgressSnapshot.from_dict({"cost_estimated_from": "gpt-5"}).cost_estimated is False
    assert ProgressSnapshot.from_dict({"cost_usd": 1, "cost_estimated_from": ["x"]}).cost_estimated_from is None
    old = Review(task_id="t", state=TaskState("finished"), reason=None, branch="b", base_branch="main", files=[],
                 commits=0, insertions=0, deletions=0, clean=True, conflicts=[], cost_usd=0.5)
    stored = old.to_dict()
    del stored["cost_estimated_from"]  # a review stored before estimates
    assert Review.from_dict(stored) == old and not old.cost_estimated
    estimated = Review.from_dict({**stored, "cost_estimated_from": "gpt-5-codex"})
    assert estimated.cost_estimated and estimated.cost_estimated_from == "gpt-5-codex"
    assert Review.from_dict({**stored, "cost_estimated_from": 3}).cost_estimated_from is None
    assert ProgressSnapshot(cost_usd=1.0, cost_estimated_from="").cost_estimated_from is None
    assert Review.from_dict({**stored, "cost_estimated_from": ""}).cost_estimated_from is None


def test_surfaces_write_the_estimate_beside_the_cost() -> None:
    assert cost_text(0.42) == "$0.42"
    assert cost_text(0.42, "gpt-5-codex") == "$0.42 (est. from gpt-5-codex list price)"
    assert cost_text(0.001, "o3") == "<$0.01 (est. from o3 list price)"
    assert cost_text(0.42, 7) == "$0.42"  # not a model name: no marker
    assert cost_text(0.42, "<!channel>") == "$0.42 (est. from &lt;!channel&gt; list price)"
    rendered = review_message(make_task(state="finished"), review(cost_estimated_from="gpt-5-codex"))
    assert "$0.42 (est. from gpt-5-codex list price)" in dumps(rendered.blocks)
    card = task_card(make_task(state="running"), progress(cost_usd=0.12, cost_estimated_from="gpt-5-codex"), now=NOW)
    assert "$0.12 (est. from gpt-5-codex list price)" in dumps(card.blocks)
    plain = Review(task_id="t", state=TaskState("finished"), reason=None, branch="b", base_branch="main", files=[],
                   commits=0, insertions=0, deletions=0, clean=True, conflicts=[], cost_usd=0.12,
                   tokens_in=5400, tokens_out=110, cost_estimated_from="gpt-5-codex")
    assert "Agent cost $0.12 (est. from gpt-5-codex list price), 5400 tokens in / 110 out." in format_review(plain)
