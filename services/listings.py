"""The listing lifecycle: submit → review → approve, or reject → edit → resubmit.

Every state change is one transaction with its audit row and the messages it
owes (outbox). An approved listing's public columns change only on approval,
so the old version stays public while an edit of it is under review.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.exc import IntegrityError

from models import Charger, Listing, ListingRevision, ListingStatus, RevisionStatus, User
from models.base import utcnow
from models.listing import new_short_code
from services import audit, outbox
from services.dto import ChargerInfo, ListingInfo, RevisionInfo
from services.errors import InvalidInput, NotAllowed, NotFound
from services.listing_draft import ChargerDraft, ListingDraft, price_minor
from services.outbox import OutboxKind
from services.paging import Page, page_of
from services.text import clean_reason
from services.tx import Db, lock_rows, read, transaction

# preset rejection reasons; stored as "preset:<code>" and translated per reader
REJECT_PRESETS = ("photo", "location", "price", "incomplete", "duplicate")


class Decision(StrEnum):
    DONE = "done"
    ALREADY_DECIDED = "already_decided"


@dataclass(frozen=True)
class DecisionResult:
    outcome: Decision
    revision: RevisionInfo


@dataclass(frozen=True)
class ListingOverview:
    listing: ListingInfo
    latest: RevisionInfo  # its latest submitted version


@dataclass(frozen=True)
class PlugConflict:
    """A charger of a draft whose plug another listing names too."""

    charger: int  # the draft's charger, 1-based as the summary numbers them
    plug_driver: str
    plug_id: str
    listing_id: int  # the other listing
    public: bool  # the other listing's approved charger; else its version under review


def new_qr_token() -> str:
    """192 random bits, URL-safe, 32 characters (fits a /start payload)."""
    return secrets.token_urlsafe(24)


def preset_reason(code: str) -> str:
    if code not in REJECT_PRESETS:
        raise InvalidInput("err.reason_unknown")
    return f"preset:{code}"


async def submit(
    db: Db,
    *,
    merchant_id: int,
    draft: ListingDraft,
    moderation_chat_id: int,
    listing_id: int | None = None,
    submission_key: str | None = None,
    max_under_review: int | None = None,
) -> RevisionInfo:
    """Create a listing (or a new version of one) and send it to review.

    With a ``submission_key``, submitting the same summary again (a double press,
    a restart between the commit and the reply) returns the first revision.
    ``max_under_review``: how many of the merchant's listings may wait for review
    at once (None: no limit).
    """
    async with read(db):
        await _known_pairings(db, draft, merchant_id)
    draft.validate_complete()
    async with transaction(db):
        if submission_key is not None:
            done = await db.scalar(
                select(ListingRevision).where(ListingRevision.submission_key == submission_key)
            )
            if done is not None:
                return RevisionInfo.of(done)
        await check_review_cap(db, merchant_id, listing_id, max_under_review)
        taken = await plug_conflicts(db, draft, listing_id)
        if taken:
            raise _plug_taken(taken[0])
        if listing_id is None:
            listing = Listing(merchant_id=merchant_id, status=ListingStatus.PENDING)
            db.add(listing)
            await db.flush()
            number = 1
            from_state = None
        else:
            listing = await _owned_listing(db, listing_id, merchant_id)
            from_state = listing.status.value
            withdrawn = (
                await db.scalars(
                    update(ListingRevision)
                    .where(
                        ListingRevision.listing_id == listing.id,
                        ListingRevision.status == RevisionStatus.PENDING,
                    )
                    .values(status=RevisionStatus.WITHDRAWN, decided_at=utcnow())
                    .returning(ListingRevision.id)
                )
            ).all()
            for revision_id in withdrawn:
                outbox.enqueue(
                    db, moderation_chat_id, OutboxKind.REVIEW_CARD_REFRESH, revision_id=revision_id
                )
            number = 1 + (
                await db.scalar(
                    select(func.max(ListingRevision.number)).where(
                        ListingRevision.listing_id == listing.id
                    )
                )
                or 0
            )
            listing.status = ListingStatus.PENDING
        revision = ListingRevision(
            listing_id=listing.id,
            number=number,
            data=draft.to_dict(),
            status=RevisionStatus.PENDING,
            submission_key=submission_key,
        )
        db.add(revision)
        await db.flush()
        audit.record(
            db,
            "listing",
            listing.id,
            "submit",
            merchant_id,
            from_state,
            "pending",
            reason=f"revision {number}",
        )
        outbox.enqueue(db, moderation_chat_id, OutboxKind.REVIEW_CARD, revision_id=revision.id)
        return RevisionInfo.of(revision, merchant_id=listing.merchant_id)


async def check_review_cap(
    db: Db, merchant_id: int, listing_id: int | None, cap: int | None
) -> None:
    """Refuse a submission past ``cap`` listings under review (an edit of a listing
    already under review replaces its version, so it never counts twice).

    Called inside the submission's transaction, after the merchant's row is locked
    (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises the whole unit), so two
    submissions at once cannot both pass the count.
    """
    if cap is None:
        return
    await lock_rows(db, select(User.id).where(User.id == merchant_id).with_for_update())
    under_review = await db.scalar(
        select(func.count())
        .select_from(Listing)
        .where(
            Listing.merchant_id == merchant_id,
            Listing.status == ListingStatus.PENDING,
            Listing.id != (listing_id or 0),
        )
    )
    if (under_review or 0) >= cap:
        raise InvalidInput("err.too_many_under_review", max=cap)


async def approve(
    db: Db, *, revision_id: int, admin_id: int, moderation_chat_id: int
) -> DecisionResult:
    """Publish a version; refused (and left pending) when one of its plugs is
    another listing's by now, also when that listing was approved a moment ago
    in a transaction that raced this one (the database's unique index then
    refuses the second, and the whole decision is rolled back)."""
    try:
        return await _approve(db, revision_id, admin_id, moderation_chat_id)
    except IntegrityError:
        revision = await _revision(db, revision_id)
        draft = ListingDraft.from_dict(revision.data)
        taken = [c for c in await plug_conflicts(db, draft, revision.listing_id) if c.public]
        if not taken:
            raise
        raise _plug_taken(taken[0], for_admin=True) from None


async def _approve(
    db: Db, revision_id: int, admin_id: int, moderation_chat_id: int
) -> DecisionResult:
    async with transaction(db):
        revision = await _decide(db, revision_id, admin_id, RevisionStatus.APPROVED, None)
        if revision is None:
            return DecisionResult(
                Decision.ALREADY_DECIDED, RevisionInfo.of(await _revision(db, revision_id))
            )
        listing = revision.listing
        draft = ListingDraft.from_dict(revision.data)
        # a version sent before these checks existed may break them: it stays pending
        draft.validate_complete()
        taken = await plug_conflicts(db, draft, listing.id)
        if taken:
            raise _plug_taken(taken[0], for_admin=True)
        await db.execute(
            update(ListingRevision)
            .where(
                ListingRevision.listing_id == listing.id,
                ListingRevision.status == RevisionStatus.APPROVED,
                ListingRevision.id != revision.id,
            )
            .values(status=RevisionStatus.SUPERSEDED)
        )
        await _publish(db, listing, draft)
        # the stored version now knows its chargers' ids, for the next edit
        revision.data = draft.to_dict()
        from_state = listing.status.value
        listing.status = ListingStatus.APPROVED
        audit.record(
            db,
            "listing",
            listing.id,
            "approve",
            admin_id,
            from_state,
            "approved",
            reason=f"revision {revision.number}",
        )
        outbox.enqueue(
            db, moderation_chat_id, OutboxKind.REVIEW_CARD_REFRESH, revision_id=revision.id
        )
        outbox.enqueue(
            db, listing.merchant_id, OutboxKind.LISTING_APPROVED, revision_id=revision.id
        )
        outbox.enqueue(db, listing.merchant_id, OutboxKind.QR_LABELS, listing_id=listing.id)
        # the cards of other versions under review with one of these plugs now say so
        for other in await _pending_with_plugs(db, draft, listing.id):
            outbox.enqueue(
                db, moderation_chat_id, OutboxKind.REVIEW_CARD_REFRESH, revision_id=other
            )
        return DecisionResult(Decision.DONE, RevisionInfo.of(revision))


async def reject(
    db: Db,
    *,
    revision_id: int,
    admin_id: int,
    reason: str,
    moderation_chat_id: int,
) -> DecisionResult:
    reason = clean_reason(reason)
    async with transaction(db):
        revision = await _decide(db, revision_id, admin_id, RevisionStatus.REJECTED, reason)
        if revision is None:
            return DecisionResult(
                Decision.ALREADY_DECIDED, RevisionInfo.of(await _revision(db, revision_id))
            )
        listing = revision.listing
        from_state = listing.status.value
        listing.status = ListingStatus.REJECTED
        audit.record(
            db,
            "listing",
            listing.id,
            "reject",
            admin_id,
            from_state,
            "rejected",
            reason=reason,
        )
        outbox.enqueue(
            db, moderation_chat_id, OutboxKind.REVIEW_CARD_REFRESH, revision_id=revision.id
        )
        outbox.enqueue(
            db, listing.merchant_id, OutboxKind.LISTING_REJECTED, revision_id=revision.id
        )
        return DecisionResult(Decision.DONE, RevisionInfo.of(revision))


async def set_paused(db: Db, *, listing_id: int, merchant_id: int, paused: bool) -> ListingInfo:
    async with transaction(db):
        listing = await _owned_listing(db, listing_id, merchant_id)
        if listing.paused != paused:
            listing.paused = paused
            audit.record(
                db,
                "listing",
                listing.id,
                "pause" if paused else "resume",
                merchant_id,
                str(not paused),
                str(paused),
            )
        return ListingInfo.of(listing)


async def overview_page(db: Db, merchant_id: int, number: int, size: int) -> Page[ListingOverview]:
    """One page of the merchant's listings, each with its latest submitted version."""
    async with read(db):
        page = await page_of(db, _overview(merchant_id), number, size, rows=True)
        items = [
            ListingOverview(ListingInfo.of(listing), RevisionInfo.of(revision))
            for listing, revision in page.items
        ]
    return Page(items, page.total, page.number, page.pages, page.size)


