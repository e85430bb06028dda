"""One plug, one charger (issue #12): a (driver, plug id) belongs to one active
charger of one listing. Refused at submit, at approval (also when two approvals
race) and by the database's unique index; an edit keeps its own plugs and a
removed charger frees its plug. On SQLite and PostgreSQL."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
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
from models.base import utcnow
from services import listings
from services.errors import InvalidInput
from services.listing_draft import ListingDraft
from services.listings import Decision, PlugConflict
from services.tx import transaction
from tests import factories

A, B, ADMIN_1, ADMIN_2 = 1001, 1002, 901, 902
GROUP = -100500

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(autouse=True)
async def people(open_db: Sessions) -> None:
    async with open_db() as db:
        db.add_all([User(id=i, first_name=f"u{i}") for i in (A, B)])
        await db.commit()


def shop(*plugs: str, driver: str = "tasmota") -> ListingDraft:
    result = factories.listing(chargers=len(plugs))
    for charger, plug in zip(result.chargers, plugs, strict=True):
        charger.plug_driver, charger.plug_id = driver, plug
    return result


async def submit(
    open_db: Sessions, merchant: int, data: ListingDraft, listing_id: int | None = None
) -> ListingRevision:
    async with open_db() as db:
        return await listings.submit(
            db,
            merchant_id=merchant,
            draft=data,
            moderation_chat_id=GROUP,
            listing_id=listing_id,
        )


async def approve(open_db: Sessions, revision_id: int, admin: int = ADMIN_1) -> Decision:
    async with open_db() as db:
        result = await listings.approve(
            db, revision_id=revision_id, admin_id=admin, moderation_chat_id=GROUP
        )
    return result.outcome


async def active_plugs(open_db: Sessions) -> list[tuple[int, str, str]]:
    async with open_db() as db:
        rows = await db.execute(
            select(Charger.listing_id, Charger.plug_driver, Charger.plug_id)
            .where(Charger.active.is_(True))
            .order_by(Charger.listing_id, Charger.position)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def count(open_db: Sessions, model: Any) -> int:
    async with open_db() as db:
        return await db.scalar(select(func.count()).select_from(model)) or 0


async def status_of(open_db: Sessions, revision_id: int) -> RevisionStatus:
    async with open_db() as db:
        revision = await db.get(ListingRevision, revision_id)
        assert revision is not None
        return revision.status


async def test_submit_refuses_another_listings_plug(open_db: Sessions) -> None:
    first = await submit(open_db, A, shop("tasmota_A1", "tasmota_A2"))
    assert await approve(open_db, first.id) == Decision.DONE
    revisions, outbox = await count(open_db, ListingRevision), await count(open_db, OutboxMessage)

    with pytest.raises(InvalidInput) as error:
        await submit(open_db, B, shop("tasmota_B1", "tasmota_A2"))
    assert error.value.key == "err.plug_taken"
    assert error.value.params == {"n": 2, "plug": "tasmota_A2"}
    # nothing written: no listing, no revision, no card
    assert await count(open_db, Listing) == 1
    assert await count(open_db, ListingRevision) == revisions
    assert await count(open_db, OutboxMessage) == outbox

    # topics are case-sensitive in MQTT, and the other driver is another topic
    await submit(open_db, B, shop("tasmota_a2"))
    theirs = await submit(open_db, B, shop("tasmota_A2", driver="shelly"))
    assert await approve(open_db, theirs.id) == Decision.DONE

    # an edit of B's approved listing may not take A's plug either
    async with open_db() as db:
        latest = (await listings.owned_overview(db, theirs.listing_id, B)).latest
    edit = ListingDraft.from_dict(latest.data)
    edit.chargers[0].plug_driver = "tasmota"
    with pytest.raises(InvalidInput) as error:
        await submit(open_db, B, edit, listing_id=theirs.listing_id)
    assert error.value.key == "err.plug_taken"
    async with open_db() as db:
        listing = await db.get(Listing, theirs.listing_id)
        assert listing is not None and listing.status == ListingStatus.APPROVED


async def test_one_draft_cannot_name_a_plug_twice(open_db: Sessions) -> None:
    with pytest.raises(InvalidInput) as error:
        await submit(open_db, A, shop("tasmota_A1", "tasmota_A2", "tasmota_A1"))
    assert error.value.key == "err.plug_twice"
    assert error.value.params == {"n": 1, "other": 3, "plug": "tasmota_A1"}
    assert await count(open_db, Listing) == 0


async def test_an_edit_keeps_its_own_plugs_and_may_move_them(open_db: Sessions) -> None:
    first = await submit(open_db, A, shop("tasmota_A1", "tasmota_A2"))
    await approve(open_db, first.id)
    async with open_db() as db:
        latest = (await listings.owned_overview(db, first.listing_id, A)).latest
    edit = ListingDraft.from_dict(latest.data)
    edit.shop_name = "Volt Café 2"  # same plugs: no conflict with itself
    second = await submit(open_db, A, edit, listing_id=first.listing_id)
    assert await approve(open_db, second.id) == Decision.DONE

    # the two chargers swap plugs: the unique index never sees both on one plug
    one, two = edit.chargers
    one.plug_id, two.plug_id = two.plug_id, one.plug_id
    third = await submit(open_db, A, edit, listing_id=first.listing_id)
    assert await approve(open_db, third.id) == Decision.DONE
    listing_id = first.listing_id
    assert await active_plugs(open_db) == [
        (listing_id, "tasmota", "tasmota_A2"),
        (listing_id, "tasmota", "tasmota_A1"),
    ]


async def test_a_removed_charger_frees_its_plug(open_db: Sessions) -> None:
    first = await submit(open_db, A, shop("tasmota_A1", "tasmota_A2"))
    await approve(open_db, first.id)
    async with open_db() as db:
        latest = (await listings.owned_overview(db, first.listing_id, A)).latest
    edit = ListingDraft.from_dict(latest.data)
    # charger 2 is removed and a new charger takes its plug, in one version
    edit.chargers = [edit.chargers[0], factories.charger(plug_id="tasmota_A2")]
    second = await submit(open_db, A, edit, listing_id=first.listing_id)
    assert await approve(open_db, second.id) == Decision.DONE
    async with open_db() as db:
        chargers = (await db.scalars(select(Charger).order_by(Charger.id))).all()
        assert [(c.plug_id, c.active) for c in chargers] == [
            ("tasmota_A1", True),
            ("tasmota_A2", False),
            ("tasmota_A2", True),
        ]
    # the next edit drops that charger: the plug is free for another merchant
    edit.chargers = edit.chargers[:1]
    third = await submit(open_db, A, edit, listing_id=first.listing_id)
    await approve(open_db, third.id)
    other = await submit(open_db, B, shop("tasmota_A2"))
    assert await approve(open_db, other.id) == Decision.DONE
    assert await active_plugs(open_db) == [
        (first.listing_id, "tasmota", "tasmota_A1"),
        (other.listing_id, "tasmota", "tasmota_A2"),
    ]


async def test_approval_refuses_a_plug_approved_meanwhile(open_db: Sessions) -> None:
    mine = await submit(open_db, A, shop("tasmota_A1"))
    theirs = await submit(open_db, B, shop("tasmota_B1", "tasmota_A1"))
    async with open_db() as db:  # the card warns while both wait
        revision = await listings.get_revision(db, theirs.id)
        assert await listings.revision_plug_conflicts(db, revision) == [
            PlugConflict(2, "tasmota", "tasmota_A1", mine.listing_id, public=False)
        ]
    before = await count(open_db, OutboxMessage)
    assert await approve(open_db, mine.id) == Decision.DONE
    async with open_db() as db:  # approving one refreshes the other's card
        kinds = (
            await db.execute(
                select(OutboxMessage.kind, OutboxMessage.payload).order_by(OutboxMessage.id)
            )
        ).all()[before:]
        assert ("review_card_refresh", {"revision_id": theirs.id}) in [tuple(k) for k in kinds]
        revision = await listings.get_revision(db, theirs.id)
        assert await listings.revision_plug_conflicts(db, revision) == [
            PlugConflict(2, "tasmota", "tasmota_A1", mine.listing_id, public=True)
        ]
    audit, outbox = await count(open_db, AuditEntry), await count(open_db, OutboxMessage)

    with pytest.raises(InvalidInput) as error:
        await approve(open_db, theirs.id, ADMIN_2)
    assert error.value.key == "err.plug_taken_review"
    assert error.value.params == {"n": 2, "plug": "tasmota_A1", "listing": mine.listing_id}
    # nothing half-done: still pending, nothing public, no audit, no message
    assert await status_of(open_db, theirs.id) == RevisionStatus.PENDING
    async with open_db() as db:
        listing = await db.get(Listing, theirs.listing_id)
        assert listing is not None
        assert listing.status == ListingStatus.PENDING and not listing.published
    assert await count(open_db, AuditEntry) == audit
    assert await count(open_db, OutboxMessage) == outbox
    assert await active_plugs(open_db) == [(mine.listing_id, "tasmota", "tasmota_A1")]
    # the admin can still reject it, and the merchant is told
    async with open_db() as db:
        result = await listings.reject(
            db,
            revision_id=theirs.id,
            admin_id=ADMIN_2,
            reason=listings.preset_reason("duplicate"),
            moderation_chat_id=GROUP,
        )
    assert result.outcome == Decision.DONE


async def test_the_database_refuses_what_the_check_missed(
    open_db: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unique index is the last guard: with the check blind (as it is for a
    transaction that raced another's commit on PostgreSQL), the approval still
    fails whole and says why."""
    mine = await submit(open_db, A, shop("tasmota_A1"))
    theirs = await submit(open_db, B, shop("tasmota_A1"))
    await approve(open_db, mine.id)
    real = listings.plug_conflicts
    calls: list[int] = []

    async def blind_once(*args: Any, **kwargs: Any) -> list[PlugConflict]:
        calls.append(1)
        return [] if len(calls) == 1 else await real(*args, **kwargs)

    monkeypatch.setattr(listings, "plug_conflicts", blind_once)
    with pytest.raises(InvalidInput) as error:
        await approve(open_db, theirs.id, ADMIN_2)
    assert error.value.key == "err.plug_taken_review"
    assert await status_of(open_db, theirs.id) == RevisionStatus.PENDING
    assert await active_plugs(open_db) == [(mine.listing_id, "tasmota", "tasmota_A1")]


