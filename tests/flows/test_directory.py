"""The referral directory (flows/directory.py) on SQLite and PostgreSQL: adding hospitals,
departments, disabling, lookups by id prefix, typed-value parsing and the audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flows import directory as d
from storage.models import AuditRecord
from storage.uow import Database

ADMIN = "admin:42"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Cardiology, Neurology", ["Cardiology", "Neurology"]),
        ("心内科，神经内科、急诊科", ["心内科", "神经内科", "急诊科"]),
        ("Surgery; surgery ;  Trauma  care\n", ["Surgery", "Trauma care"]),
        ("-", []),
        ("", []),
    ],
)
def test_departments_typed(typed: str, expected: list[str]) -> None:
    assert d.parse_departments(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("ru", "ru"), ("Chinese", "zh_Hans"), ("中文", "zh_Hans"), ("English", "en"), ("-", None)],
)
def test_locale_typed(typed: str, expected: str | None) -> None:
    assert d.parse_locale(typed) == expected


def test_bad_values() -> None:
    with pytest.raises(d.BadInput) as bad:
        d.parse_locale("Klingon")
    assert bad.value.msgid == "ref.dir.bad_locale"
    with pytest.raises(d.BadInput) as empty:
        d.clean_name("   ")
    assert empty.value.msgid == "ref.dir.empty"
    with pytest.raises(d.BadInput) as long:
        d.clean_name("x" * (d.NAME_MAX + 1))
    assert long.value.params == {"max": d.NAME_MAX}
    with pytest.raises(d.BadInput):
        d.parse_departments(", ".join(f"Dept {i}" for i in range(d.MAX_DEPARTMENTS + 1)))


async def test_directory_lifecycle(db: Database) -> None:
    async with db.uow() as uow:
        city = await d.add(
            uow, ADMIN, "  City General   Hospital ", city="Riverton", locale="ru",
            departments="Cardiology, Neurology",
        )  # fmt: skip
        other = await d.add(uow, ADMIN, "Amberfield Clinic")
        await uow.commit()
    async with db.uow() as uow:
        found = await d.find(uow, city.id[:8].upper())
        assert found.name == "City General Hospital"
        assert d.view(found).departments == ("Cardiology", "Neurology")
        assert found.locale == "ru" and found.city == "Riverton"
        assert await d.add_department(uow, ADMIN, found, "Oncology") is True
        assert await d.add_department(uow, ADMIN, found, "oncology") is False
        assert await d.remove_department(uow, ADMIN, found, "NEUROLOGY") is True
        assert await d.remove_department(uow, ADMIN, found, "Dermatology") is False
        assert await d.set_active(uow, ADMIN, found, False) is True
        assert await d.set_active(uow, ADMIN, found, False) is False
        await uow.commit()
    async with db.uow() as uow:
        listed = [h.id for h in await d.hospitals(uow)]
        assert listed == [other.id]
        everything = [h.id for h in await d.hospitals(uow, include_disabled=True)]
        assert everything == [other.id, city.id]
        again = await d.get(uow, city.id)
        assert again is not None and d.departments_of(again) == ["Cardiology", "Oncology"]
        assert await d.get_active(uow, city.id) is None
        assert await d.get_active(uow, other.id) is not None
        with pytest.raises(d.NotFound):
            await d.find(uow, "abc")
        with pytest.raises(d.NotFound):
            await d.find(uow, "ffffffffff")
        actions = [
            (r.action, r.actor)
            for r in await uow.session.scalars(
                select(AuditRecord).where(AuditRecord.record_type == d.TABLE)
            )
        ]
        assert sorted(a for a, _ in actions) == sorted(
            [
                "hospital.add",
                "hospital.add",
                "hospital.department.add",
                "hospital.department.remove",
                "hospital.disable",
            ]
        )
        assert {actor for _, actor in actions} == {ADMIN}