def _overview(merchant_id: int) -> Select[Listing, ListingRevision]:
    latest_numbers = (
        select(ListingRevision.listing_id, func.max(ListingRevision.number).label("number"))
        .join(Listing, Listing.id == ListingRevision.listing_id)
        .where(Listing.merchant_id == merchant_id)
        .group_by(ListingRevision.listing_id)
        .subquery()
    )
    return (
        select(Listing, ListingRevision)
        .join(ListingRevision, ListingRevision.listing_id == Listing.id)
        .join(
            latest_numbers,
            (latest_numbers.c.listing_id == ListingRevision.listing_id)
            & (latest_numbers.c.number == ListingRevision.number),
        )
        .order_by(Listing.id)
    )


async def owned_overview(db: Db, listing_id: int, merchant_id: int) -> ListingOverview:
    async with read(db):
        listing = await _owned_listing(db, listing_id, merchant_id)
        latest = await db.scalar(
            select(ListingRevision)
            .where(ListingRevision.listing_id == listing.id)
            .order_by(ListingRevision.number.desc())
            .limit(1)
        )
        if latest is None:  # pragma: no cover - a listing is created with its first revision
            raise NotFound("err.listing_not_found")
        return ListingOverview(ListingInfo.of(listing), RevisionInfo.of(latest))


