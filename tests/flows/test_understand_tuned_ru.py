"""Rules added to the Russian free-text prefill after prefill round 05.

Each rule has a wording that is not in any prefill set and a look-alike it must leave alone,
checked the way tests/flows/test_understand.py's ``test_general_rules`` checks its cases.
"""

from __future__ import annotations

import pytest

from flows.understand import understand

TUNED_RU_PREFILL = [
    # severity: a symptom word before a clause-ending "на N" ("зуд на 7,")
    ("жжение на 6, с утра", "severity", 6),
    ("тошнота на 3. что выпить?", "severity", 3),
    ("зуд на 2 дня утих, потом вернулся", "severity", None),
    # severity: "в среднем на N" (on average)
    ("спина ноет, в среднем на 4", "severity", 4),
    ("в среднем на 3 кг похудела за месяц", "severity", None),
    # severity: "к", "до", "с" are whole words, not the end of "стресс"
    ("работа завал, стресс на 9", "severity", 9),
    ("встала на 5 минут раньше", "severity", None),
    # severity: a ten-point scale named after or before the number
    ("в животе режет, на 7 по десятибалльной шкале", "severity", 7),
    ("по десятибалльной шкале где-то 3", "severity", 3),
    ("по десятибалльной шкале не знаю как оценить", "severity", None),
    # onset: a part of the day gives way to "со вчера" said after it
    ("утром нос заложен, со вчерашнего вечера", "duration", "days_1_3"),
    ("утром поднялась температура", "duration", "today"),
    # onset: not a reading taken in the morning
    ("давление утром 150, уже неделю", "duration", "days_4_7"),
    ("утром давление подскочило", "duration", "today"),
    # onset: began after a meal
    ("после ужина началась изжога", "duration", "today"),
    ("изжога всегда после ужина", "duration", None),
    # onset: a time of the night or morning is no duration
    ("встаю в 2-3 ночи в туалет, уже недели три", "duration", "weeks_1_4"),
    ("просыпаюсь в 5 утра с болью в спине", "duration", None),
    # onset: a long-standing condition and its age is history
    ("гипертония 10 лет, давление скачет последние 5 дней", "duration", "days_4_7"),
    ("мигрень третий день", "duration", "days_1_3"),
    # category: the back first, then lifting a child, is the writer's back
    ("поясница болит с тех пор, как подняла дочку из кроватки", "category", "back_joint"),
    ("у дочки болит спина после того как она носила рюкзак", "category", "child_illness"),
    # category: pain spreading to the jaw beside an ear or throat complaint is that complaint;
    # chest pain named in the chest still wins
    ("ухо болит и отдает в нижнюю челюсть", "category", "sore_throat_ear"),
    ("горло болит, отдает в челюсть", "category", "sore_throat_ear"),
    ("давит в груди, отдает в челюсть, и ухо заложило", "category", "chest_pain"),
    ("давит в груди, отдает в челюсть", "category", "chest_pain"),
    # category: loin pain on one side with a urinary complaint is the urinary complaint
    ("поясница ноет справа, писаю часто", "category", "urinary"),
    ("справа в пояснице болит, в моче кровь", "category", "urinary"),
    ("болит поясница слева, жжение при мочеиспускании", "category", "urinary"),
    ("болит поясница слева третий день", "category", "back_joint"),
    ("боль в пояснице справа после тренировки", "category", "back_joint"),
    ("справа колено болит", "category", "back_joint"),
    # category: a wound or ulcer that does not heal is a skin complaint; a fresh one an injury
    ("язва на ноге второй месяц не заживает", "category", "skin"),
    ("ранка на пальце никак не затягивается", "category", "skin"),
    ("незаживающая рана на пятке у папы", "category", "skin"),
    ("вчера порезал палец, рана глубокая", "category", "injury"),
    ("упал, рана на лбу", "category", "injury"),
    ("язва желудка не заживает, пью омез", "category", "abdominal_pain"),
    # category: the contraceptive pill ("ок"), a missed one, extra protection
    ("забыла выпить таблетку ок вчера", "category", "womens_health"),
    ("пью ок полгода, можно ли бросить", "category", "womens_health"),
    ("нужна ли дополнительная защита, если рвало после таблетки", "category", "womens_health"),
    ("выпила таблетку, ок, спасибо", "category", "other"),
    ("забыла выпить таблетку от давления", "category", "chronic_review"),
    ("ок, понятно", "category", None),
]


