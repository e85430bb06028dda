"""Test data: complete listing drafts."""

from services.listing_draft import ChargerDraft, ListingDraft


def charger(**overrides: object) -> ChargerDraft:
    values: dict[str, object] = {
        "method": "ac_slow",
        "device_kinds": ["e_bike"],
        "device_models": "48V batteries",
        "supply_kind": "Smart socket",
        "supply_model": "Sonoff S31",
        "hours": {str(d): [["08:00", "22:00"]] for d in range(7)},
        "price_unit": "hour",
        "price": "2.50",
        "currency": "CNY",
        "plug_driver": "tasmota",
        "plug_id": "tasmota_A1",
        "paired_at": "2026-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    return ChargerDraft(**values)  # type: ignore[arg-type]


def listing(chargers: int = 2, **overrides: object) -> ListingDraft:
    values: dict[str, object] = {
        "contact_phone": "+8613800000000",
        "shop_name": "Volt Café",
        "photo_file_id": "photo-1",
        "area_m2": 45.0,
        "latitude": 31.2304,
        "longitude": 121.4737,
        "address": "1 Nanjing Rd",
        "chargers": [charger(plug_id=f"plug_{i}") for i in range(chargers)],
    }
    values.update(overrides)
    return ListingDraft(**values)  # type: ignore[arg-type]