async def pending_revisions(db: Db) -> list[ListingRevision]:
    return list(
        (
            await db.scalars(
                select(ListingRevision)
                .where(ListingRevision.status == RevisionStatus.PENDING)
                .order_by(ListingRevision.submitted_at)
            )
        ).all()
    )


async def pending_page(db: Db, number: int, size: int) -> Page[RevisionInfo]:
    """One page of what waits for review, oldest first."""
    statement = (
        select(ListingRevision)
        .where(ListingRevision.status == RevisionStatus.PENDING)
        .order_by(ListingRevision.submitted_at, ListingRevision.id)
    )
    async with read(db):
        page: Page[ListingRevision] = await page_of(db, statement, number, size)
    items = [RevisionInfo.of(revision) for revision in page.items]
    return Page(items, page.total, page.number, page.pages, page.size)


async def get_revision(db: Db, revision_id: int) -> RevisionInfo:
    async with read(db):
        return RevisionInfo.of(await _revision(db, revision_id))


async def previous_version(db: Db, revision: RevisionInfo) -> RevisionInfo | None:
    """The version a resubmission follows (what changed, why it was rejected)."""
    if revision.number <= 1:
        return None
    async with read(db):
        row = await db.scalar(
            select(ListingRevision).where(
                ListingRevision.listing_id == revision.listing_id,
                ListingRevision.number == revision.number - 1,
            )
        )
        return None if row is None else RevisionInfo.of(row, revision.merchant_id)


