"""The listing lifecycle in services/, on SQLite and PostgreSQL."""

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    AuditEntry,
    Charger,
    Listing,
    ListingRevision,
    ListingStatus,
    OutboxMessage,
    RevisionStatus,
    User,
)
from services import listings
from services.errors import InvalidInput, NotAllowed
from services.listings import Decision
from tests import factories

MERCHANT, OTHER, ADMIN_A, ADMIN_B = 1001, 1002, 901, 902
GROUP = -100500

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(autouse=True)
async def people(open_db: Sessions) -> None:
    async with open_db() as db:
        db.add_all([User(id=i, first_name=f"u{i}") for i in (MERCHANT, OTHER)])
        await db.commit()


async def _submit(open_db: Sessions, draft=None, listing_id=None, merchant=MERCHANT):
    async with open_db() as db:
        return await listings.submit(
            db,
            merchant_id=merchant,
            draft=draft or factories.listing(),
            moderation_chat_id=GROUP,
            listing_id=listing_id,
        )


async def _outbox(open_db: Sessions) -> list[tuple[int, str]]:
    async with open_db() as db:
        rows = await db.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(m.chat_id, m.kind) for m in rows]


async def test_submit_creates_pending_revision_card_and_audit(open_db: Sessions) -> None:
    revision = await _submit(open_db)
    async with open_db() as db:
        listing = await db.get(Listing, revision.listing_id)
        assert listing is not None
        assert listing.status == ListingStatus.PENDING
        assert not listing.published  # nothing public before approval
        assert listing.shop_name is None
        audit = (await db.scalars(select(AuditEntry))).all()
        assert [(a.action, a.actor_id, a.to_state) for a in audit] == [
            ("submit", MERCHANT, "pending")
        ]
    assert await _outbox(open_db) == [(GROUP, "review_card")]


async def test_incomplete_draft_is_refused_and_nothing_is_written(open_db: Sessions) -> None:
    draft = factories.listing()
    draft.chargers[1].price = None
    with pytest.raises(InvalidInput) as error:
        await _submit(open_db, draft)
    assert error.value.key == "err.draft_incomplete"
    assert "charger 2: price" in error.value.params["fields"]
    async with open_db() as db:
        assert await db.scalar(select(func.count()).select_from(Listing)) == 0
    assert await _outbox(open_db) == []


