"""A local stand-in for Slack's Web API and Socket Mode, strict enough that bot code which passes
against it would not be rejected by real Slack.

The bot talks to it through the real slack_sdk/slack_bolt clients (``AsyncWebClient(base_url=fake.url)``,
``SLACK_API_URL``), so everything the SDK actually puts on the wire is exercised: form vs JSON bodies,
query parameters, the three steps of ``files_upload_v2``, ``apps.connections.open`` and the websocket.
Slack's rules that bite in production are enforced here: Block Kit limits (``invalid_blocks`` with
json-pointer reasons), ``msg_too_long``, ``msg_blocks_too_long``, message metadata (returned by
conversations.history/replies only with ``include_all_metadata``), channel membership, scopes, trigger
expiry, and rate limits answered with HTTP 429 + ``Retry-After`` from per-method token buckets on an
injectable clock. Faults: ``fail_next``, ``inject_faults``, ``set_down``, and ``drop_after_accept`` (the
call is carried out, then the connection closes unanswered: a post exists although the bot saw an error).

Usage::

    fake = FakeSlack()
    await fake.start()
    fake.add_channel("C1", "general")
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.url)
    ...
    assert fake.rejected == []
    await fake.stop()

One module per Slack surface, each a mixin over the shared state (state.py): chat.py, reactions.py,
conversations.py, views.py, files.py, events.py (payloads Slack sends, response_urls), socketmode.py;
blockkit.py validates what they are sent; server.py puts them behind one HTTP server as `FakeSlack`.
"""

from .blockkit import check_blocks, check_message, check_view
from .server import DEFAULT_LIMITS, DEFAULT_SCOPES, FakeSlack
from .state import Call, ChannelInfo, Message

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_SCOPES",
    "Call",
    "ChannelInfo",
    "FakeSlack",
    "Message",
    "check_blocks",
    "check_message",
    "check_view",
]