SHOP_FIELDS = {
    "contact_phone": "contact",
    "shop_name": "shop_name",
    "photo_file_id": "photo",
    "area_m2": "area",
    "latitude": "location",
    "longitude": "location",
    "address": "address",
}


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, int]]:
    """What a version changed against the one before: (shop field, 0) for the shop's
    fields, ("charger", n) / ("charger_new", n) / ("charger_gone", n) for chargers."""
    changed: list[tuple[str, int]] = []
    for key, name in SHOP_FIELDS.items():
        if before.get(key) != after.get(key) and (name, 0) not in changed:
            changed.append((name, 0))
    old, new = before.get("chargers") or [], after.get("chargers") or []
    for n in range(1, max(len(old), len(new)) + 1):
        if n > len(old):
            changed.append(("charger_new", n))
        elif n > len(new):
            changed.append(("charger_gone", n))
        elif old[n - 1] != new[n - 1]:
            changed.append(("charger", n))
    return changed


async def _revision(db: Db, revision_id: int) -> ListingRevision:
    revision = await db.get(ListingRevision, revision_id, populate_existing=True)
    if revision is None:
        raise NotFound("err.listing_not_found")
    return revision


async def listing_info(db: Db, listing_id: int) -> ListingInfo:
    """A listing's public version (its shop, where it is)."""
    async with read(db):
        listing = await db.get(Listing, listing_id, populate_existing=True)
        if listing is None:
            raise NotFound("err.listing_not_found")
        return ListingInfo.of(listing)


async def _owned_listing(db: Db, listing_id: int, merchant_id: int) -> Listing:
    listing = await db.get(Listing, listing_id, populate_existing=True)
    if listing is None:
        raise NotFound("err.listing_not_found")
    if listing.merchant_id != merchant_id:
        raise NotAllowed("err.not_your_listing")
    return listing


