"""What a model's tokens cost, for agents that report tokens but no cost (Codex).

Claude Code and aider report a run's cost in dollars; Codex reports only tokens. Rather than show
no figure, a Codex run is priced from a small table of list prices per model, and the figure is
marked as an estimate wherever it is shown. A model the table does not name is never guessed at:
its runs keep a cost of None and are shown by their tokens.

The table is the shipped `DEFAULT_PRICES`, over which an operator's JSON file (SUPERSET_PRICES) may
add models, change a price or remove a model (`null`): `{"gpt-5": {"input": 1.25,
"cached_input": 0.125, "output": 10}}`, US dollars per million tokens. Everything here is pure but
`load_prices`, which reads that file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

PER = 1_000_000  # prices are per million tokens
PRICE_MAX = 1_000_000.0  # a dollar figure per million tokens above this is a typo, not a price
PROVIDER_PREFIXES = ("openai/",)  # "openai/gpt-5" is gpt-5 (aider and LiteLLM spell models so)
ENTRY_EXAMPLE = '{"input": 1.25, "cached_input": 0.125, "output": 10}'
FILE_EXAMPLE = '{"gpt-5": ' + ENTRY_EXAMPLE + "}"


class PriceFileError(ValueError):
    """The prices file cannot be used; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Price:
    """One model's list price: US dollars per million input tokens (not served from the cache),
    cached input tokens and output tokens (reasoning tokens are output tokens)."""

    model: str  # the table's name for it, which a surface shows beside the estimate
    input: float
    cached_input: float
    output: float


def _table(*prices: Price) -> Mapping[str, Price]:
    return MappingProxyType({p.model: p for p in prices})


# OpenAI's list prices (Standard tier, per 1M tokens) for the models Codex runs, as published on
# https://platform.openai.com/docs/pricing in November 2025. Only prices known for certain are here;
# a newer model is added with a SUPERSET_PRICES file until this table names it.
DEFAULT_PRICES: Mapping[str, Price] = _table(
    Price("gpt-5", 1.25, 0.125, 10.00),
    Price("gpt-5-codex", 1.25, 0.125, 10.00),
    Price("gpt-5-mini", 0.25, 0.025, 2.00),
    Price("gpt-5.1", 1.25, 0.125, 10.00),
    Price("gpt-5.1-codex", 1.25, 0.125, 10.00),
    Price("gpt-5.1-codex-mini", 0.25, 0.025, 2.00),
    Price("codex-mini-latest", 1.50, 0.375, 6.00),
    Price("o3", 2.00, 0.50, 8.00),
    Price("o4-mini", 1.10, 0.275, 4.40),
    Price("gpt-4.1", 2.00, 0.50, 8.00),
)


def model_key(model: str) -> str:
    """How the table names a model: trimmed, lower case, without an "openai/" provider prefix."""
    key = model.strip().lower()
    for prefix in PROVIDER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def price_for(prices: Mapping[str, Price], model: str | None) -> Price | None:
    """The price of `model` by its exact name (see `model_key`), or None: unknown, so not priced.

    No nearest match: "gpt-5.2" is not "gpt-5", and a dated snapshot is not its alias, since a
    figure made up from a neighbour's price would be worse than none.
    """
    if not model:
        return None
    return prices.get(model_key(model))


def cost(price: Price, tokens_in: int, cached_in: int, tokens_out: int) -> float:
    """US dollars for one run's tokens. `tokens_in` counts every input token, the `cached_in` of
    them served from the prompt cache included (as OpenAI and Codex count them), so only the rest
    pays the full input price. Negative counts count as none; cached ones as at most all of them."""
    tokens_in, tokens_out = max(tokens_in, 0), max(tokens_out, 0)
    cached_in = min(max(cached_in, 0), tokens_in)
    return ((tokens_in - cached_in) * price.input + cached_in * price.cached_input
            + tokens_out * price.output) / PER


def estimate_label(model: str) -> str:
    """What a surface writes beside an estimated cost: "est. from gpt-5-codex list price"."""
    return f"est. from {model} list price"


# --------------------------------------------------------------------------- the override file


class _Repeated(ValueError):
    pass


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (json keeps the last of a repeated key silently)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Repeated(f'"{key}"')
        seen[key] = value
    return seen


def parse_prices(text: str, source: str, base: Mapping[str, Price] = DEFAULT_PRICES) -> dict[str, Price]:
    """`base` with the models of a prices file's `text` merged over it; PriceFileError names
    `source` (the file) and the first problem, so a broken file is fixed in one go."""
    try:
        data = json.loads(text, object_pairs_hook=_no_repeats)
    except json.JSONDecodeError as exc:
        raise PriceFileError(f"{source}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise PriceFileError(f"{source}: not valid JSON: nested too deeply") from None
    except _Repeated as exc:
        raise PriceFileError(f"{source}: {exc} is given twice; which price is meant cannot be told") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"{source}: expected an object of models, like {FILE_EXAMPLE}")
    table = dict(base)
    seen: set[str] = set()
    for name, entry in data.items():
        key = model_key(name)
        if not key:
            raise PriceFileError(f"{source}: a model has an empty name")
        if key in seen:
            raise PriceFileError(f'{source}: model "{key}" is given twice')
        seen.add(key)
        if entry is None:  # null: a model to show by its tokens only
            table.pop(key, None)
            continue
        table[key] = _entry(source, key, entry)
    return table


def _entry(source: str, key: str, entry: object) -> Price:
    if not isinstance(entry, dict):
        raise PriceFileError(f'{source}: model "{key}" should be an object like {ENTRY_EXAMPLE}, or null')
    unknown = sorted(set(entry) - {"input", "cached_input", "output"})
    if unknown:
        raise PriceFileError(f'{source}: model "{key}" has unknown key(s) {", ".join(map(repr, unknown))}: '
                             "only input, cached_input and output (US dollars per million tokens)")
    for name in ("input", "output"):
        if name not in entry:
            raise PriceFileError(f'{source}: model "{key}" lacks "{name}" (US dollars per million tokens)')
    numbers = {name: _dollars(source, key, name, value) for name, value in entry.items()}
    # no cached price given: cached tokens pay the full input price (never less than the truth)
    return Price(key, numbers["input"], numbers.get("cached_input", numbers["input"]), numbers["output"])


def _dollars(source: str, key: str, name: str, value: object) -> float:
    # NaN and infinity fail the range too (Python's json reads them), and a huge int is not converted
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= PRICE_MAX:
        shown = json.dumps(value)
        raise PriceFileError(f'{source}: model "{key}": "{name}" should be US dollars per million tokens, '
                             f"a number from 0 to {PRICE_MAX:,.0f}, not {shown[:40]}")
    return float(value)


def load_prices(path: Path, base: Mapping[str, Price] = DEFAULT_PRICES) -> dict[str, Price]:
    """The price table with the file at `path` merged over `base` (blocking: read it once, at start,
    or off the event loop). PriceFileError when it cannot be read or used, naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PriceFileError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise PriceFileError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise PriceFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_prices(text, str(path), base)
