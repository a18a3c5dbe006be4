"""Session Services simulator, per `shared/api/session_services.md`.

A discrete-event world per tenant: events go on sale and take place, orders move through
PENDING -> PROCESSING -> SUCCESSFUL or ABANDONED (and are re-reserved), successful orders issue
tickets, get refunded or disputed within 60 days, tickets are scanned in and out during the
event, events are edited and soft-deleted. Everything happens on the virtual clock.

Switches for what the contract allows and the world above never does (each off by default,
seeded by `changes_rng`, and settable at any time, e.g. by a test or a chaos round):

- `served_change_rate`: the chance, per request for a next orders page, that an order the
  same scan already received is refunded (its tickets cancelled) before the page is answered:
  a record changing while a scan runs. With `faults.tick_seconds` the clock moves too.
- `unsignalled_per_day`: changes per day that nothing else signals: a check-out scan of a
  ticket of an event whose entry window has ended, or a dispute of an order older than the
  60-day refund window. `unsignalled` lists them (tenant, kind, id).
- `delete_between_lists`: the chance, per first page of `GET /events?deleted=true`, that an
  event the latest live list returned is soft-deleted just before (so one read of both lists
  sees it in each).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import orjson

from sandbox.core import EventWorld, Request, Response, iso_ms
from sandbox.typeid import TypeIds

API_VERSION = "2025-09-22"
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
MUTABLE_MS = 60 * DAY  # refunds and disputes up to 60 days after the order
_SECRET = b"sandbox-session-services"  # signs tokens
_CURSOR_SECRET = b"sandbox-cursors"  # signs cursors, so they are opaque and tamper-evident

TENANTS = {"tnt_01jqpj2t2kfvmstt6f6tzkbaf2": "Northside Promotions",
           "tnt_01jqpj3m8x7d2q4wz9c0hvr5ea": "Harbour Live"}
UNISSUED_TENANT = "tnt_01jqpj4b0000000000000000zz"  # never exists: unknown tenant


def token_for(tenant_id: str) -> str:
    """The sandbox's JWT for a tenant (HS256 over a fixed secret, so tokens are stable)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps({"sub": "integration", "tenant": tenant_id}).encode())
    sig = b64(hmac.new(_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def _token_tenant(token: str) -> Optional[str]:
    try:
        head, body, sig = token.split(".")
        expected = base64.urlsafe_b64encode(
            hmac.new(_SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()).rstrip(b"=")
        if not hmac.compare_digest(expected.decode(), sig):
            return None
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["tenant"]
    except (ValueError, KeyError, json.JSONDecodeError):
        return None


def _cursor(pos: str) -> str:
    payload = json.dumps({"version": 1, "pos": {"primaryKey": pos}}, separators=(",", ":"))
    mac = hmac.new(_CURSOR_SECRET, payload.encode(), hashlib.sha256).hexdigest()[:16]
    raw = json.dumps({"c": payload, "m": mac}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _cursor_pos(cursor: str) -> Optional[str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if hmac.new(_CURSOR_SECRET, raw["c"].encode(), hashlib.sha256).hexdigest()[:16] != raw["m"]:
            return None
        return str(json.loads(raw["c"])["pos"]["primaryKey"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None


@dataclass
class Collection:
    """Records of one kind in ascending id order."""

    ids: List[str] = field(default_factory=list)
    by_id: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def add(self, record: Dict[str, Any]) -> Dict[str, Any]:
        self.ids.append(record["id"])  # ids are created in ascending order
        self.by_id[record["id"]] = record
        return record


@dataclass
class Tenant:
    id: str
    name: str
    orders_per_day: float
    venues: Collection = field(default_factory=Collection)
    events: Collection = field(default_factory=Collection)
    admissions: Collection = field(default_factory=Collection)
    orders: Collection = field(default_factory=Collection)
    tickets: Collection = field(default_factory=Collection)
    admissions_of: Dict[str, List[str]] = field(default_factory=dict)
    tickets_of_event: Dict[str, List[str]] = field(default_factory=dict)
    tickets_of_order: Dict[str, List[str]] = field(default_factory=dict)


class SessionServicesApi(EventWorld):
    """The Session Services API with two tenants and a simulated ticketing business.

    Args:
        start_ms: the clock's starting time.
        seed: RNG seed.
        orders_per_day: mean orders per day in the first tenant (the second gets half).
        history_days: days simulated before `start_ms`.
    """

    name = "session_services"

    def __init__(self, start_ms: int, seed: int = 21, orders_per_day: float = 150,
                 history_days: float = 30) -> None:
        super().__init__(start_ms - int(history_days * DAY), seed)
        self.ids = TypeIds(self.rng)
        self.tenants = {
            tid: Tenant(tid, name, orders_per_day * (1 if i == 0 else 0.5))
            for i, (tid, name) in enumerate(TENANTS.items())
        }
        self.tokens = {tid: token_for(tid) for tid in self.tenants}
        self.revoked: set = set()
        self.changes_rng = random.Random(seed + 2)  # the switches' own, so the world stays put
        self.served_change_rate = 0.0
        self.unsignalled_per_day = 0.0
        self.delete_between_lists = 0.0
        self.served_changes: List[Tuple[str, str]] = []  # (tenant, order id) refunded mid-scan
        self.unsignalled: List[Tuple[str, str, str]] = []  # (tenant, "scan"|"dispute", id)
        self.deleted_between: List[Tuple[str, str]] = []  # (tenant, event id)
        self._served: Dict[str, List[str]] = {}  # tenant -> order ids served in its latest scan
        self._listed: Dict[str, List[str]] = {}  # tenant -> event ids of its latest live list
        self._quiet_ms = self.now_ms  # unsignalled changes are drawn up to here
        self._page: List[str] = []  # ids of the latest list page answered
        for tenant in self.tenants.values():
            for _ in range(3):
                self._new_venue(tenant)
            for _ in range(4):
                self._new_event(tenant, self.now_ms - self.rng.randint(1, 20) * DAY)
            for kind, gap in (("event_new", 2 * DAY), ("event_edit", DAY / 2),
                              ("event_delete", 12 * DAY), ("order_new", 0)):
                self._schedule_next(kind, tenant, gap)
        self.advance_to(start_ms)

    # -- scheduling ---------------------------------------------------------------------------
    def _schedule_next(self, kind: str, tenant: Tenant, mean_gap: float) -> None:
        if kind == "order_new":
            mean_gap = DAY / tenant.orders_per_day if tenant.orders_per_day > 0 else 0
        if mean_gap > 0:
            self._at(self.now_ms + 1 + int(self.rng.expovariate(1 / mean_gap)), kind, tenant.id,
                     mean_gap)

    def _touch(self, record: Dict[str, Any], **changes: Any) -> None:
        record.update(changes)
        record["updatedAt"] = iso_ms(self.now_ms)

    # -- world: venues and events -------------------------------------------------------------
    def _new_venue(self, tenant: Tenant) -> None:
        n = len(tenant.venues.ids) + 1
        now = iso_ms(self.now_ms)
        tenant.venues.add({
            "id": self.ids.new("ven", self.now_ms), "name": f"{tenant.name} Hall {n}",
            "slug": f"hall-{n}", "address": f"{n} Quay Street", "city": "Auckland",
            "country": "NZ", "capacity": self.rng.choice([300, 800, 2500]),
            "createdAt": now, "updatedAt": now})

    def _new_event(self, tenant: Tenant, starts_ms: int) -> None:
        n = len(tenant.events.ids) + 1
        now = iso_ms(self.now_ms)
        venue = tenant.venues.by_id[self.rng.choice(tenant.venues.ids)]
        ends_ms = starts_ms + self.rng.randint(3, 6) * HOUR
        event = tenant.events.add({
            "id": self.ids.new("evt", self.now_ms), "tenantId": tenant.id,
            "name": f"Night {n}", "slug": f"night-{n}", "description": f"Show number {n}",
            "status": "UPCOMING", "approval": "APPROVED",
            "visibility": self.rng.choice(["PUBLIC", "PUBLIC", "PRIVATE", "SCHEDULED"]),
            "currency": "NZD", "venueId": venue["id"], "entryStartsAt": iso_ms(starts_ms),
            "entryEndsAt": iso_ms(ends_ms), "publishAt": now,
            "location": {"name": venue["name"], "address": venue["address"], "city": "Auckland",
                         "state": None, "postcode": "1010", "country": "NZ",
                         "latitude": -36.8442, "longitude": 174.7676,
                         "timeZone": "Pacific/Auckland"},
            "images": {"mobile": {"src": f"https://img.example/{n}-m.jpg", "alt": "poster",
                                  "width": 640, "height": 960},
                       "desktop": {"src": f"https://img.example/{n}-d.jpg", "alt": "poster",
                                   "width": 1920, "height": 1080}},
            "createdAt": now, "updatedAt": now})
        tenant.admissions_of[event["id"]] = []
        tenant.tickets_of_event[event["id"]] = []
        for name, price in self.rng.sample([("General", 4500), ("Early Bird", 3500),
                                            ("VIP", 12000), ("Student", 3000)], 3):
            adm = tenant.admissions.add({
                "id": self.ids.new("adm", self.now_ms), "eventId": event["id"], "name": name,
                "price": price, "currency": "NZD", "capacity": self.rng.choice([100, 200, 500]),
                "createdAt": now, "updatedAt": now})
            tenant.admissions_of[event["id"]].append(adm["id"])
        if starts_ms > self.now_ms:
            self._at(starts_ms, "event_start", tenant.id, event["id"])
        else:
            self._touch(event, status="ENDED" if ends_ms <= self.now_ms else "ACTIVE")
        if ends_ms > self.now_ms:
            self._at(ends_ms, "event_end", tenant.id, event["id"])

    def _on_event_new(self, tid: str, gap: float) -> None:
        tenant = self.tenants[tid]
        self._new_event(tenant, self.now_ms + self.rng.randint(2, 25) * DAY)
        self._schedule_next("event_new", tenant, gap)

    def _on_event_edit(self, tid: str, gap: float) -> None:
        tenant = self.tenants[tid]
        event = tenant.events.by_id[self.rng.choice(tenant.events.ids)]
        self._touch(event, description=f"{event['description']} (updated)")
        if self.rng.random() < 0.3:
            adm = tenant.admissions.by_id[self.rng.choice(tenant.admissions_of[event["id"]])]
            self._touch(adm, price=adm["price"] + 500)
        self._schedule_next("event_edit", tenant, gap)

    def _on_event_delete(self, tid: str, gap: float) -> None:
        tenant = self.tenants[tid]
        live = [e for e in tenant.events.ids if "deletedAt" not in tenant.events.by_id[e]]
        if len(live) > 2:
            event = tenant.events.by_id[self.rng.choice(live)]
            self._touch(event, deletedAt=iso_ms(self.now_ms))
        self._schedule_next("event_delete", tenant, gap)

    def _on_event_start(self, tid: str, eid: str) -> None:
        tenant = self.tenants[tid]
        event = tenant.events.by_id[eid]
        self._touch(event, status="ACTIVE")
        for tkt in tenant.tickets_of_event[eid]:
            self._plan_scans(tenant, tenant.tickets.by_id[tkt], event)

    def _on_event_end(self, tid: str, eid: str) -> None:
        self._touch(self.tenants[tid].events.by_id[eid], status="ENDED")

    # -- world: orders and tickets ------------------------------------------------------------
    def _on_order_new(self, tid: str, gap: float) -> None:
        tenant = self.tenants[tid]
        on_sale = [e for e in tenant.events.ids[-12:]
                   if tenant.events.by_id[e]["status"] in ("UPCOMING", "ACTIVE")
                   and "deletedAt" not in tenant.events.by_id[e]]
        if on_sale:
            self._new_order(tenant, tenant.events.by_id[self.rng.choice(on_sale)])
        self._schedule_next("order_new", tenant, gap)

    def _new_order(self, tenant: Tenant, event: Dict[str, Any]) -> None:
        items = []
        kinds = self.rng.choice([1, 1, 2])
        for adm_id in self.rng.sample(tenant.admissions_of[event["id"]], kinds):
            adm = tenant.admissions.by_id[adm_id]
            items.append({"admissionId": adm_id, "sectionId": None,
                          "quantity": self.rng.choice([1, 1, 2, 2, 4]), "price": adm["price"]})
        base = sum(i["price"] * i["quantity"] for i in items)
        booking = base // 20
        discount = -(base // 10) if self.rng.random() < 0.1 else 0
        gross = base + booking + discount
        gateway = -(gross * 3 // 100)
        now = iso_ms(self.now_ms)
        name = f"Customer {self.rng.randint(1, 99999)}"
        order = tenant.orders.add({
            "id": self.ids.new("ord", self.now_ms), "eventId": event["id"], "status": "PENDING",
            "currency": "NZD", "total": gross, "gross": gross, "base": base, "booking": booking,
            "shipping": 0, "discount": discount, "refunded": 0, "gateway": gateway,
            "net": gross + gateway,
            "customer": {"id": self.ids.new("cus", self.now_ms), "name": name,
                         "email": f"{name.lower().replace(' ', '.')}@mail.example"},
            "items": items, "createdAt": now, "updatedAt": now})
        self._at(self.now_ms + self.rng.randint(1, 5) * MIN, "order_process", tenant.id,
                 order["id"], self.now_ms)

    def _on_order_process(self, tid: str, oid: str, reserved_ms: int) -> None:
        order = self.tenants[tid].orders.by_id[oid]
        self._touch(order, status="PROCESSING")
        if self.rng.random() < 0.85:
            self._at(self.now_ms + self.rng.randint(1, 3) * MIN, "order_succeed", tid, oid)
        else:
            self._at(reserved_ms + 10 * MIN, "order_abandon", tid, oid)

    def _on_order_abandon(self, tid: str, oid: str) -> None:
        self._touch(self.tenants[tid].orders.by_id[oid], status="ABANDONED")
        if self.rng.random() < 0.3:
            self._at(self.now_ms + self.rng.randint(1, 30) * MIN, "order_rereserve", tid, oid)

    def _on_order_rereserve(self, tid: str, oid: str) -> None:
        self._touch(self.tenants[tid].orders.by_id[oid], status="PENDING")
        self._at(self.now_ms + self.rng.randint(1, 5) * MIN, "order_process", tid, oid,
                 self.now_ms)

    def _on_order_succeed(self, tid: str, oid: str) -> None:
        tenant = self.tenants[tid]
        order = tenant.orders.by_id[oid]
        self._touch(order, status="SUCCESSFUL")
        event = tenant.events.by_id[order["eventId"]]
        now = iso_ms(self.now_ms)
        for item in order["items"]:
            for _ in range(item["quantity"]):
                name = order["customer"]["name"]
                ticket = tenant.tickets.add({
                    "id": self.ids.new("tkt", self.now_ms), "orderId": oid,
                    "eventId": event["id"], "admissionId": item["admissionId"],
                    "sectionId": None, "status": "ACTIVE",
                    "attendee": {"name": name, "email": order["customer"]["email"]},
                    "scannedAt": None, "createdAt": now, "updatedAt": now})
                tenant.tickets_of_event[event["id"]].append(ticket["id"])
                tenant.tickets_of_order.setdefault(oid, []).append(ticket["id"])
                if event["status"] == "ACTIVE":
                    self._plan_scans(tenant, ticket, event)
        r = self.rng.random()
        created = self._ms(order["createdAt"])
        if r < 0.06:
            self._at(created + self.rng.randint(HOUR, MUTABLE_MS - HOUR), "order_refund", tid, oid)
        elif r < 0.075:
            self._at(created + self.rng.randint(DAY, MUTABLE_MS - HOUR), "order_dispute", tid, oid)

    def _on_order_refund(self, tid: str, oid: str) -> None:
        tenant = self.tenants[tid]
        order = tenant.orders.by_id[oid]
        if order["status"] != "SUCCESSFUL":
            return
        self._touch(order, refunded=-order["gross"], net=order["gateway"])
        for tkt in tenant.tickets_of_order.get(oid, []):
            self._touch(tenant.tickets.by_id[tkt], status="CANCELLED")

    def _on_order_dispute(self, tid: str, oid: str) -> None:
        order = self.tenants[tid].orders.by_id[oid]
        if order["status"] == "SUCCESSFUL" and order["refunded"] == 0:
            self._touch(order, status="DISPUTED")

    def _plan_scans(self, tenant: Tenant, ticket: Dict[str, Any], event: Dict[str, Any]) -> None:
        start = max(self.now_ms, self._ms(event["entryStartsAt"]))
        end = self._ms(event["entryEndsAt"])
        if end - start > 2 * MIN and self.rng.random() < 0.85:
            t_in = self.rng.randint(start + MIN, end - MIN)
            self._at(t_in, "scan", tenant.id, ticket["id"], "REDEEMED")
            if self.rng.random() < 0.2:
                self._at(self.rng.randint(t_in, end), "scan", tenant.id, ticket["id"], "ACTIVE")

    def _on_scan(self, tid: str, tkt: str, status: str) -> None:
        ticket = self.tenants[tid].tickets.by_id[tkt]
        if ticket["status"] != "CANCELLED":
            self._touch(ticket, status=status, scannedAt=iso_ms(self.now_ms))

    # -- world: changes nothing signals (switches) ---------------------------------------------
    def after_advance(self) -> None:
        """Draw the unsignalled changes due over the span just advanced (Poisson arrivals)."""
        span, self._quiet_ms = self.now_ms - self._quiet_ms, self.now_ms
        rate = self.unsignalled_per_day * span / DAY
        rng = self.changes_rng
        while rate > 0:
            rate -= rng.expovariate(1.0)
            if rate < 0:
                break
            tenant = self.tenants[rng.choice(sorted(self.tenants))]
            if rng.random() < 0.5:
                self._late_scan(tenant)
            else:
                self._old_dispute(tenant)

    def _late_scan(self, tenant: Tenant) -> None:
        """A check-out (or check-in) scan of a ticket whose event's entry window has ended."""
        ended = [e for e in tenant.events.ids if tenant.tickets_of_event[e]
                 and self._ms(tenant.events.by_id[e]["entryEndsAt"]) < self.now_ms]
        if not ended:
            return
        ids = tenant.tickets_of_event[self.changes_rng.choice(ended)]
        ticket = tenant.tickets.by_id[self.changes_rng.choice(ids)]
        if ticket["status"] != "CANCELLED":
            flipped = "ACTIVE" if ticket["status"] == "REDEEMED" else "REDEEMED"
            self._touch(ticket, status=flipped, scannedAt=iso_ms(self.now_ms))
            self.unsignalled.append((tenant.id, "scan", ticket["id"]))

    def _old_dispute(self, tenant: Tenant) -> None:
        """A dispute of a successful order created more than 60 days ago."""
        floor, candidates = iso_ms(self.now_ms - MUTABLE_MS), []
        for oid in tenant.orders.ids:  # ascending creation
            order = tenant.orders.by_id[oid]
            if order["createdAt"] >= floor:
                break
            if order["status"] == "SUCCESSFUL" and order["refunded"] == 0:
                candidates.append(oid)
        if candidates:
            oid = self.changes_rng.choice(candidates)
            self._touch(tenant.orders.by_id[oid], status="DISPUTED")
            self.unsignalled.append((tenant.id, "dispute", oid))

    def _change_served(self, tenant: Tenant) -> None:
        """Refund an order this tenant's current orders scan has already received."""
        if not self._served.get(tenant.id) or self.changes_rng.random() >= self.served_change_rate:
            return
        floor = self.now_ms - MUTABLE_MS
        candidates = [o for o in self._served[tenant.id]
                      if tenant.orders.by_id[o]["status"] == "SUCCESSFUL"
                      and tenant.orders.by_id[o]["refunded"] == 0
                      and self._ms(tenant.orders.by_id[o]["createdAt"]) > floor]
        if candidates:
            oid = self.changes_rng.choice(candidates)
            self._on_order_refund(tenant.id, oid)
            self.served_changes.append((tenant.id, oid))

    def _delete_listed(self, tenant: Tenant) -> None:
        """Soft-delete the event the latest live events list returned that changed last (so a
        sync reading changed events finds it in both lists)."""
        live = [e for e in self._listed.get(tenant.id, [])
                if "deletedAt" not in tenant.events.by_id[e]]
        if live and self.changes_rng.random() < self.delete_between_lists:
            eid = max(live, key=lambda e: tenant.events.by_id[e]["updatedAt"])
            self._touch(tenant.events.by_id[eid], deletedAt=iso_ms(self.now_ms))
            self.deleted_between.append((tenant.id, eid))

    @staticmethod
    def _ms(value: str) -> int:
        from sandbox.core import parse_iso_ms
        return parse_iso_ms(value)

    def edit_items(self, tenant_id: str, order_id: str, items: List[Dict[str, Any]]) -> None:
        """Replace an order's lines (an exchange or a partial cancellation), moving its
        `updatedAt` as every change does: nothing else signals it."""
        self._touch(self.tenants[tenant_id].orders.by_id[order_id], items=items)

    # -- truth for tests ----------------------------------------------------------------------
    def truth(self, tenant_id: str, kind: str) -> List[Dict[str, Any]]:
        """Every record of a kind in a tenant, as the API would show it (deleted events too)."""
        return [dict(r) for r in getattr(self.tenants[tenant_id], kind).by_id.values()]

    # -- HTTP ---------------------------------------------------------------------------------
    def error(self, status: int, code: str, message: str,
              issues: Optional[List[Dict[str, Any]]] = None) -> Response:
        return Response.json(status, {"message": message, "statusCode": status,
                                      "issues": issues or []})

    def route(self, request: Request) -> Response:
        tid = request.headers.get("x-tenant-id")
        if not tid:
            return self.error(400, "bad_request", "The x-tenant-id header is required")
        version = request.headers.get("x-api-version")
        if version is not None and version != API_VERSION:
            return self.error(400, "bad_request", f"Unsupported x-api-version {version}")
        tenant = self.tenants.get(tid)
        if tenant is None:
            return self.error(404, "not_found", "Tenant not found")
        parts = request.path.strip("/").split("/")
        if parts[0] in ("orders", "tickets"):
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
            owner = _token_tenant(token) if token not in self.revoked else None
            if owner is None:
                return self.error(401, "unauthorized", "Missing or invalid bearer token")
            if owner != tid:
                return self.error(403, "forbidden", "Token is not valid for this tenant")
        if parts == ["venues"]:
            return self._list(request, "venues", tenant.venues, tenant.venues.ids)
        if parts == ["events"]:
            deleted = request.arg("deleted") == "true"
            first = request.arg("after") is None and request.arg("before") is None
            if deleted and first and self.delete_between_lists:
                self._delete_listed(tenant)
            response = self._list(request, "events", tenant.events, tenant.events.ids,
                                  lambda e: ("deletedAt" in e) == deleted)
            if not deleted:
                self._listed[tid] = (self._listed.get(tid, []) if not first else []) + self._page
            return response
        if len(parts) == 2 and parts[0] == "events":
            return self._one("event", tenant.events, parts[1])
        if len(parts) == 3 and parts[0] == "events" and parts[2] == "admissions":
            if parts[1] not in tenant.events.by_id:
                return self.error(404, "not_found", "Event not found")
            return self._list(request, "admissions", tenant.admissions,
                              tenant.admissions_of[parts[1]])
        if parts == ["orders"]:
            event_id, status = request.arg("eventId"), request.arg("status")
            first = request.arg("after") is None and request.arg("before") is None
            if not first and self.served_change_rate:
                self._change_served(tenant)
            response = self._list(request, "orders", tenant.orders, tenant.orders.ids,
                                  lambda o: (event_id is None or o["eventId"] == event_id)
                                  and (status is None or o["status"] == status))
            self._served[tid] = (self._served.get(tid, []) if not first else []) + self._page
            return response
        if len(parts) == 2 and parts[0] == "orders":
            return self._one("order", tenant.orders, parts[1])
        if parts == ["tickets"]:
            event_id, order_id = request.arg("eventId"), request.arg("orderId")
            if event_id is None and order_id is None:
                return self.error(400, "bad_request", "eventId or orderId is required")
            ids = (tenant.tickets_of_event.get(event_id, []) if event_id is not None
                   else tenant.tickets_of_order.get(order_id or "", []))
            return self._list(request, "tickets", tenant.tickets, ids,
                              lambda t: order_id is None or t["orderId"] == order_id)
        return self.error(404, "not_found", f"Cannot GET {request.path}")

    def _one(self, key: str, collection: Collection, rid: str) -> Response:
        record = collection.by_id.get(rid)
        if record is None:
            return self.error(404, "not_found", f"{key.capitalize()} not found")
        return Response.json(200, {key: record})

    def _list(self, request: Request, key: str, collection: Collection, ids: List[str],
              keep: Optional[Callable[[Dict[str, Any]], bool]] = None) -> Response:
        raw = request.arg("limit")
        try:
            limit = 20 if raw is None else int(raw)
            if not 1 <= limit <= 100:
                raise ValueError
        except ValueError:
            return self.error(422, "invalid", "Validation failed", [
                {"path": ["limit"], "message": "Number must be between 1 and 100"}])
        after, before = request.arg("after"), request.arg("before")
        if after is not None and before is not None:
            return self.error(400, "bad_request", "Use after or before, not both")
        pos = _cursor_pos(after or before or "") if (after or before) is not None else None
        if (after or before) is not None and pos is None:
            return self.error(400, "bad_request", "Invalid cursor")
        ok = keep or (lambda _record: True)

        def matches(order: range, count: int) -> List[str]:
            return list(_take((ids[k] for k in order), collection, ok, count))

        if before is not None and pos is not None:
            # The page is the `limit` matches just before the cursor.
            edge = bisect.bisect_left(ids, pos)
            found = matches(range(edge - 1, -1, -1), limit + 1)
            page = list(reversed(found[:limit]))
            more_before = len(found) > limit
            more_after = bool(matches(range(edge, len(ids)), 1))
        else:
            edge = bisect.bisect_right(ids, pos) if pos is not None else 0
            found = matches(range(edge, len(ids)), limit + 1)
            page = found[:limit]
            more_after = len(found) > limit
            more_before = bool(matches(range(edge - 1, -1, -1), 1))
        self._page = page  # for the switches that change what a scan has already received
        body = {key: [collection.by_id[i] for i in page],
                "before": _cursor(page[0]) if page and more_before else None,
                "after": _cursor(page[-1]) if page and more_after else None,
                "limit": limit}
        return Response(200, orjson.dumps(body), {"Content-Type": "application/json"})


def _take(ids: Iterator[str], collection: Collection,
          keep: Callable[[Dict[str, Any]], bool], count: int) -> Iterator[str]:
    """Yield up to `count` ids whose records pass `keep`, scanning lazily."""
    taken = 0
    for rid in ids:
        if taken >= count:
            return
        if keep(collection.by_id[rid]):
            taken += 1
            yield rid
