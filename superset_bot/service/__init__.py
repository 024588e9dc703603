"""The layer between the front ends and the engine: one dispatcher, typed results, one error map."""

from superset_bot.service.dispatcher import Caller, Service, Thread
from superset_bot.service.errors import Refusal, failure

__all__ = ["Caller", "Refusal", "Service", "Thread", "failure"]
