"""views.open / push / update / publish: modals (with their stack and trigger_ids) and App Home."""

from __future__ import annotations

import uuid
from typing import Any

from .blockkit import check_view
from .state import USER_ID, Fail, SlackState

TRIGGER_TTL = 3.0
MODAL_STACK_LIMIT = 3


class ViewsMixin(SlackState):
    def __init__(self, **workspace: Any) -> None:
        super().__init__(**workspace)
        self.views: dict[str, dict[str, Any]] = {"home": {}, "modals": {}}
        self._views_by_id: dict[str, dict[str, Any]] = {}
        self._modal_stacks: dict[str, list[str]] = {}  # root view id -> stack of view ids

    # -- what a person does with a view -------------------------------------------------------------

    def view_submission_payload(
        self, view_id: str, *, values: dict[str, dict[str, Any]], user_id: str = "U1"
    ) -> dict[str, Any]:
        """A modal submitted by a person; `values` is state.values: {block_id: {action_id: {...}}}."""
        view = self._views_by_id.get(view_id)
        if view is None:
            raise LookupError(f"no open view {view_id}")
        submitted = {**view, "state": {"values": values}}
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "verification-token",
            "trigger_id": self.new_trigger_id(),
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    # -- methods ------------------------------------------------------------------------------------

    def _take_trigger(self, args: dict[str, Any]) -> None:
        tid = args.get("trigger_id") or args.get("interactivity_pointer")
        if not isinstance(tid, str) or not tid:
            raise Fail("invalid_arguments", ["missing required field: trigger_id"])
        if tid not in self._triggers:
            raise Fail("invalid_trigger_id", [f"trigger_id {tid!r} was never issued"])
        issued, used = self._triggers[tid]
        if used:
            raise Fail("exchanged_trigger_id", ["a trigger_id opens one view only"])
        if self.clock() - issued > TRIGGER_TTL:
            raise Fail("expired_trigger_id", [f"trigger_id is older than {TRIGGER_TTL:.0f} s"])
        self._triggers[tid] = (issued, True)

    def _view_arg(self, args: dict[str, Any], kind: str | None) -> dict[str, Any]:
        view = args.get("view")
        errors = check_view(view)
        if not errors and kind is not None and isinstance(view, dict) and view.get("type") != kind:
            errors = [f"this method takes a {kind} view, not {view.get('type')!r} [json-pointer:/view/type]"]
        if errors:
            raise Fail("invalid_arguments", errors)
        assert isinstance(view, dict)
        return view

    def _store_view(
        self,
        view: dict[str, Any],
        *,
        root: str | None = None,
        previous: str | None = None,
        view_id: str | None = None,
    ) -> dict[str, Any]:
        vid = view_id or f"V{self._next_id():08d}"
        stored = {
            "id": vid,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            **view,
            "hash": uuid.uuid4().hex,
            "root_view_id": root or vid,
            "previous_view_id": previous,
        }
        self._views_by_id[vid] = stored
        if stored["type"] == "modal":
            self.views["modals"][vid] = stored
        return stored

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args, "modal")
        self._take_trigger(args)
        stored = self._store_view(view)
        self._modal_stacks[stored["id"]] = [stored["id"]]
        return {"ok": True, "view": stored}

    def _m_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args, "modal")
        self._take_trigger(args)
        if not self._modal_stacks:
            raise Fail("not_found", ["views.push needs an open modal to push onto"])
        root = list(self._modal_stacks)[-1]
        stack = self._modal_stacks[root]
        if len(stack) >= MODAL_STACK_LIMIT:
            raise Fail("push_limit_reached", [f"a modal stack holds at most {MODAL_STACK_LIMIT} views"])
        stored = self._store_view(view, root=root, previous=stack[-1])
        stack.append(stored["id"])
        return {"ok": True, "view": stored}

    def _m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args, None)
        target: dict[str, Any] | None = None
        if args.get("view_id"):
            target = self._views_by_id.get(str(args["view_id"]))
        elif args.get("external_id"):
            target = next(
                (v for v in self._views_by_id.values() if v.get("external_id") == args["external_id"]), None
            )
        else:
            raise Fail("invalid_arguments", ["views.update needs view_id or external_id"])
        if target is None:
            raise Fail("not_found", ["no such view"])
        if args.get("hash") and args["hash"] != target["hash"]:
            raise Fail("hash_conflict", ["the view changed since that hash was read"])
        if view["type"] != target["type"]:
            raise Fail("invalid_arguments", [f"cannot turn a {target['type']} view into {view['type']}"])
        stored = self._store_view(
            view, root=target["root_view_id"], previous=target["previous_view_id"], view_id=target["id"]
        )
        if stored["type"] == "home":
            for user, v in self.views["home"].items():
                if v["id"] == stored["id"]:
                    self.views["home"][user] = stored
        return {"ok": True, "view": stored}

    def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user_id")
        if not isinstance(user, str) or not USER_ID.match(user):
            raise Fail("invalid_arguments", [f"user_id {user!r} is not a user id"])
        view = self._view_arg(args, "home")
        current = self.views["home"].get(user)
        if args.get("hash") and current is not None and args["hash"] != current["hash"]:
            raise Fail("hash_conflict")
        stored = self._store_view(view, view_id=current["id"] if current else None)
        self.views["home"][user] = stored
        return {"ok": True, "view": stored}