@pytest.mark.parametrize(("text", "field", "expected"), TUNED_RU_PREFILL)
def test_prefill_rules_tuned_on_prefill_05_ru(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected


# round prefill-06: ratings said in ways the earlier rules missed, each family with a wording not
# in any set and a look-alike that is no rating.
PREFILL_06_RU = [
    # the points word before "на N" ("балла на 3", "баллов на 4 оценю")
    ("нос заложен, балла на 4, капли не помогают", "severity", 4),
    ("спина ноет, баллов так на 6 оценю", "severity", 6),
    ("на экзамене баллов на 100 не хватило, голова кружится", "severity", None),
    # a number or a number noun then the scale, no "на" ("пятерка по шкале")
    ("колено ноет, семерка по шкале, хуже на лестнице", "severity", 7),
    ("зуб болит, 6 по десятибалльной", "severity", 6),
    # "на N" closing any clause after a symptom noun or any word ("резь на 6.", "все равно на 7,")
    ("ломота в суставах на 5, температуры нет", "severity", 5),
    ("чуть полегчало, но все равно на 6. что делать?", "severity", 6),
    ("записался на 5, колено болит", "severity", None),
    ("в ночь с 3 на 4, живот крутит", "severity", None),
    ("больничный на 7, кашель сильный", "severity", None),
]


@pytest.mark.parametrize(("text", "field", "expected"), PREFILL_06_RU)
def test_prefill_rules_tuned_on_prefill_06_ru(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected


# round prefill-07: each family added after prefill-07, with a wording not in any set and a
# look-alike it must leave alone.
PREFILL_07_RU = [
    # category: everything swam (dizziness)
    ("поднялась с дивана и комната поплыла, давление 100 на 60", "category", "dizziness"),
    ("давление 100 на 60, хочу проверить щитовидку", "category", "chronic_review"),
    # category: a sting at the end of passing water; not "в конце дня"
    ("жжет в самом конце, когда хожу в туалет, третий день", "category", "urinary"),
    ("в конце дня отекают ноги", "category", "other"),
    # category: a cramp in the calf, a knotted muscle
    ("ночью свело ногу, теперь икра ноет", "category", "back_joint"),
    # category: a fever that will not come down is the complaint
    ("жар уже третий день не сбивается, и голова болит", "category", "fever"),
    ("голова болит, температура 37", "category", "headache"),
    # category: a chest sore from coughing is the cough
    ("болит грудь от кашля, кашляю пятый день", "category", "cough_cold"),
    ("болит грудь при вдохе, кашля нет", "category", "chest_pain"),
    # category: a wheeze on breathing out or a reliever needed more often (asthma getting worse)
    ("астма давно, а со вчера свистит при дыхании", "category", "breathing"),
    ("у меня астма, хочу продлить рецепт на ингалятор", "category", "chronic_review"),
    # onset: a bare unit then a range ("уже неделю-две")
    ("уже неделю-две ноет поясница", "duration", "weeks_1_4"),
    ("уже неделю ноет поясница", "duration", "days_4_7"),
    # onset: a condition then its age, the unit first ("гипертония лет 10")
    ("диабет лет 5, последние 3 дня сахар 14", "duration", "days_1_3"),
    # severity: a number noun closing a clause; "на N" then a hedge closing the clause
    ("поясница ноет, терпимо, троечка", "severity", 3),
    ("сын получил пятерку по математике, голова болит", "severity", None),
    ("горло болит, сейчас на 6 примерно.", "severity", 6),
    ("сейчас на 6 примерно дней уехали, горло болит", "severity", None),
    # "на N" after a unit of time is "about N seconds/minutes", not a rating
    ("шатает при ходьбе, в глазах темнеет минут на 5", "severity", None),
    ("шатает при ходьбе, все равно на 5", "severity", 5),
]


@pytest.mark.parametrize(("text", "field", "expected"), PREFILL_07_RU)
def test_prefill_rules_tuned_on_prefill_07_ru(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected
