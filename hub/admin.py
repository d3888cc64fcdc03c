"""Outbox administration: views and operations shared by the admin API and ``hub outbox``.

HTTP (every route needs a bearer key):

=====================================  ==========================================================
``GET  /admin/outbox``                 entries, newest first (``status``, ``recipient``,
                                       ``feed``, ``limit``, ``before``); a partner sees
                                       only its own
``GET  /admin/outbox/{id}``            one entry (``?payload=1`` adds the payload; admin)
``POST /admin/outbox/{id}/retry``      an entry waiting to retry: send it now (admin)
``POST /admin/outbox/{id}/replay``     a dead letter: queue it again (admin)
``GET  /admin/dead-letters``           dead entries (``feed``, ``limit``, ``before``; admin)
``POST /admin/dead-letters/replay``    every dead entry, or a feed's (``?feed=``; admin)
=====================================  ==========================================================

Paging: a list answers ``{"entries": […], "count": n}``, plus ``"next": ID`` when the page is
full; ``?before=ID`` then gives the entries older than that one, with the same filters.

Who sees what: an admin sees every entry with its record key and internal person id. A
partner (non-admin key) sees only entries addressed to its own agency, without record keys
or person ids, and never a ``withheld`` entry (that would reveal a consent decision about a
client it may not see: it gets a 404, as for an entry that does not exist). A payload is
returned only on request (``?payload=1``), only to an admin, and only for an entry that was
``delivered``. Not to the recipient: the payload kept is the one queued, and the gate may
have released less of it at send time (a revocation, a client now fleeing DV), so a
recipient reading it here would get what the gate withheld, unaudited. What the recipient
may have, it got in the delivery. A replayed entry passes the gate again before it is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from hub.auth import Caller
from hub.context import HubContext
from hub.core.numbers import whole_number
from hub.core.ports import OUTBOX_STATUSES, OutboxRow
from hub.web import CONTEXT, caller_of, json_error, json_response, require_admin

STATUSES = OUTBOX_STATUSES
RETRYABLE = frozenset({"retry", "failed"})
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
REPLAY_PAGE = 1_000


class OutboxOpError(ValueError):
    """An outbox operation that does not apply (unknown entry, wrong status)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# ---- views -------------------------------------------------------------------------------


def entry_json(row: OutboxRow, *, admin: bool, with_payload: bool = False) -> dict[str, Any]:
    """An outbox entry as JSON: the full view for an admin, the recipient's view otherwise.

    ``with_payload`` adds the payload of a delivered entry (see the module docstring).
    """
    out: dict[str, Any] = {
        "id": row.id,
        "feed": row.feed,
        "recipient": row.recipient,
        "kind": row.record_kind,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
        "last_error": row.last_error,
        "idempotency_key": row.idempotency_key,
    }
    if admin:
        out["record"] = {
            "kind": row.record_kind,
            "source": row.record_source,
            "id": row.record_source_id,
            "version": row.record_version,
        }
        out["person_id"] = row.person_id
        out["audit_seq"] = row.audit_seq
    if with_payload and row.status == "delivered":
        out["payload"] = orjson.loads(row.payload)
    return out


def visible_to(row: OutboxRow, caller: Caller) -> bool:
    """Whether a caller may see an entry at all."""
    if caller.is_admin:
        return True
    return row.recipient == caller.agency and row.status != "withheld"


# ---- operations --------------------------------------------------------------------------


async def list_entries(
    ctx: HubContext,
    *,
    status: str | None = None,
    recipient: str | None = None,
    feed: str | None = None,
    limit: int = DEFAULT_LIMIT,
    hide_withheld: bool = False,
    before_id: int | None = None,
) -> list[OutboxRow]:
    """Entries, newest first, by status, recipient and feed (withheld ones left out with
    ``hide_withheld``, before the limit is applied); only those older than ``before_id``."""
    if status is not None and status not in STATUSES:
        raise OutboxOpError(
            400, "bad_request", f"unknown status {status!r} (one of {', '.join(STATUSES)})"
        )
    return await ctx.store.list_outbox(
        status=status,
        recipient=recipient,
        limit=limit,
        feed=feed,
        hide_withheld=hide_withheld,
        before_id=before_id,
    )


async def get_entry(ctx: HubContext, outbox_id: int) -> OutboxRow:
    """One entry, or :class:`OutboxOpError` 404."""
    row = await ctx.store.get_outbox(outbox_id)
    if row is None:
        raise OutboxOpError(404, "not_found", f"no outbox entry {outbox_id}")
    return row


async def retry_entry(ctx: HubContext, outbox_id: int) -> OutboxRow:
    """Make an entry that waits to retry due now (attempts start again)."""
    row = await get_entry(ctx, outbox_id)
    if row.status not in RETRYABLE or not await ctx.store.requeue_outbox(outbox_id):
        raise OutboxOpError(
            409,
            "conflict",
            f"outbox entry {outbox_id} is {row.status}; "
            "only entries waiting to retry can be retried",
        )
    return await get_entry(ctx, outbox_id)


async def replay_entry(ctx: HubContext, outbox_id: int) -> OutboxRow:
    """Queue a dead letter again (attempts start again; the gate runs again at send time)."""
    row = await get_entry(ctx, outbox_id)
    if row.status != "dead" or not await ctx.store.requeue_outbox(outbox_id):
        raise OutboxOpError(
            409,
            "conflict",
            f"outbox entry {outbox_id} is {row.status}; only dead letters can be replayed",
        )
    return await get_entry(ctx, outbox_id)


