"""Model class names → Tessera categories (`car`, `truck`, `bus`, `motorcycle`, `bicycle`, `person`).

A model's class map is stored per registered model and can be edited; classes it does not
map (or maps to "") are ignored by every count. Until someone edits it, a class maps to the
category of the same name or of a common synonym (COCO, VisDrone, UA-DETRAC wording).
"""

from __future__ import annotations

from collections.abc import Mapping

from apps.traffic.choices import Category

SYNONYMS: dict[str, str] = {
    "automobile": Category.CAR,
    "vehicle": Category.CAR,
    "van": Category.CAR,
    "suv": Category.CAR,
    "taxi": Category.CAR,
    "pickup": Category.TRUCK,
    "lorry": Category.TRUCK,
    "coach": Category.BUS,
    "motorbike": Category.MOTORCYCLE,
    "motor": Category.MOTORCYCLE,
    "scooter": Category.MOTORCYCLE,
    "bike": Category.BICYCLE,
    "cyclist": Category.BICYCLE,
    "pedestrian": Category.PERSON,
    "people": Category.PERSON,
}


def default_category(class_name: str) -> str:
    """The category a class name maps to by default ("" = ignored)."""
    key = class_name.strip().lower()
    if key in Category.values:
        return key
    return str(SYNONYMS.get(key, ""))


def class_map_resolve(names: Mapping[int, str], stored: Mapping[str, str] | None) -> dict[str, str]:
    """The effective map for a model's class `names`: stored entries over defaults."""
    stored = stored or {}
    return {name: stored.get(name, default_category(name)) for name in names.values()}
