"""Rules added to the Simplified Chinese free-text reading after prefill rounds 05 and 06.

Each rule in flows/questionnaires/understand.toml (comments "prefill-05: ..." and, for misses
of earlier rounds fixed at the same time, "prefill-04: ...") has a wording that is in no
prefill or red-flag set and a look-alike, called the way ``test_general_rules`` in
``test_understand.py`` calls ``understand``.
"""

from __future__ import annotations

import pytest

from flows.understand import understand

ROUND_PREFILL_05_ZH_RULES = [
    # aches all over with a fever are the fever's company; a named joint aching is not
    ("发烧39度 全身关节都酸疼", "category", "fever"),
    ("膝关节酸疼一个月了", "category", "back_joint"),
    # gout beside a check-up is a review; a gout flare alone is a joint complaint
    ("痛风好几年了 想来复查一下", "category", "chronic_review"),
    ("痛风又犯了 走不了路", "category", "back_joint"),
    # a cold remedy's name is no cold
    ("低烧37.5 吃了两包感冒冲剂", "category", "fever"),
    ("感冒三天了 吃了感冒药", "category", "cough_cold"),
    # an ear that aches in any way
    ("左耳刺痛了一上午", "category", "sore_throat_ear"),
    ("戴耳环过敏 耳垂起疹子", "category", "skin"),
    # "那一块" is a place on the body; "酸疼", "刺疼" are kinds of pain
    ("胸口这一块刺疼", "category", "chest_pain"),
    ("后背那一块酸疼", "category", "back_joint"),
    # a urine test with blood or white cells; pain on one side of the back running down
    ("化验单上尿隐血两个加号", "category", "urinary"),
    ("血常规白细胞偏高", "category", "other"),
    ("右边腰疼得厉害 一阵阵往小肚子放射", "category", "urinary"),
    ("右边腰疼 弯腰的时候更疼", "category", "back_joint"),
    # specks or flashes in the sight, short sight
    ("视野里有好多亮点在闪", "category", "eye"),
    ("近视加深了想配眼镜", "category", "eye"),
    # asking for a thyroid test is no thyroid disease
    ("老是没劲 想查查甲状腺", "category", "other"),
    ("甲状腺结节要复查", "category", "chronic_review"),
    # a shingles vaccine is no shingles
    ("带状疱疹疫苗要打几针", "category", "other"),
    ("嘴角起疱疹了", "category", "skin"),
    # chapped skin is no cut
    ("手指冬天皴口子了 很痒", "category", "skin"),
    ("切菜切了个口子", "category", "injury"),
    # a toe kicked against something; kicking off the covers is not
    ("小脚趾踢到床脚了 肿了", "category", "injury"),
    ("晚上踢被子着凉了", "category", "cough_cold"),
    # a stent years ago is history; how long one sleeps or paints is no onset
    ("两年前装了支架 这三天又胸闷", "duration", "days_1_3"),
    ("三年前胸口疼过一次", "duration", "months"),
    ("睡足九个小时还是困 快两周了", "duration", "weeks_1_4"),
    ("头疼了八个小时", "duration", "hours"),
    ("扫了一下午地 腰疼三天了", "duration", "days_1_3"),
    ("腰疼了一下午", "duration", "today"),
    # something done to one at a time of today, not a habit
    ("中午被鱼刺卡到嗓子", "duration", "today"),
    ("每天早上被闹钟吵醒就头疼", "duration", None),
    # a rating on a 0-10 or 1-10 scale named first
    ("嗓子疼 0到10的话差不多7", "severity", 7),
    ("腰疼 一到十的话算五", "severity", 5),
    ("腰疼 1-10之间大概6", "severity", 6),
    ("1到10号一直在出差 头疼", "severity", None),
    # the eldest or the second at home is a child
    ("我家二宝发烧38度", "category", "child_illness"),
    ("我们老大让我加班到头疼", "category", "headache"),
]


@pytest.mark.parametrize(("text", "field", "expected"), ROUND_PREFILL_05_ZH_RULES)
def test_rules_added_after_prefill_05_zh(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected


ROUND_PREFILL_06_ZH_RULES = [
    # a time of day, a few days ago or hours of lying awake give way to how long it has been,
    # said later as a clause of its own ending in 了; one that belongs to another clause does not
    ("手腕早上起来特别疼 差不多两个月了", "duration", "months"),
    ("早上起来脖子僵了 转头疼", "duration", "today"),
    ("前两天崴了脚 现在还肿 快一周了", "duration", "days_4_7"),
    ("前两天崴了脚 现在还肿", "duration", "days_1_3"),
    ("晚上要翻来覆去两个小时才能入睡 快半年了", "duration", "months"),
    ("失眠两个小时了 还是睡不着", "duration", "hours"),
    ("下午开始头疼 咳嗽一周了", "duration", "today"),
    ("早上起来头疼 已经两个小时了", "duration", "hours"),
    # a fever said as how long it has burned; heartburn is no fever
    ("烧了三天了 一直不退", "category", "fever"),
    ("烧心三天了", "category", "abdominal_pain"),
    # a cold the people around the writer all have is not the writer's; the whole family's is
    ("发热38度5 班上好多同学都感冒了", "category", "fever"),
    ("我们全家都感冒了 我还发烧38度", "category", "cough_cold"),
    # a sudden bout of nerves with a racing heart; a sudden racing heart with chest pain
    ("考试前突然很慌 手心出汗 心跳加速", "category", "mental_health"),
    ("突然心慌 心跳加速 胸口疼", "category", "chest_pain"),
    ("突然心跳很快 有点紧张", "category", "chest_pain"),
]


@pytest.mark.parametrize(("text", "field", "expected"), ROUND_PREFILL_06_ZH_RULES)
def test_rules_added_after_prefill_06_zh(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected


ROUND_PREFILL_07_ZH_RULES = [
    # the chest muscles aching is chest pain; a strain only guessed at is no injury, a real one is
    ("打完羽毛球 胸前的肌肉有点疼", "category", "chest_pain"),
    ("做俯卧撑以后胸口右边一碰就疼 估计是拉伤了", "category", "chest_pain"),
    ("打球的时候大腿拉伤了", "category", "injury"),
    # a wound that does not heal is a skin complaint; a fresh one is an injury
    ("小腿上的伤口两个星期了老不好", "category", "skin"),
    ("切菜切到手 伤口挺深的", "category", "injury"),
    # a refill asked for after the medicine's name
    ("甲钴胺还能续开吗 手还是麻", "category", "chronic_review"),
    ("痛风 大脚趾肿得厉害 疼", "category", "back_joint"),
    # last night gives way to hours said later; a spell's length is no onset
    ("昨天晚上吃坏了肚子 拉了五六个小时了", "duration", "hours"),
    ("昨晚开始头疼", "duration", "days_1_3"),
    ("今天下午站起来眼前一黑 持续一分钟左右", "duration", "today"),
    ("胸口疼 持续十分钟了", "duration", "minutes"),
    # a medicine taken is not the cause that dates the complaint; a meal can be
    ("前天开始咳嗽38.5 吃了布洛芬退了 今天又咳得厉害", "duration", "days_1_3"),
    # a long-term condition's years are history, the recent days count
    ("糖尿病八年了 这三天血糖一直在15以上", "duration", "days_1_3"),
    ("血糖高了八年了", "duration", "months"),
]


@pytest.mark.parametrize(("text", "field", "expected"), ROUND_PREFILL_07_ZH_RULES)
def test_rules_added_after_prefill_07_zh(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected
