"""Socket Mode: apps.connections.open, the websocket the bot connects to, and envelopes sent over it
(each waits for the bot's ack, which Slack validates when it carries a response)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from .blockkit import check_message, check_view
from .state import SlackState


class SocketModeMixin(SlackState):
    def __init__(self, **workspace: Any) -> None:
        super().__init__(**workspace)
        self.socket_connected = asyncio.Event()
        self.socket_envelopes: list[dict[str, Any]] = []  # {"envelope", "ack", "ack_seconds"}
        self.socket_unexpected: list[str] = []  # client frames that were not acks of a pending envelope
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        ws_base = self.base.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_base}/socket?ticket={ticket}&app_id={self.app_id}"}

    async def socket_send(
        self, envelope_type: str, payload: dict[str, Any], *, retry_num: int = 0, timeout: float = 5.0
    ) -> dict[str, Any] | None:
        """Delivers an envelope to the newest Socket Mode connection and waits for its ack; returns the
        ack's payload (None for an empty ack). Raises RuntimeError with no client, TimeoutError on no ack."""
        if envelope_type not in ("slash_commands", "interactive", "events_api"):
            raise ValueError(f"unknown envelope type {envelope_type!r}")
        live = [ws for ws in self._sockets if not ws.closed]
        if not live:
            raise RuntimeError("no Socket Mode client is connected to the fake (call connect first)")
        tid = payload.get("trigger_id")
        if isinstance(tid, str) and tid not in self._triggers:
            self._triggers[tid] = (self.clock(), False)
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type != "events_api",
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_num
            envelope["retry_reason"] = "timeout" if retry_num else ""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope["envelope_id"]] = fut
        started = time.monotonic()
        try:
            await live[-1].send_str(json.dumps(envelope))
            try:
                ack = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"no ack for {envelope_type} envelope within {timeout} s (Slack gives up after 3 s)"
                ) from None
        finally:
            self._pending.pop(envelope["envelope_id"], None)
        record = {"envelope": envelope, "ack": ack, "ack_seconds": time.monotonic() - started}
        self.socket_envelopes.append(record)
        ack_payload = ack.get("payload")
        if ack_payload is not None:
            self._check_ack(envelope_type, payload, ack_payload)
        return ack_payload if ack_payload else None

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Sends Slack's `disconnect` message; the SDK then opens a new connection."""
        for ws in [w for w in self._sockets if not w.closed]:
            await ws.send_str(
                json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-applink"}})
            )

    async def socket_close(self) -> None:
        """Drops every Socket Mode connection abruptly (as a network blip would)."""
        for ws in list(self._sockets):
            await ws.close(code=1011, message=b"fake drop")

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid or already used ticket; call apps.connections.open")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        hello = {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {"host": "fake-applink", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        self.socket_connected.set()
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    self.socket_unexpected.append(frame.data)
                    continue
                fut = self._pending.get(data.get("envelope_id", "")) if isinstance(data, dict) else None
                if fut is not None and not fut.done():
                    fut.set_result(data)
                else:
                    self.socket_unexpected.append(frame.data)
        finally:
            self._sockets.remove(ws)
            if not any(not w.closed for w in self._sockets):
                self.socket_connected.clear()
        return ws

    def _check_ack(self, envelope_type: str, payload: dict[str, Any], ack: Any) -> None:
        """Acks can carry a response (command reply, view_submission response_action): Slack validates it."""
        problem: tuple[str, list[str]] | None = None
        if not isinstance(ack, dict):
            problem = ("invalid_ack", ["an ack payload must be a JSON object"])
        elif envelope_type == "slash_commands":
            problem = check_message(ack.get("text"), ack.get("blocks"), require_content=False)
        elif envelope_type == "interactive" and payload.get("type") == "view_submission":
            action = ack.get("response_action")
            if action in ("update", "push"):
                errors = check_view(ack.get("view"))
                problem = ("invalid_arguments", errors) if errors else None
            elif action == "errors":
                if not isinstance(ack.get("errors"), dict) or not ack["errors"]:
                    problem = ("invalid_arguments", ["response_action errors needs an errors object"])
            elif action not in (None, "clear"):
                problem = ("invalid_arguments", [f"unknown response_action {action!r}"])
        if problem is not None:
            body = {"ok": False, "error": problem[0], "errors": problem[1]}
            self._record(f"socket_ack:{envelope_type}", ack if isinstance(ack, dict) else {}, body, 200, True)
