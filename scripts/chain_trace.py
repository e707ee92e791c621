"""Where a freed line's time goes before its next leg: robocall's chain, stage by stage.

Imported by ``bench_lab_load.py`` in robocall's process when ``BENCH_CHAIN=1``: wraps the
dispatcher, the store's claim and the send gate (no robocall code changes) and records, with one
clock, when each robo leg's line was freed (its CHANNEL_HANGUP_COMPLETE / DESTROY read), each
dispatch pass (what bound it: free lines, the gate's room, first messages ready), each claim's
commit, each originate's turn at the gate (it leaves right after) and each CHANNEL_CREATE.
``summary()`` pairs the k-th freed line with the k-th leg claimed after the first ``lines``
(first in, first out: a freed line's next leg) and gives each stage's p50 / p90 / p99 in ms.
"""

from __future__ import annotations

import time
from typing import Any

_T: dict[str, Any] = {
    "freed": [], "woken": [], "passes": [], "claimed": {}, "at_gate": {}, "sent": {},
    "created": {}, "hub_lag": [],
    "upcoming_ms": [], "render_ms": [], "on_ready": [], "claim_parts": {},
}


def install(dispatcher_cls: Any, gate_cls: Any) -> None:
    from robocall.calls.prefetch import FirstPrompts
    from robocall.store.dialing import DialingQueries

    clock = time.monotonic
    upcoming = DialingQueries.upcoming_calls
    render_first = FirstPrompts._render_first
    on_ready_init = FirstPrompts.__init__

    def timed_into(key: str, method: Any) -> Any:
        def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
            began = clock()
            try:
                return method(self, *args, **kwargs)
            finally:
                _T[key].append(clock() - began)
        return traced

    def traced_init(self: Any, *args: Any, **kwargs: Any) -> None:
        on_ready_init(self, *args, **kwargs)
        told = self.on_ready

        def on_ready(organization_id: str) -> None:
            _T["on_ready"].append(clock())
            told(organization_id)

        self.on_ready = on_ready

    DialingQueries.upcoming_calls = timed_into("upcoming_ms", upcoming)
    FirstPrompts._render_first = timed_into("render_ms", render_first)
    FirstPrompts.__init__ = traced_init
    on_event = dispatcher_cls._on_event
    dispatch = dispatcher_cls._dispatch
    wake = dispatcher_cls.wake
    turn = gate_cls.turn

    def traced_event(self: Any, member: Any, event: Any) -> None:
        headers = event.headers
        name = headers.get("Event-Name")
        unique_id = headers.get("Unique-ID", "")
        robo = "variable_robocall_call_id" in headers
        known = member.lines.knows(unique_id)
        on_event(self, member, event)
        if robo and name == "CHANNEL_CREATE":
            _T["created"].setdefault(unique_id, clock())
        elif robo and known and not member.lines.knows(unique_id):
            _T["freed"].append(clock())

    def traced_wake(self: Any, *args: Any, **kwargs: Any) -> None:
        _T["woken"].append(clock())
        wake(self, *args, **kwargs)

    def traced_dispatch(self: Any, organization_id: str) -> None:
        organization = self._organizations.get(organization_id)
        start = clock()
        free = room = ready = None
        if organization is not None:
            free = self._free(organization, self.lines.usage(organization_id))
            room = self.gate.room(organization_id, self._claim_seconds)
            if self.first_prompts is not None:
                queue = self.first_prompts._queue(organization_id)
                ready = self.first_prompts._leading_ready(queue, 10_000)
        store = self.store
        claim = store.claim_calls
        got: list[Any] = []

        def traced_claim(*args: Any, **kwargs: Any) -> Any:
            began = clock()
            out = claim(*args, **kwargs)
            end = clock()
            for call in out:
                _T["claimed"][call.ticket.channel_uuid] = (began, end)
            got.append((len(args[1]) if len(args) > 1 else 0, len(out), end - began))
            return out

        import gevent

        db = store._db
        execute, commit = db.execute_sql, db.commit
        me = gevent.getcurrent()

        def timed(kind: str, call: Any) -> Any:
            def run(*args: Any, **kwargs: Any) -> Any:
                if gevent.getcurrent() is not me:
                    return call(*args, **kwargs)
                began = clock()
                try:
                    return call(*args, **kwargs)
                finally:
                    label = kind if kind == "COMMIT" else " ".join(str(args[0]).split()[:2])
                    _T["claim_parts"].setdefault(label, []).append(clock() - began)
            return run

        store.claim_calls = traced_claim
        db.execute_sql, db.commit = timed("SQL", execute), timed("COMMIT", commit)
        try:
            dispatch(self, organization_id)
        finally:
            del store.claim_calls
            del db.execute_sql, db.commit
        _T["passes"].append({"at": start, "free": free, "room": room, "ready": ready,
                             "asked": got[0][0] if got else 0,
                             "claimed": got[0][1] if got else 0,
                             "claim_ms": round(got[0][2] * 1000, 1) if got else None,
                             "ms": round((clock() - start) * 1000, 1),
                             "ahead": getattr(self.gate, "ahead_seconds", lambda: 0.1)()})

    def traced_turn(self: Any, organization_id: str, channel_uuid: str, *args: Any,
                    **kwargs: Any) -> None:
        _T["at_gate"][channel_uuid] = clock()
        turn(self, organization_id, channel_uuid, *args, **kwargs)
        _T["sent"][channel_uuid] = clock()

    def hub_lag() -> None:
        """How late a greenlet sleeping 10 ms wakes: what every hop from one greenlet to the
        next costs robocall's process then (the hub's other work, a core it waits for)."""
        import gevent

        while True:
            began = clock()
            gevent.sleep(0.01)
            _T["hub_lag"].append(clock() - began - 0.01)

    import gevent

    gevent.spawn(hub_lag)

    dispatcher_cls._on_event = traced_event
    dispatcher_cls._dispatch = traced_dispatch
    dispatcher_cls.wake = traced_wake
    gate_cls.turn = traced_turn


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)

    return {"n": len(ordered), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def _waits(passes: list[dict[str, Any]]) -> list[float]:
    """From each pass that found no call ready to the next pass that claimed."""
    out: list[float] = []
    waiting: float | None = None
    for p in passes:
        if p["ready"] == 0 and p["free"] and p["room"] and waiting is None:
            waiting = p["at"]
        elif p["claimed"] and waiting is not None:
            out.append(p["at"] - waiting)
            waiting = None
    return out


def summary(lines: int) -> dict[str, Any]:
    claimed = sorted(_T["claimed"].items(), key=lambda item: item[1][1])
    freed = sorted(_T["freed"])
    passes = _T["passes"]
    stages: dict[str, list[float]] = {k: [] for k in (
        "freed_to_claim_start", "claim_commit", "claimed_to_sent", "claimed_to_gate",
        "gate_to_sent", "sent_to_create", "freed_to_sent", "freed_to_create")}
    for at, (uuid, (began, end)) in zip(freed, claimed[lines:], strict=False):
        sent = _T["sent"].get(uuid)
        created = _T["created"].get(uuid)
        stages["freed_to_claim_start"].append(max(0.0, began - at))
        stages["claim_commit"].append(end - began)
        at_gate = _T["at_gate"].get(uuid)
        if at_gate is not None:
            stages["claimed_to_gate"].append(at_gate - end)
            if sent is not None:
                stages["gate_to_sent"].append(sent - at_gate)
        if sent is not None:
            stages["claimed_to_sent"].append(sent - end)
            stages["freed_to_sent"].append(sent - at)
            if created is not None:
                stages["sent_to_create"].append(created - sent)
                stages["freed_to_create"].append(created - at)
    bound: dict[str, int] = {}
    for p in passes:
        if p["free"] is None:
            continue
        limits = {"free": p["free"], "room": p["room"]}
        if p["ready"] is not None:
            limits["ready"] = p["ready"]
        least = min(limits.values())
        key = "+".join(sorted(k for k, v in limits.items() if v == least)) if least > 0 \
            else "none:" + "+".join(sorted(k for k, v in limits.items() if v <= 0))
        bound[key] = bound.get(key, 0) + 1
    free_seen = [p["free"] for p in passes if p["free"] is not None]
    return {
        "stages_ms": {k: _pct(v) for k, v in stages.items()},
        "passes": len(passes), "wakes": len(_T["woken"]),
        "pass_bound_by": bound,
        "free_at_pass": _pct([f / 1000 for f in free_seen]),
        "hub_lag_ms": _pct(_T["hub_lag"]),
        "claim_ahead_ms": _pct([p["ahead"] for p in passes]),
        "claim_parts_ms": {k: _pct(v) for k, v in _T["claim_parts"].items()},
        "prefetch": {"upcoming_read": _pct(_T["upcoming_ms"]),
                     "render_first": _pct(_T["render_ms"]), "on_ready": len(_T["on_ready"]),
                     "no_ready_to_next_claim": _pct(_waits(passes))},
        "claims": {"per_pass": _pct([p["claimed"] / 1000 for p in passes if p["claimed"]]),
                   "commit": _pct([p["claim_ms"] / 1000 for p in passes
                                   if p["claim_ms"] is not None])},
    }