async def test_two_approvals_racing_for_one_plug(
    open_db: Sessions, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await submit(open_db, A, shop("tasmota_X"))
    second = await submit(open_db, B, shop("tasmota_Y", "tasmota_X"))
    checks: list[int] = []
    if engine.dialect.name == "postgresql":
        # both pass the check before either writes: only the index can decide
        both_checked = asyncio.Barrier(2)
        real = listings.plug_conflicts

        async def checked(*args: Any, **kwargs: Any) -> list[PlugConflict]:
            found = await real(*args, **kwargs)
            checks.append(1)
            if len(checks) <= 2:  # the two approvals' checks, not the loser's re-check
                await asyncio.wait_for(both_checked.wait(), 10)
            return found

        monkeypatch.setattr(listings, "plug_conflicts", checked)
    # on SQLite the second approval's transaction starts after the first's commit

    async def attempt(revision_id: int, admin: int) -> Decision | str:
        try:
            return await approve(open_db, revision_id, admin)
        except InvalidInput as error:
            return error.key

    outcomes = await asyncio.gather(attempt(first.id, ADMIN_1), attempt(second.id, ADMIN_2))
    assert sorted(map(str, outcomes)) == ["done", "err.plug_taken_review"], outcomes
    winner, loser = (first, second) if outcomes[0] == Decision.DONE else (second, first)
    assert await status_of(open_db, winner.id) == RevisionStatus.APPROVED
    assert await status_of(open_db, loser.id) == RevisionStatus.PENDING
    plugs = await active_plugs(open_db)
    assert [p for p in plugs if p[2] == "tasmota_X"] == [
        (winner.listing_id, "tasmota", "tasmota_X")
    ]
    assert all(p[0] == winner.listing_id for p in plugs)  # nothing of the loser is public
    if engine.dialect.name == "postgresql":  # the loser's write met the index, then re-checked
        assert len(checks) == 3


async def test_the_wizard_step_check(open_db: Sessions) -> None:
    first = await submit(open_db, A, shop("tasmota_A1"))
    await approve(open_db, first.id)
    typing = shop("tasmota_B1", "tasmota_B1")
    async with open_db() as db:
        with pytest.raises(InvalidInput) as error:
            await listings.check_plug(db, typing, 1)
        assert (error.value.key, error.value.params) == ("err.plug_twice_step", {"other": 1})
        typing.chargers[1].plug_id = "tasmota_A1"
        with pytest.raises(InvalidInput) as error:
            await listings.check_plug(db, typing, 1)
        assert error.value.key == "err.plug_taken_step"
        # the owner editing that listing keeps it
        await listings.check_plug(db, typing, 1, listing_id=first.listing_id)
        typing.chargers[1].plug_id = "tasmota_B2"
        await listings.check_plug(db, typing, 1)


def _charger_row(listing_id: int, plug: str, active: bool = True) -> dict[str, Any]:
    return {
        "listing_id": listing_id,
        "position": 0,
        "active": active,
        "method": "socket",
        "device_kinds": ["e_bike"],
        "device_models": "",
        "supply_kind": "socket",
        "supply_model": "S31",
        "hours": {},
        "price_minor": 100,
        "price_unit": "hour",
        "currency": "CNY",
        "plug_driver": "tasmota",
        "plug_id": plug,
        "qr_token": f"token-{plug}-{active}-{listing_id}",
        "created_at": utcnow(),
    }


async def test_the_unique_index_covers_active_chargers_only(open_db: Sessions) -> None:
    async with open_db() as db, transaction(db):
        first = Listing(merchant_id=A, status=ListingStatus.APPROVED)
        second = Listing(merchant_id=B, status=ListingStatus.APPROVED)
        db.add_all([first, second])
        await db.flush()
        ids = first.id, second.id
        await db.execute(insert(Charger), [_charger_row(ids[0], "P")])
        # an inactive charger keeps its old plug without holding it
        await db.execute(insert(Charger), [_charger_row(ids[1], "P", active=False)])
    with pytest.raises(IntegrityError):
        async with open_db() as db, transaction(db):
            await db.execute(insert(Charger), [_charger_row(ids[1], "P")])
    async with open_db() as db, transaction(db):
        await db.execute(update(Charger).values(active=False))
        await db.execute(insert(Charger), [_charger_row(ids[1], "P")])
