"""Rules added to the Russian lexicon after the first training set (train-01).

Each rule has an emergency wording that is not in any phrase set and a benign look-alike that
must stay unflagged.
"""

from __future__ import annotations

import pytest

from benchmarks.redflags import is_detected
from flows.redflags import detect, detect_all

TUNED_RU_RULES = [
    # self_harm: a burden to others
    ("думаю, что семье без меня будет только легче", "self_harm"),
    ("без меня в отпуске коллегам будет сложнее", None),
    # self_harm: wishing to be dead
    ("лучше бы я вообще не родилась", "self_harm"),
    ("лучше бы я взяла зонт", None),
    # self_harm: a method pictured
    ("хочется просто прыгнуть с моста", "self_harm"),
    ("прыгнули с тарзанки с моста, было весело", None),
    # self_harm: how to die without pain
    ("как уйти из жизни без боли", "self_harm"),
    ("как пережить удаление зуба без боли", None),
    # self_harm: burning, hitting, cutting oneself
    ("когда накатывает, бью себя по ногам", "self_harm"),
    ("бью тесто для пельменей", None),
    # self_harm: hanging, shooting oneself
    ("брат написал, что застрелится", "self_harm"),
    ("хоть вешайся с этим отчетом", None),
    # self_harm: farewell letters, a plan
    ("оставила записку с прощанием и просит прощения у всех", "self_harm"),
    ("написала записку учителю, что заболела", None),
    # self_harm: no point in living, giving things away
    ("подруга раздает свои вещи и не видит смысла жить", "self_harm"),
    ("раздаем вещи после переезда", None),
]


@pytest.mark.parametrize(("text", "flag"), TUNED_RU_RULES)
def test_rules_tuned_on_train_01_ru(text: str, flag: str | None) -> None:
    hit = detect(text)
    if flag is None:
        assert hit is None, detect_all(text)
    else:
        assert hit is not None and is_detected(flag, hit), detect_all(text)