async def _decide(
    db: Db,
    revision_id: int,
    admin_id: int,
    status: RevisionStatus,
    reason: str | None,
) -> ListingRevision | None:
    """Move a PENDING revision to ``status``; None when someone decided first.

    The conditional UPDATE is the lock: of two admins pressing at once exactly
    one changes the row.
    """
    changed = await db.execute(
        update(ListingRevision)
        .where(ListingRevision.id == revision_id, ListingRevision.status == RevisionStatus.PENDING)
        .values(status=status, decided_by=admin_id, decided_at=utcnow(), reason=reason)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await _revision(db, revision_id)


async def _publish(db: Db, listing: Listing, draft: ListingDraft) -> None:
    listing.contact_phone = draft.contact_phone
    listing.shop_name = draft.shop_name
    listing.photo_file_id = draft.photo_file_id
    listing.area_m2 = draft.area_m2
    listing.latitude = draft.latitude
    listing.longitude = draft.longitude
    listing.address = draft.address
    listing.published = True
    listing.approved_at = utcnow()
    existing = {
        c.id: c
        for c in (await db.scalars(select(Charger).where(Charger.listing_id == listing.id))).all()
    }
    # every charger is off the plug index first, then each comes back with its
    # final plug: a plug moved between this listing's chargers, or taken over
    # from a removed one, never meets itself in the unique index on the way
    for charger in existing.values():
        charger.active = False
    await db.flush()
    for position, charger_draft in enumerate(draft.chargers):
        kept = existing.get(charger_draft.id) if charger_draft.id else None
        if kept is None:
            kept = Charger(listing_id=listing.id, qr_token=new_qr_token())
            db.add(kept)
        _copy_charger(kept, charger_draft, position)
        await db.flush()
        charger_draft.id = kept.id
    await db.refresh(listing, ["chargers"])


def _plug_taken(conflict: PlugConflict, *, for_admin: bool = False) -> InvalidInput:
    if for_admin:
        return InvalidInput(
            "err.plug_taken_review",
            n=conflict.charger,
            plug=conflict.plug_id,
            listing=conflict.listing_id,
        )
    return InvalidInput("err.plug_taken", n=conflict.charger, plug=conflict.plug_id)


# written bare, as the unique index's own predicate: both databases then find the
# rows through that index (SQLite matches a partial index's terms as written)
_ACTIVE_CHARGER = text("chargers.active")


async def plug_conflicts(
    db: Db,
    draft: ListingDraft,
    listing_id: int | None = None,
    *,
    pending: bool = False,
) -> list[PlugConflict]:
    """The draft's chargers whose plug another listing's active charger has
    (with ``pending``, also one of another listing's versions under review).

    A plug belongs to one charger: two chargers on one plug would switch each
    other's power. The listing's own chargers (``listing_id``) do not count, so
    an edit keeps its plugs; a removed (inactive) charger's plug is free.
    """
    wanted: dict[tuple[str, str], int] = {}  # plug → the first charger with it
    for number, charger in enumerate(draft.chargers, 1):
        if charger.plug_key is not None:
            wanted.setdefault(charger.plug_key, number)
    if not wanted:
        return []
    query = select(Charger.plug_driver, Charger.plug_id, Charger.listing_id).where(
        _ACTIVE_CHARGER,
        Charger.plug_driver.in_(sorted({driver for driver, _ in wanted})),
        Charger.plug_id.in_(sorted({plug for _, plug in wanted})),
    )
    if listing_id is not None:
        query = query.where(Charger.listing_id != listing_id)
    found = [
        PlugConflict(wanted[(driver, plug)], driver, plug, other, public=True)
        for driver, plug, other in (await db.execute(query.order_by(Charger.id))).all()
        if (driver, plug) in wanted  # the IN lists also pair one's driver with another's id
    ]
    if pending:
        for revision in await _pending_revisions_except(db, listing_id):
            for other in ListingDraft.from_dict(revision.data).chargers:
                key = other.plug_key
                if key is not None and key in wanted:
                    found.append(PlugConflict(wanted[key], *key, revision.listing_id, public=False))
    return sorted(found, key=lambda c: (c.charger, not c.public, c.listing_id))


async def check_plug(
    db: Db, draft: ListingDraft, index: int, listing_id: int | None = None
) -> None:
    """The plug just typed for charger ``index`` (0-based): refused when another
    charger of the draft, or another listing's active charger, has it."""
    twice = draft.plug_used_twice(index)
    if twice is not None:
        other = twice[0] if twice[1] == index else twice[1]
        raise InvalidInput("err.plug_twice_step", other=other + 1)
    charger = draft.chargers[index]
    async with read(db):
        taken = await plug_conflicts(db, ListingDraft(chargers=[charger]), listing_id)
    if taken:
        raise InvalidInput("err.plug_taken_step", plug=charger.plug_id or "")


async def _pending_revisions_except(db: Db, listing_id: int | None) -> list[ListingRevision]:
    query = select(ListingRevision).where(ListingRevision.status == RevisionStatus.PENDING)
    if listing_id is not None:
        query = query.where(ListingRevision.listing_id != listing_id)
    return list((await db.scalars(query.order_by(ListingRevision.id))).all())


async def _pending_with_plugs(db: Db, draft: ListingDraft, listing_id: int) -> list[int]:
    keys = {c.plug_key for c in draft.chargers if c.plug_key}
    return [
        revision.id
        for revision in await _pending_revisions_except(db, listing_id)
        if keys & {c.plug_key for c in ListingDraft.from_dict(revision.data).chargers}
    ]


async def revision_plug_conflicts(db: Db, revision: RevisionInfo) -> list[PlugConflict]:
    """What the review card warns about while the version waits for a decision."""
    if revision.status != RevisionStatus.PENDING:
        return []
    async with read(db):
        return await plug_conflicts(db, revision.draft, revision.listing_id, pending=True)


def _copy_charger(charger: Charger, draft: ChargerDraft, position: int) -> None:
    assert draft.price is not None  # validate_complete ran on submit
    charger.position = position
    charger.active = True
    charger.method = draft.method or "other"
    charger.device_kinds = list(draft.device_kinds)
    charger.device_models = draft.device_models or ""
    charger.supply_kind = draft.supply_kind or ""
    charger.supply_model = draft.supply_model or ""
    charger.hours = dict(draft.hours or {})
    charger.price_unit = draft.price_unit or "hour"
    charger.currency = draft.currency or "CNY"
    charger.price_minor = price_minor(draft.price, charger.currency)
    charger.power_kw = Decimal(draft.power_kw) if draft.power_kw else None
    plug = (draft.plug_driver or "tasmota", draft.plug_id or "")
    if (charger.plug_driver, charger.plug_id) != plug:
        charger.paired_at = None  # another plug: proven again
    charger.plug_driver, charger.plug_id = plug
    if draft.paired_at is not None:
        charger.paired_at = max(
            datetime.fromisoformat(draft.paired_at),
            charger.paired_at or datetime.min.replace(tzinfo=UTC),
        )


async def record_card(
    db: Db, revision_id: int, chat_id: int, message_id: int, is_photo: bool
) -> None:
    """Remember where a review card was posted, so decisions can update it."""
    async with transaction(db):
        await db.execute(
            update(ListingRevision)
            .where(ListingRevision.id == revision_id)
            .values(card_chat_id=chat_id, card_message_id=message_id, card_is_photo=is_photo)
        )


async def active_chargers(
    db: Db, listing_id: int, merchant_id: int
) -> tuple[ListingInfo, list[ChargerInfo]]:
    """The owner's public chargers (the ones that have QR codes)."""
    async with read(db):
        listing = await _owned_listing(db, listing_id, merchant_id)
        chargers = (
            await db.scalars(
                select(Charger)
                .where(Charger.listing_id == listing.id, Charger.active.is_(True))
                .order_by(Charger.position)
                .execution_options(populate_existing=True)
            )
        ).all()
        return ListingInfo.of(listing), [ChargerInfo.of(c) for c in chargers]


# -- pairing (issue #15) ----------------------------------------------------------------


async def _known_pairings(db: Db, draft: ListingDraft, merchant_id: int) -> None:
    """A charger edited with its plug unchanged keeps a pairing made after its last
    version was submitted (the Pair button pressed from the instructions)."""
    ids = [c.id for c in draft.chargers if c.id is not None and c.paired_at is None]
    if not ids:
        return
    rows = (
        await db.execute(
            select(Charger.id, Charger.plug_driver, Charger.plug_id, Charger.paired_at)
            .join(Listing, Listing.id == Charger.listing_id)
            .where(Charger.id.in_(ids), Listing.merchant_id == merchant_id)
        )
    ).all()
    paired = {row.id: row for row in rows if row.paired_at is not None}
    for charger in draft.chargers:
        row = paired.get(charger.id) if charger.id is not None else None
        if row is not None and (row.plug_driver, row.plug_id) == charger.plug_key:
            charger.paired_at = row.paired_at.isoformat()


def _pending_of(merchant_id: int) -> Select[ListingRevision]:
    return (
        select(ListingRevision)
        .join(Listing, Listing.id == ListingRevision.listing_id)
        .where(
            Listing.merchant_id == merchant_id,
            ListingRevision.status == RevisionStatus.PENDING,
        )
    )


async def owned_plugs(db: Db, *, merchant_id: int) -> list[tuple[str, str]]:
    """(driver, plug id) of the merchant's public chargers and of their versions under
    review (a plug kept for later may be ready before the admins decide)."""
    async with read(db):
        rows = await db.execute(
            select(Charger.plug_driver, Charger.plug_id)
            .join(Listing, Listing.id == Charger.listing_id)
            .where(Listing.merchant_id == merchant_id, Charger.active.is_(True))
        )
        plugs = [(driver, plug) for driver, plug in rows.all()]
        for revision in (await db.scalars(_pending_of(merchant_id))).all():
            draft = ListingDraft.from_dict(revision.data)
            plugs += [c.plug_key for c in draft.chargers if c.plug_key is not None]
        return plugs


async def mark_paired(db: Db, *, merchant_id: int, driver: str, plug_id: str, at: datetime) -> int:
    """Record a proven plug on the merchant's public charger that names it, and in their
    versions under review (approving one then keeps it paired); returns how many public
    chargers were marked (0: it is only in a draft or under review)."""
    async with transaction(db):
        ids = (
            await db.scalars(
                select(Charger.id)
                .join(Listing, Listing.id == Charger.listing_id)
                .where(
                    Listing.merchant_id == merchant_id,
                    Charger.active.is_(True),
                    Charger.plug_driver == driver,
                    Charger.plug_id == plug_id,
                )
            )
        ).all()
        for charger_id in ids:
            await db.execute(update(Charger).where(Charger.id == charger_id).values(paired_at=at))
            audit.record(db, "charger", charger_id, "pair_plug", merchant_id)
        pending = (
            await db.scalars(_pending_of(merchant_id).execution_options(populate_existing=True))
        ).all()
        for revision in pending:
            draft = ListingDraft.from_dict(revision.data)
            named = [c for c in draft.chargers if c.plug_key == (driver, plug_id)]
            for charger in named:
                charger.paired_at, charger.plug_later = at.isoformat(), False
            if named:
                revision.data = draft.to_dict()  # a new value: JSON is not tracked in place
        return len(ids)


async def unused_short_code(db: Db) -> str:
    """A fresh short code no charger has (the unique constraint stays the last guard)."""
    while True:
        code = new_short_code()
        taken = await db.scalar(select(Charger.id).where(Charger.short_code == code))
        if taken is None:
            return code


def token_fingerprint(token: str) -> str:
    """A short, non-secret name of a token (for a button that must act on it only)."""
    return hashlib.sha256(token.encode()).hexdigest()[:10]


async def owned_charger(db: Db, *, charger_id: int, merchant_id: int) -> ChargerInfo:
    """An active charger of the merchant's; anyone else's is refused."""
    async with read(db):
        return ChargerInfo.of(await _owned_charger(db, charger_id, merchant_id))


async def label_of(db: Db, *, charger_id: int, merchant_id: int) -> tuple[ListingInfo, ChargerInfo]:
    """What a charger's QR label shows (its shop, its code), for its merchant only."""
    async with read(db):
        charger = await _owned_charger(db, charger_id, merchant_id)
        listing = await _owned_listing(db, charger.listing_id, merchant_id)
        return ListingInfo.of(listing), ChargerInfo.of(charger)


async def _owned_charger(db: Db, charger_id: int, merchant_id: int) -> Charger:
    charger = await db.get(Charger, charger_id, populate_existing=True)
    if charger is None or not charger.active:
        raise NotFound("err.charger_gone")
    await _owned_listing(db, charger.listing_id, merchant_id)
    return charger


async def renew_token(
    db: Db, *, charger_id: int, merchant_id: int, fingerprint: str | None = None
) -> ChargerInfo:
    """A new random QR token; the old printed code stops working at once.

    With ``fingerprint``, only the token it names is renewed: a repeated press finds
    the token already changed and changes nothing."""
    async with transaction(db):
        charger = await _owned_charger(db, charger_id, merchant_id)
        if fingerprint is not None and token_fingerprint(charger.qr_token) != fingerprint:
            raise InvalidInput("err.qr_already_renewed")
        charger.qr_token = new_qr_token()
        # the code printed under the QR goes with it: the old label opens nothing
        charger.short_code = await unused_short_code(db)
        audit.record(db, "charger", charger.id, "renew_token", merchant_id)
        return ChargerInfo.of(charger)