async def test_reject_edit_resubmit_approve(open_db: Sessions) -> None:
    first = await _submit(open_db)
    async with open_db() as db:
        result = await listings.reject(
            db,
            revision_id=first.id,
            admin_id=ADMIN_A,
            reason="preset:photo",
            moderation_chat_id=GROUP,
        )
    assert result.outcome == Decision.DONE
    async with open_db() as db:
        listing = await db.get(Listing, first.listing_id)
        assert listing.status == ListingStatus.REJECTED and not listing.published
        rev = await db.get(ListingRevision, first.id)
        assert (rev.status, rev.decided_by, rev.reason) == (
            RevisionStatus.REJECTED,
            ADMIN_A,
            "preset:photo",
        )

    second = await _submit(
        open_db, factories.listing(photo_file_id="photo-2"), listing_id=first.listing_id
    )
    assert second.number == 2
    async with open_db() as db:
        result = await listings.approve(
            db, revision_id=second.id, admin_id=ADMIN_B, moderation_chat_id=GROUP
        )
    assert result.outcome == Decision.DONE
    async with open_db() as db:
        listing = await db.get(Listing, first.listing_id)
        assert listing.status == ListingStatus.APPROVED and listing.published
        assert listing.photo_file_id == "photo-2"
        chargers = (await db.scalars(select(Charger).order_by(Charger.position))).all()
        assert [c.plug_id for c in chargers] == ["plug_0", "plug_1"]
        assert all(c.active and len(c.qr_token) >= 22 for c in chargers)
        assert chargers[0].price_minor == 250
        rev = await db.get(ListingRevision, second.id)
        assert [c["id"] for c in rev.data["chargers"]] == [c.id for c in chargers]
        actions = (await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
        assert actions == ["submit", "reject", "submit", "approve"]
    assert await _outbox(open_db) == [
        (GROUP, "review_card"),
        (GROUP, "review_card_refresh"),
        (MERCHANT, "listing_rejected"),
        (GROUP, "review_card"),
        (GROUP, "review_card_refresh"),
        (MERCHANT, "listing_approved"),
        (MERCHANT, "qr_labels"),
    ]


async def test_edit_of_approved_listing_stays_public_until_approved(open_db: Sessions) -> None:
    first = await _submit(open_db)
    async with open_db() as db:
        await listings.approve(db, revision_id=first.id, admin_id=ADMIN_A, moderation_chat_id=GROUP)
        overview = await listings.owned_overview(db, first.listing_id, MERCHANT)
    draft = listings.ListingDraft.from_dict(overview.latest.data)
    kept_id = draft.chargers[0].id
    draft.shop_name = "Volt Café 2"
    draft.chargers = [draft.chargers[0], factories.charger(plug_id="plug_new")]  # drop one, add one
    second = await _submit(open_db, draft, listing_id=first.listing_id)
    async with open_db() as db:
        listing = await db.get(Listing, first.listing_id)
        assert listing.published and listing.shop_name == "Volt Café"  # old version public
        assert listing.status == ListingStatus.PENDING
        await listings.approve(
            db, revision_id=second.id, admin_id=ADMIN_B, moderation_chat_id=GROUP
        )
    async with open_db() as db:
        listing = await db.get(Listing, first.listing_id)
        assert listing.shop_name == "Volt Café 2"
        chargers = (await db.scalars(select(Charger).order_by(Charger.id))).all()
        assert [(c.plug_id, c.active) for c in chargers] == [
            ("plug_0", True),
            ("plug_1", False),
            ("plug_new", True),
        ]
        assert chargers[0].id == kept_id  # same charger, same QR token
        old = await db.get(ListingRevision, first.id)
        assert old.status == RevisionStatus.SUPERSEDED


async def test_resubmitting_while_pending_withdraws_the_older_version(open_db: Sessions) -> None:
    first = await _submit(open_db)
    second = await _submit(
        open_db, factories.listing(shop_name="Renamed"), listing_id=first.listing_id
    )
    async with open_db() as db:
        old = await db.get(ListingRevision, first.id)
        assert old.status == RevisionStatus.WITHDRAWN
        result = await listings.approve(
            db, revision_id=first.id, admin_id=ADMIN_A, moderation_chat_id=GROUP
        )
        assert result.outcome == Decision.ALREADY_DECIDED  # a stale card changes nothing
        pending = await listings.pending_revisions(db)
        assert [r.id for r in pending] == [second.id]


async def test_two_admins_at_once_exactly_one_decision_wins(open_db: Sessions) -> None:
    revision = await _submit(open_db)

    async def approve(admin: int):
        async with open_db() as db:
            return await listings.approve(
                db, revision_id=revision.id, admin_id=admin, moderation_chat_id=GROUP
            )

    async def reject(admin: int):
        async with open_db() as db:
            return await listings.reject(
                db,
                revision_id=revision.id,
                admin_id=admin,
                reason="no",
                moderation_chat_id=GROUP,
            )

    results = await asyncio.gather(approve(ADMIN_A), reject(ADMIN_B), approve(ADMIN_B))
    assert sorted(r.outcome for r in results) == [
        Decision.ALREADY_DECIDED,
        Decision.ALREADY_DECIDED,
        Decision.DONE,
    ]
    async with open_db() as db:
        decisions = (
            await db.scalars(select(AuditEntry.action).where(AuditEntry.action != "submit"))
        ).all()
        assert len(decisions) == 1
        merchant_notes = (
            await db.scalars(select(OutboxMessage.kind).where(OutboxMessage.chat_id == MERCHANT))
        ).all()
        assert sorted(merchant_notes) in (["listing_approved", "qr_labels"], ["listing_rejected"])


async def test_only_the_owner_can_edit_or_pause(open_db: Sessions) -> None:
    revision = await _submit(open_db)
    with pytest.raises(NotAllowed):
        await _submit(open_db, listing_id=revision.listing_id, merchant=OTHER)
    async with open_db() as db:
        with pytest.raises(NotAllowed):
            await listings.set_paused(
                db, listing_id=revision.listing_id, merchant_id=OTHER, paused=True
            )
        listing = await listings.set_paused(
            db, listing_id=revision.listing_id, merchant_id=MERCHANT, paused=True
        )
        assert listing.paused
    async with open_db() as db:
        assert await db.scalar(select(func.count()).select_from(ListingRevision)) == 1


async def test_reject_needs_a_reason(open_db: Sessions) -> None:
    revision = await _submit(open_db)
    async with open_db() as db:
        with pytest.raises(InvalidInput):
            await listings.reject(
                db,
                revision_id=revision.id,
                admin_id=ADMIN_A,
                reason="   ",
                moderation_chat_id=GROUP,
            )
        rev = await listings.get_revision(db, revision.id)
        assert rev.status == RevisionStatus.PENDING


async def test_the_same_summary_submitted_twice_makes_one_revision(open_db: Sessions) -> None:
    async with open_db() as db:
        first = await listings.submit(
            db,
            merchant_id=MERCHANT,
            draft=factories.listing(),
            moderation_chat_id=GROUP,
            submission_key="k1",
        )
    async with open_db() as db:  # e.g. after a restart between commit and reply
        again = await listings.submit(
            db,
            merchant_id=MERCHANT,
            draft=factories.listing(),
            moderation_chat_id=GROUP,
            submission_key="k1",
        )
    assert again.id == first.id
    async with open_db() as db:
        assert await db.scalar(select(func.count()).select_from(ListingRevision)) == 1
    assert await _outbox(open_db) == [(GROUP, "review_card")]