async def replay_dead(ctx: HubContext, feed: str | None = None) -> list[int]:
    """Queue every dead letter again (of one feed, when given); returns the replayed ids."""
    replayed: list[int] = []
    before: int | None = None
    while True:
        # Paged by id: an entry that cannot be requeued (claimed meanwhile) is passed by.
        dead = await ctx.store.list_outbox(
            status="dead", limit=REPLAY_PAGE, feed=feed, before_id=before
        )
        for row in dead:
            if await ctx.store.requeue_outbox(row.id):
                replayed.append(row.id)
        if len(dead) < REPLAY_PAGE:
            return sorted(replayed)
        before = dead[-1].id


# ---- HTTP --------------------------------------------------------------------------------


def _limit(request: web.Request) -> int:
    limit = whole_number(request.query.get("limit", str(DEFAULT_LIMIT)))
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise OutboxOpError(
            400, "bad_request", f"limit must be a whole number from 1 to {MAX_LIMIT}"
        )
    return limit


def _before(request: web.Request) -> int | None:
    text = request.query.get("before")
    if text is None:
        return None
    before = whole_number(text)
    if before is None:
        raise OutboxOpError(400, "bad_request", "before must be an outbox entry id")
    return before


def _page(rows: list[OutboxRow], entries: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """A list answer: the entries, their count and, when the page is full, the cursor."""
    page: dict[str, Any] = {"entries": entries, "count": len(entries)}
    if rows and len(rows) >= limit:
        page["next"] = rows[-1].id
    return page


def _id(request: web.Request) -> int:
    outbox_id = whole_number(request.match_info["id"])
    if outbox_id is None:
        raise OutboxOpError(404, "not_found", "no such outbox entry")
    return outbox_id


def _wants_payload(request: web.Request) -> bool:
    return request.query.get("payload", "") in ("1", "true", "yes")


async def get_outbox_list(request: web.Request) -> web.Response:
    """``GET /admin/outbox``: admins see all; a partner only entries addressed to it."""
    ctx = request.app[CONTEXT]
    caller = caller_of(request)
    recipient = request.query.get("recipient") or None
    if not caller.is_admin:
        if recipient is not None and recipient != caller.agency:
            return json_error(403, "forbidden", "a partner may list only its own outbox entries")
        recipient = caller.agency
    status = request.query.get("status") or None
    limit = _limit(request)
    rows = await list_entries(
        ctx,
        status=status,
        recipient=recipient,
        feed=request.query.get("feed") or None,
        limit=limit,
        hide_withheld=not caller.is_admin,
        before_id=_before(request),
    )
    entries = [entry_json(r, admin=caller.is_admin) for r in rows if visible_to(r, caller)]
    return json_response(_page(rows, entries, limit))


async def get_outbox_entry(request: web.Request) -> web.Response:
    """``GET /admin/outbox/{id}``: one entry the caller may see (404 otherwise)."""
    ctx = request.app[CONTEXT]
    caller = caller_of(request)
    row = await get_entry(ctx, _id(request))
    if not visible_to(row, caller):
        raise OutboxOpError(404, "not_found", "no such outbox entry")
    with_payload = _wants_payload(request)
    if with_payload and not caller.is_admin:
        raise OutboxOpError(
            403, "forbidden", "payloads are shown to admins only (the recipient got the delivery)"
        )
    return json_response(entry_json(row, admin=caller.is_admin, with_payload=with_payload))


async def post_retry(request: web.Request) -> web.Response:
    """``POST /admin/outbox/{id}/retry`` (admin)."""
    require_admin(request)
    row = await retry_entry(request.app[CONTEXT], _id(request))
    return json_response(entry_json(row, admin=True))


async def post_replay(request: web.Request) -> web.Response:
    """``POST /admin/outbox/{id}/replay`` (admin)."""
    require_admin(request)
    row = await replay_entry(request.app[CONTEXT], _id(request))
    return json_response(entry_json(row, admin=True))


async def get_dead_letters(request: web.Request) -> web.Response:
    """``GET /admin/dead-letters`` (admin)."""
    require_admin(request)
    limit = _limit(request)
    rows = await list_entries(
        request.app[CONTEXT],
        status="dead",
        feed=request.query.get("feed") or None,
        limit=limit,
        before_id=_before(request),
    )
    entries = [entry_json(r, admin=True) for r in rows]
    return json_response(_page(rows, entries, limit))


async def post_replay_dead(request: web.Request) -> web.Response:
    """``POST /admin/dead-letters/replay[?feed=F]`` (admin)."""
    require_admin(request)
    ids = await replay_dead(request.app[CONTEXT], request.query.get("feed") or None)
    return json_response({"replayed": len(ids), "ids": ids})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    """The handler with :class:`OutboxOpError` answered as a JSON error."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except OutboxOpError as exc:
            return json_error(exc.status, exc.code, str(exc))
        return response

    wrapped.__doc__ = handler.__doc__
    return wrapped


def add_admin_routes(app: web.Application) -> None:
    """Register the outbox admin routes on the hub's application."""
    app.router.add_get("/admin/outbox", _guarded(get_outbox_list))
    app.router.add_get("/admin/outbox/{id}", _guarded(get_outbox_entry))
    app.router.add_post("/admin/outbox/{id}/retry", _guarded(post_retry))
    app.router.add_post("/admin/outbox/{id}/replay", _guarded(post_replay))
    app.router.add_get("/admin/dead-letters", _guarded(get_dead_letters))
    app.router.add_post("/admin/dead-letters/replay", _guarded(post_replay_dead))
