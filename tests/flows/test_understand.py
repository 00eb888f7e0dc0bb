"""Free-text understanding: what a first message says (category, duration, severity, who, age)
in English, Chinese and Russian; the typed-answer parsers; health and small talk; the data
loader; robustness on arbitrary and adversarial text. All example texts are made up."""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows import understand as u
from flows.questionnaire import INTAKE_FILE
from flows.questionnaire import load as load_questionnaire
from flows.understand import (
    CATEGORY_IDS,
    DURATION_IDS,
    UnderstandDataError,
    Understood,
    health_related,
    parse_duration,
    parse_severity_phrase,
    small_talk,
    understand,
)


def _u(
    category: str | None = None,
    duration: str | None = None,
    severity: int | None = None,
    subject: str | None = None,
    age: float | None = None,
) -> Understood:
    return Understood(category, duration, severity, subject, age)


NOTHING = _u()

# --- understand(): English --------------------------------------------------------------------

ENGLISH = [
    # several complaints: an accompanying symptom (fever) gives way; otherwise the first named
    ("cough and fever for three days", _u("cough_cold", "days_1_3")),
    ("sore throat and temperature 38", _u("sore_throat_ear")),
    ("headache and dizzy", _u("headache")),
    ("fever and body aches for 2 days", _u("fever", "days_1_3")),
    ("dizzy since lunch and some chest pain", _u("chest_pain", "today")),
    ("hit my head yesterday, now headache 6/10", _u("injury", "days_1_3", 6, "self")),
    ("my asthma is playing up and I'm wheezing", _u("breathing", subject="self")),
    ("I have diabetes and my feet are numb", _u("chronic_review", subject="self")),
    # categories
    ("need a repeat prescription for my metformin", _u("chronic_review", subject="self")),
    ("my back hurts when I bend, started a week ago", _u("back_joint", "days_4_7", None, "self")),
    ("I fell off my bike and hurt my knee", _u("injury", subject="self")),
    ("burning when I pee and going a lot", _u("urinary", subject="self")),
    ("something in my eye, it is red and watering", _u("eye", subject="self")),
    ("my wife has had a rash on her arm for two weeks", _u("skin", "weeks_1_4", None, "other")),
    ("heavy periods for more than a month", _u("womens_health", "months")),
    (
        "I've been feeling really down and can't sleep for a month",
        _u("mental_health", "weeks_1_4", None, "self"),
    ),
    (
        "stomach ache and vomiting since last night, 8 out of 10",
        _u("abdominal_pain", "days_1_3", 8),
    ),
    # negation
    ("no fever but a bad cough", _u("cough_cold")),
    ("not coughing, just a sore throat", _u("sore_throat_ear")),
    ("I don't have a fever", _u("other", subject="self")),
    ("I don't think it's a fever but my head hurts", _u("headache", subject="self")),
    ("throat isn't sore, just a cough", _u("cough_cold")),
    # durations in context
    ("chest pain and short of breath since this morning", _u("chest_pain", "today")),
    ("twice a day I get a headache for about 2 hours", _u("headache", "hours", None, "self")),
    (
        "I was diagnosed with hypertension 5 years ago, my bp has been high for 3 days",
        _u("chronic_review", "days_1_3", None, "self"),
    ),
    # who and how old
    ("my 7 week old has a fever", _u("child_illness", subject="other", age=7 / 52)),
    (
        "my 5-year-old son has had diarrhoea for 2 days",
        _u("child_illness", "days_1_3", None, "other", 5.0),
    ),
    ("my son is 16 and has a headache", _u("headache", subject="other", age=16.0)),
    ("my daughter has a sore throat", _u("child_illness", subject="other")),
    (
        "I'm 30 and my baby is 3 months old, she has a cough",
        _u("child_illness", subject="other", age=0.25),
    ),
    (
        "my mum is 80 and she's been dizzy for a few days",
        _u("dizziness", "days_1_3", None, "other", 80.0),
    ),
    (
        "I'm 45, my blood pressure is 160/100 this morning",
        _u("chronic_review", "today", None, "self", 45.0),
    ),
    ("since having my baby I've been very depressed", _u("mental_health", subject="self")),
    ("my husband says I snore and I'm tired all the time", _u("other", subject="self")),
    ("baby not feeding well and very sleepy", _u("child_illness", subject="other")),
    # an injury is no illness, even a child's
    (
        "my daughter tripped on the stairs and her ankle is swollen",
        _u("injury", subject="other"),
    ),
    # "also" makes a complaint secondary, "mostly" the main one; never for chest pain
    ("temperature since last night, also a headache", _u("fever", "days_1_3")),
    ("headache and a temperature, but mostly the fever", _u("fever")),
    ("cough for a week, also my chest hurts", _u("chest_pain", "days_4_7", None, "self")),
    # wordings: no determiner, two place words, "pass water", "mood has been low"
    ("sharp pain in chest for 20 minutes", _u("chest_pain", "minutes")),
    ("ache on the right side of my chest", _u("chest_pain", subject="self")),
    ("it burns when I pass water", _u("urinary", subject="self")),
    ("my mood has been really low lately", _u("mental_health", subject="self")),
    ("cold for a fortnight", _u("cough_cold", "weeks_1_4")),
    # a pregnancy's weeks, screen time and sleep are not how long it has lasted
    ("I'm 14 weeks pregnant and have heartburn", _u("womens_health", subject="self")),
    ("sore eyes from 9 hours on the computer", _u("eye")),
    ("headache, only had 4 hours sleep", _u("headache")),
    # a long-standing condition's age is history when the complaint's own time is stated
    (
        "I've had asthma for 20 years, wheezy for the last 2 days",
        _u("breathing", "days_1_3", None, "self"),
    ),
    ("pain 4/10, worse at night", _u("other", severity=4)),
    # symptoms described, not named: sensations, metaphors, a body part and what it does
    (
        "feels like a vice squeezing my temples since yesterday",
        _u("headache", "days_1_3", None, "self"),
    ),
    ("head's been thumping all afternoon", _u("headache", "today")),
    ("a stitch in my chest whenever I take a deep breath", _u("chest_pain", subject="self")),
    ("my chest rattles when I breathe out", _u("breathing", subject="self")),
    ("I need a rest halfway up the hill to catch my breath", _u("breathing", subject="self")),
    ("getting up every night to wee, and it only dribbles out", _u("urinary")),
    ("feels like swallowing broken glass, 8/10", _u("sore_throat_ear", severity=8)),
    ("slammed my thumb in the car door", _u("injury", subject="self")),
    ("my back went while I was gardening", _u("back_joint", subject="self")),
    (
        "nagging pain under my shoulder blade, it's a 5 most evenings",
        _u("back_joint", severity=5, subject="self"),
    ),
    ("can't switch my mind off at night and I feel on edge", _u("mental_health", subject="self")),
    ("the thermometer read 38.6, shivery", _u("fever")),
    ("lost half a stone without trying", _u("other")),
    # heartburn is no chest pain; a tight chest with wheezing is a breathing complaint
    ("burning behind my breastbone after meals, sour taste", _u("abdominal_pain", subject="self")),
    ("burning behind my breastbone when I climb stairs", _u("chest_pain", subject="self")),
    ("tight chest and wheezy since this morning", _u("breathing", "today")),
    ("tightness across my chest, comes and goes", _u("chest_pain", subject="self")),
    # covid is a cold unless another symptom is named
    (
        "covid last week and now I can't take a deep breath",
        _u("breathing", "days_4_7", None, "self"),
    ),
    # children around the writer do not make it a child's complaint
    ("new mum to a 6 week old, crying all the time and not coping", _u("mental_health")),
    (
        "the kids brought a bug home from school and now I've got it too, coughing",
        _u("cough_cold", subject="self"),
    ),
    ("my son says I should get this rash looked at", _u("skin", subject="self")),
    ("my son said his ear hurts", _u("child_illness", subject="other")),
    ("carrying my son to the car, he has a high fever", _u("child_illness", subject="other")),
    ("mother of two kids, my back aches", _u("back_joint", subject="self")),
    # a tickly throat comes with a cough; an illness being got over is context
    ("a tickly throat and coughing all night", _u("cough_cold")),
    ("after the flu I get breathless on the stairs", _u("breathing", subject="self")),
    # not how long: work shifts, a late period; the meal before is the cause, not the onset
    ("I work 12 hour shifts and my feet ache", _u("back_joint", subject="self")),
    ("my period is a week late", _u("womens_health", subject="self")),
    ("ate a dodgy curry last night and been sick since 5am", _u("abdominal_pain", "today")),
    ("not slept well in weeks", _u("mental_health", "weeks_1_4")),
    # a count of hours is finer than "since lunch"
    (
        "since lunch, about 3 hours now, my head is pounding",
        _u("headache", "hours", None, "self"),
    ),
    # health without a category; not health at all
    ("I feel awful", _u("other", subject="self")),
    ("help", _u("other")),
    ("hello", NOTHING),
    ("thanks doctor", NOTHING),
]

# --- understand(): Simplified Chinese ---------------------------------------------------------

CHINESE = [
    ("头疼两天了", _u("headache", "days_1_3")),
    # symptoms described, not named
    ("头像被箍住一样疼 两天了", _u("headache", "days_1_3")),
    ("吸气的时候右边胸口扯着疼", _u("chest_pain")),
    ("喘气的时候嗓子里有呼噜声", _u("breathing")),
    ("小便有泡沫 好几天不散", _u("urinary", "days_4_7")),
    ("被邻居家的狗咬了一口 刚刚", _u("injury", "minutes", None, "other")),
    ("被开水烫了手背 起了两个泡", _u("injury")),
    ("脖子就没好过 三年多了", _u("back_joint", "months")),
    ("整天担心这个担心那个 睡不踏实", _u("mental_health")),
    # a tight chest with breathlessness is a breathing complaint; "就是" names the main one
    ("胸闷 喘不上气 两天了", _u("breathing", "days_1_3")),
    ("胸口发闷 一阵一阵的", _u("chest_pain")),
    ("鼻塞还好 就是头疼得厉害", _u("headache")),
    # not how long: how often, hours a day, a trip, a school year; the meal is the cause
    ("一个月得犯两三回偏头痛 这次昨天开始的", _u("headache", "days_1_3")),
    ("一天对着电脑十几个小时 眼睛干", _u("eye")),
    ("坐了一天车 腿肿了", _u("back_joint")),
    ("女儿读三年级 发烧两天了", _u("child_illness", "days_1_3", None, "other")),
    ("前天吃了海鲜 今天起了一身疹子", _u("skin", "today")),
    ("总是半夜两点就醒 一个多月了", _u("mental_health", "months")),
    ("上午十点左右开始拉肚子 已经四个小时了", _u("abdominal_pain", "hours")),
    ("嗓子发痒 一直干咳", _u("cough_cold")),
    ("三个孩子的妈 这几天腰疼", _u("back_joint", "days_4_7")),
    # the class a teacher speaks of is no patient
    (
        "我是小学老师 班里一半学生都在咳嗽 今天我也被传上了",
        _u("cough_cold", "today", None, "self"),
    ),
    ("在托儿所上班 现在轮到我了 咳嗽", _u("cough_cold", subject="self")),
    ("我发烧三天了，咳嗽", _u("cough_cold", "days_1_3", None, "self")),
    ("嗓子疼，发烧38度", _u("sore_throat_ear")),
    ("头晕头疼", _u("dizziness")),
    ("腰疼一个多月了", _u("back_joint", "months")),
    ("我摔倒了，膝盖疼", _u("injury", subject="self")),
    ("胸口疼，喘不过气", _u("chest_pain")),
    ("血压150/95，头晕", _u("chronic_review")),
    ("我妈妈血压高，想开药", _u("chronic_review", subject="other")),
    ("小便疼，尿频", _u("urinary")),
    ("我老公皮肤起疹子，很痒，两周了", _u("skin", "weeks_1_4", None, "other")),
    ("最近心情不好，失眠", _u("mental_health")),
    ("月经推迟了一周", _u("womens_health", "days_4_7")),
    ("眼睛红，痒", _u("eye")),
    ("刚才突然头晕", _u("dizziness", "minutes")),
    ("咳嗽十几天了", _u("cough_cold", "weeks_1_4")),
    ("耳朵疼得厉害，七分", _u("sore_throat_ear", severity=7)),
    ("疼痛大概6分", _u("other", severity=6)),
    # negation
    ("没有发烧，就是咳嗽", _u("cough_cold")),
    ("我头不疼，就是咳嗽", _u("cough_cold", subject="self")),
    ("不知道是不是发烧，头很疼", _u("headache")),
    ("不发烧", _u("other")),
    ("嗓子也不疼 就是咳嗽", _u("cough_cold")),
    # who and how old
    ("宝宝3个月大，发烧", _u("child_illness", subject="other", age=0.25)),
    ("我儿子5岁，拉肚子一天了", _u("child_illness", "days_1_3", None, "other", 5.0)),
    ("我5岁的儿子肚子疼", _u("child_illness", subject="other", age=5.0)),
    ("孩子两岁半，耳朵疼", _u("child_illness", subject="other", age=2.5)),
    ("我今年67岁，关节疼", _u("back_joint", subject="self", age=67.0)),
    ("我妈妈80岁，头晕", _u("dizziness", subject="other", age=80.0)),
    ("宝宝不吃奶，没精神", _u("child_illness", subject="other")),
    ("儿子骑车摔了 膝盖擦破了", _u("injury", subject="other")),
    # 也 makes a complaint secondary, 主要 the main one
    ("发烧两天了 嗓子也有点疼", _u("fever", "days_1_3")),
    ("头疼 咳嗽 主要是发烧", _u("fever")),
    # body part, where, when, then how it hurts
    ("胸口左边像针扎一样疼", _u("chest_pain")),
    ("肋骨这里一按就疼", _u("chest_pain")),
    ("膝盖早上起来又僵又疼", _u("back_joint")),
    ("小肚子坠胀 尿不干净", _u("abdominal_pain")),
    ("右眼进了沙子", _u("eye")),
    ("记性越来越不好", _u("mental_health")),
    ("手上割了个口子", _u("injury")),
    ("要不要打破伤风针", _u("injury")),
    # 早上起来 is a habit unless something happened (了); a pregnancy's weeks are no onset
    ("早上起来嗓子都很干", _u("sore_throat_ear")),
    ("早上起来眼睛肿了", _u("eye", "today")),
    ("怀孕十二周 最近三天一直吐", _u("womens_health", "days_1_3")),
    ("有高血压好多年了 这两天头晕", _u("dizziness", "days_1_3")),
    ("头疼 满分10分的话有5分", _u("headache", severity=5)),
    # health without a category; not health at all
    ("我难受", _u("other", subject="self")),
    ("救命", _u("other")),
    ("你好", NOTHING),
    ("谢谢", NOTHING),
]

# --- understand(): Russian --------------------------------------------------------------------

RUSSIAN = [
    ("кашель и температура три дня", _u("cough_cold", "days_1_3")),
    ("болит горло, температура 38", _u("sore_throat_ear")),
    ("голова кружится и болит", _u("dizziness")),
    ("болит спина уже неделю", _u("back_joint", "days_4_7")),
    ("упал и ударил колено", _u("injury")),
    ("болит в груди, тяжело дышать с утра", _u("chest_pain", "today")),
    ("давление 160 на 100 с утра", _u("chronic_review", "today")),
    ("нужен рецепт на таблетки от давления", _u("chronic_review")),
    ("больно писать и часто бегаю в туалет", _u("urinary")),
    ("у мужа сыпь на руке две недели", _u("skin", "weeks_1_4", None, "other")),
    ("плохое настроение, не могу уснуть, больше месяца", _u("mental_health", "months")),
    ("задержка месячных", _u("womens_health")),
    ("глаз красный и слезится", _u("eye")),
    ("кашляю неделю", _u("cough_cold", "days_4_7")),
    ("с весны болят суставы", _u("back_joint", "months")),
    (
        "болит живот, рвота со вчерашнего дня, на семерку",
        _u("abdominal_pain", "days_1_3", 7),
    ),
    # negation
    ("температуры нет, но сильный кашель", _u("cough_cold")),
    ("кашля нет, болит горло", _u("sore_throat_ear")),
    ("голова не болит, но тошнит", _u("abdominal_pain")),
    ("кашель не проходит уже две недели", _u("cough_cold", "weeks_1_4")),
    ("не кашляю", _u("other")),
    ("горло тоже не болит, только кашель", _u("cough_cold")),
    # who and how old
    ("дочке семь недель, температура", _u("child_illness", subject="other", age=7 / 52)),
    ("сыну 5 лет, понос второй день", _u("child_illness", "days_1_3", None, "other", 5.0)),
    ("ребенку 2 года, болит ухо", _u("child_illness", subject="other", age=2.0)),
    ("сыну 15 лет, болит голова", _u("headache", subject="other", age=15.0)),
    ("мама упала, болит бедро", _u("injury", subject="other")),
    ("мне 45 лет, болит колено на 6 из 10", _u("back_joint", None, 6, "self", 45.0)),
    (
        "маме 80 лет, у нее головокружение пару дней",
        _u("dizziness", "days_1_3", None, "other", 80.0),
    ),
    ("малыш вялый, не ест", _u("child_illness", subject="other")),
    ("сын упал с качелей, разбил губу", _u("injury", subject="other")),
    # "тоже" makes a complaint secondary, "в основном" the main one
    ("температура второй день, горло тоже немного болит", _u("fever", "days_1_3")),
    ("болит голова, но в основном температура", _u("fever")),
    # the unit first means "about": "дня 2", "минут 40", "недели полторы"
    ("болит живот минут 40", _u("abdominal_pain", "minutes")),
    ("кашель уже недели три", _u("cough_cold", "weeks_1_4")),
    ("голова кружится дня 2", _u("dizziness", "days_1_3")),
    ("сыпь неделю-две", _u("skin", "weeks_1_4")),
    # words
    ("побаливает в груди слева", _u("chest_pain")),
    ("покалывает в области сердца", _u("chest_pain")),
    ("шея не поворачивается, продуло", _u("back_joint")),
    ("стала хуже видеть, все расплывается", _u("eye")),
    ("болит грудь перед месячными", _u("womens_health")),
    ("чуть не потеряла сознание в метро", _u("dizziness")),
    # a pregnancy's weeks and a long-standing condition are no onset
    ("срок 16 недель, болит поясница", _u("back_joint")),
    (
        "диабет у меня 10 лет, а сахар высокий третий день",
        _u("chronic_review", "days_1_3", None, "self"),
    ),
    ("болит плечо, по шкале от 0 до 10 примерно 6", _u("back_joint", severity=6)),
    # symptoms described, not named
    ("голову как обручем стянуло с утра", _u("headache", "today")),
    ("в висках стучит второй день", _u("headache", "days_1_3")),
    ("будто иголкой колет в сердце", _u("chest_pain")),
    ("воздуха не хватает, хочется вдохнуть поглубже", _u("breathing")),
    ("по ночам встаю в туалет раза три, струя слабая", _u("urinary")),
    ("больно, когда хожу по маленькому", _u("urinary")),
    ("к вечеру под 39, второй день", _u("fever", "days_1_3")),
    ("меня штормит, будто на лодке", _u("dizziness", subject="self")),
    ("мне все безразлично, ничего не хочется", _u("mental_health", subject="self")),
    ("после обеда скрутило желудок", _u("abdominal_pain")),
    ("утром потянул спину на даче", _u("back_joint", "today")),
    # "просто" ends a denial; itching gives way to the complaint it comes with
    ("горло не болит просто знобит", _u("fever")),
    ("сильный зуд, выделения белые", _u("womens_health")),
    # heartburn is no chest pain; tightness with breathlessness is a breathing complaint
    ("печет за грудиной, особенно после жирного", _u("abdominal_pain")),
    ("жжет за грудиной при ходьбе", _u("chest_pain")),
    ("стеснение в груди и одышка", _u("breathing")),
    # a Russian message with digits: the English pass must not hide an earlier Russian phrase
    ("знобит, температура 38,2", _u("fever")),
    ("першит в горле и кашляю", _u("cough_cold")),
    ("после гриппа задыхаюсь на лестнице", _u("breathing")),
    ("отец троих детей, болит голова", _u("headache")),
    # children around the writer; a job or an age is no duration
    ("я в декрете, сыну 3 месяца, постоянно плачу без причины", _u("mental_health")),
    ("носила внучку на руках, теперь ноет поясница", _u("back_joint")),
    ("внуки заразили, теперь и я заболела, кашель", _u("cough_cold", subject="self")),
    ("дочка говорит, что я бледная, голова кружится", _u("dizziness", subject="self")),
    ("по 10 часов за компьютером, глаза красные", _u("eye")),
    ("пенсионер 70 лет, колено болит", _u("back_joint", age=70.0)),
    # health without a category; not health at all
    ("мне плохо", _u("other", subject="self")),
    ("помогите", _u("other")),
    ("привет", NOTHING),
    ("спасибо", NOTHING),
]

MIXED = [
    ("我头疼 since yesterday", _u("headache", "days_1_3", None, "self")),
    ("my son 发烧 38.5 两天了", _u("child_illness", "days_1_3", None, "other")),
    ("у меня headache 3 дня", _u("headache", "days_1_3", None, "self")),
    ("I have 咳嗽 for a week, no fever", _u("cough_cold", "days_4_7", None, "self")),
    ("мой сын 7 лет, 肚子疼", _u("child_illness", subject="other", age=7.0)),
    ("ＭＹ ＢＡＣＫ ＨＵＲＴＳ", _u("back_joint", subject="self")),  # full-width letters
    (
        "у дочки температура 38,5 со вчерашнего вечера",
        _u("child_illness", "days_1_3", None, "other"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), ENGLISH)
def test_understand_english(text: str, expected: Understood) -> None:
    assert understand(text) == expected


@pytest.mark.parametrize(("text", "expected"), CHINESE)
def test_understand_chinese(text: str, expected: Understood) -> None:
    assert understand(text) == expected


@pytest.mark.parametrize(("text", "expected"), RUSSIAN)
def test_understand_russian(text: str, expected: Understood) -> None:
    assert understand(text) == expected


@pytest.mark.parametrize(("text", "expected"), MIXED)
def test_understand_mixed_languages(text: str, expected: Understood) -> None:
    assert understand(text) == expected


def test_each_language_has_enough_cases() -> None:
    assert min(len(ENGLISH), len(CHINESE), len(RUSSIAN)) >= 25
    covered = {e.category for e in (*(e for _, e in ENGLISH), *(e for _, e in RUSSIAN))}
    covered |= {e.category for _, e in CHINESE}
    assert covered >= set(CATEGORY_IDS)


# --- general rules, each with a case it must not catch ------------------------------------------

GENERAL_RULES = [
    # "too" / "as well" right after a complaint makes it an accompanying one...
    ("burning up since lunch, 38.9, my throat is scratchy too", "category", "fever"),
    ("feverish all night and my ears ache as well", "category", "fever"),
    ("знобит с утра, голова болит тоже", "category", "fever"),
    # ...but not when it says how much
    ("my head hurts too much to sleep and I have a temperature", "category", "headache"),
    ("throat hurts as well as a temperature", "category", "sore_throat_ear"),
    # ...and never makes chest pain (or an injury) secondary
    ("my chest hurts too, and I feel feverish", "category", "chest_pain"),
    # Russian "на N" ending a clause, alone or after a rating word, is a 0-10 rating...
    ("колено ноет после пробежки, на 5", "severity", 5),
    ("спина болит третий день, на 7, хуже утром", "severity", 7),
    ("сыпь чешется, оценю на 4", "severity", 4),
    ("дочка говорит на 6, ухо болит", "severity", 6),
    ("жевать больно на 5", "severity", 5),
    # ...not with a unit after it, a larger number, a decimal or a time
    ("уезжала на 3 дня, теперь болит горло", "severity", None),
    ("похудела на 5 кг, слабость", "severity", None),
    ("сыпь на 2 недели пропала и вернулась", "severity", None),
    ("давление 135 на 85, голова болит", "severity", None),
    ("температура поднялась, на 12", "severity", None),
    ("болит, на 2.5", "severity", None),
    ("в 8 утра заболел живот", "severity", None),
    # after prefill-04, Chinese: 别的 ("other") is not 别 ("don't"); 还是 ("still") between a
    # body part and the pain; tight or uneven breathing and pauses in sleep; repeat scripts
    ("能不能换别的降压药", "category", "chronic_review"),
    ("别吃辣的了，嗓子疼", "category", "sore_throat_ear"),
    ("后脑勺还是隐隐作痛", "category", "headache"),
    ("爬楼的时候呼吸有点发紧", "category", "breathing"),
    ("孩子他爸睡觉时呼噜打着打着就停了", "category", "breathing"),
    ("他打呼噜很响，吵得我睡不着", "category", "mental_health"),
    ("胰岛素快用完了，想续个方子", "category", "chronic_review"),
    # after prefill-04: a rating word with text after it, and "на N" closing the message...
    ("кашель сухой, оцениваю на 3 но бесит", "severity", 3),
    ("самочувствие на 6 уже третий день", "severity", 6),
    ("колено распухло чувствую себя на 5 из-за него", "severity", 5),
    ("зуб ноет всю ночь на 6", "severity", 6),
    ("живот крутит на 4 с обеда", "severity", 4),
    # ...but not a time, a dose, an address, sick leave or a wait for a doctor
    ("кашель три дня, можно записаться на 10", "severity", None),
    ("температура 38, жду врача на 2", "severity", None),
    ("кашель, дали больничный на 7", "severity", None),
    ("таблетки пью по одной на 3", "severity", None),
    ("чувствую себя на 5 лет старше, спина болит", "severity", None),
    # a Chinese numeral after 疼/痛 is a rating only with 分 or at a clause end
    ("肚子疼七 昨天开始的", "severity", 7),
    ("头刺痛一下就好了", "severity", None),
    ("腰疼一阵一阵的", "severity", None),
    # "today is day 2", "день второй" count the days
    ("coughing a lot, today is day 3", "duration", "days_1_3"),
    ("now day 5 of this rash", "duration", "days_4_7"),
    ("кашель, день второй", "duration", "days_1_3"),
    ("today my knee hurts", "duration", "today"),
    ("today is day 1 of my cold", "duration", "today"),
    # a bare unit after a word that only ends in "на" ("колена неделю назад")...
    ("жена неделю кашляет", "duration", "days_4_7"),
    ("рана неделю не заживает", "duration", "days_4_7"),
    # ...but not after the word "на"
    ("на неделю уехал, кашель", "duration", None),
    # 早上起来 is this morning, unless a habit word marks it
    ("早上起来嗓子哑哑的", "duration", "today"),
    ("早上起来眼睛肿肿的", "duration", "today"),
    ("早上起来会头晕", "duration", None),
    ("最近早上起来头疼", "duration", None),
    ("我每天早上起来腰疼", "duration", None),
    ("早上起来手指都僵", "duration", None),
    # diarrhoea as it sounds; a diary is no diarrhoea
    ("diareah all night", "category", "abdominal_pain"),
    ("diahrrea since tuesday", "category", "abdominal_pain"),
    ("keeping a diary of my sleep", "category", None),
    # hiccups, hair loss and a lump found by touch are "other", not skin
    ("hiccuping non stop since dinner", "category", "other"),
    ("икаю уже час", "category", "other"),
    ("my hair keeps coming out in the shower", "category", "other"),
    ("最近掉发严重", "category", "other"),
    ("волосы сильно лезут", "category", "other"),
    ("腋下摸到一个疙瘩 不疼", "category", "other"),
    ("胳膊上起了好多小红疙瘩 很痒", "category", "skin"),
    ("dandruff and an itchy scalp", "category", "skin"),
    # a red, hot patch and spreading redness are skin; a red hot joint is not
    ("red swollen patch on my shin", "category", "skin"),
    ("the redness on my arm is spreading", "category", "skin"),
    ("my knee is red and hot", "category", "other"),
    # a big toe or a little finger is a joint
    ("painful big toe, can't wear shoes", "category", "back_joint"),
    ("stiff little finger in the mornings", "category", "back_joint"),
    ("stubbed my big toe on the bed", "category", "injury"),
    # needing the reliever more is a breathing complaint; a refill is a review
    ("using my blue inhaler more often since the weekend", "category", "breathing"),
    ("asthmatic, tight-chested and on my inhaler every 3 hours", "category", "breathing"),
    ("running low on my inhaler, need more of it", "category", "chronic_review"),
    # the contraceptive pill and a pregnancy test are women's health; any other pill or test not
    ("thinking of coming off the pill", "category", "womens_health"),
    ("two lines on the test this morning", "category", "womens_health"),
    ("тест показал положительный, что дальше", "category", "womens_health"),
    ("took the pill you gave me and still feel sick", "category", "abdominal_pain"),
    ("тест на ковид положительный, кашляю", "category", "cough_cold"),
    ("ковид тест положительный", "category", "cough_cold"),
    # the room turning round is dizziness; life revolving around work is not
    ("встаю с кровати и комната вращается", "category", "dizziness"),
    ("все вокруг кружится, когда встаю", "category", "dizziness"),
    ("все вращается вокруг работы", "category", None),
    # a low, crushed state is mental health; a weakened immunity is not
    ("угнетенное состояние второй месяц", "category", "mental_health"),
    ("чувствую себя подавленной", "category", "mental_health"),
    ("иммунитет подавлен после болезни", "category", "other"),
    # 发烧 typed half in pinyin
    ("老公发shao了 一晚上", "category", "fever"),
    ("shao le liang tian", "category", None),
]


@pytest.mark.parametrize(("text", "field", "expected"), GENERAL_RULES)
def test_general_rules(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected


# --- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the brief's examples
        ("three days", "days_1_3"),
        ("3 days", "days_1_3"),
        ("since yesterday", "days_1_3"),
        ("三天", "days_1_3"),
        ("两周了", "weeks_1_4"),
        ("一个多月", "months"),
        ("три дня", "days_1_3"),
        ("с прошлой недели", "days_4_7"),
        ("2 часа", "hours"),
        ("just now", "minutes"),
        ("today", "today"),
        # boundaries (documented in understand.toml)
        ("30 minutes", "minutes"),
        ("half an hour", "minutes"),
        ("an hour ago", "hours"),
        ("2 hours", "hours"),
        ("since this morning", "today"),
        ("a day", "days_1_3"),
        ("24 hours", "days_1_3"),
        ("a couple of days", "days_1_3"),
        ("4 days", "days_4_7"),
        ("a week", "days_4_7"),
        ("almost a week", "days_4_7"),
        ("over a week", "weeks_1_4"),
        ("8 days", "weeks_1_4"),
        ("two weeks", "weeks_1_4"),
        ("a fortnight", "weeks_1_4"),
        ("a month", "weeks_1_4"),
        ("5 weeks", "months"),
        ("more than a month", "months"),
        ("a month and a half", "months"),
        ("for years", "months"),
        ("last night", "days_1_3"),
        ("since last week", "days_4_7"),
        ("the last half hour", "minutes"),
        ("a week or so", "days_4_7"),
        ("a week or two", "weeks_1_4"),
        ("a day or two", "days_1_3"),
        ("all morning", "today"),
        ("since 5am", "today"),
        ("8 weeks pregnant", None),
        ("at a desk all day", None),
        # Chinese numbers
        ("刚才", "minutes"),
        ("个把月", "weeks_1_4"),
        ("俩礼拜", "weeks_1_4"),
        ("十来天", "weeks_1_4"),
        ("好几个星期", "weeks_1_4"),
        ("吃完午饭以后", "today"),
        ("怀孕十周", None),
        ("三个小时", "hours"),
        ("今天早上", "today"),
        ("昨天", "days_1_3"),
        ("两三天", "days_1_3"),
        ("一周", "days_4_7"),
        ("一个星期", "days_4_7"),
        ("十几天", "weeks_1_4"),
        ("半个月", "weeks_1_4"),
        ("半年", "months"),
        # Russian numbers and cases
        ("полчаса", "minutes"),
        ("час", "hours"),
        ("с утра", "today"),
        ("вчера", "days_1_3"),
        ("сутки", "days_1_3"),
        ("пару дней", "days_1_3"),
        ("неделю", "days_4_7"),
        ("больше недели", "weeks_1_4"),
        ("месяц", "weeks_1_4"),
        ("почти месяц", "weeks_1_4"),
        ("полтора месяца", "months"),
        ("с весны", "months"),
        ("давно", "months"),
        ("полторы недели", "weeks_1_4"),
        ("две с половиной недели", "weeks_1_4"),
        ("дня три", "days_1_3"),
        ("часа 2 назад", "hours"),
        ("день-два", "days_1_3"),
        ("уже недельку", "days_4_7"),
        ("с 6 утра", "today"),
        ("беременность 20 недель", None),
        ("утром хуже", None),
        # not a duration
        ("3", None),
        ("hello", None),
        ("twice a day", None),
        ("", None),
    ],
)
def test_parse_duration(text: str, expected: str | None) -> None:
    assert parse_duration(text) == expected


# --- parse_severity_phrase --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("about 5 out of 10", 5),
        ("7/10", 7),
        ("pain is a 6", 6),
        ("pain 8", 8),
        ("ten out of ten", 10),
        ("7", 7),
        ("seven", 7),
        ("about 5", 5),
        ("0", 0),
        ("6分", 6),
        ("七分", 7),
        ("疼痛大概6分", 6),
        ("我打8分", 8),
        ("满分10分我打7分", 7),
        ("十分", 10),
        ("на 4 из 10", 4),
        ("на семерку", 7),
        ("8 баллов", 8),
        ("около 5", 5),
        ("about 5/10, worse when I bend", 5),
        ("i'd give it a 6", 6),
        ("10分的话有6分", 6),
        ("по шкале от 0 до 10 где-то 7", 7),
        # not a rating
        ("11", None),
        ("болит ухо дней пять", None),
        ("3 days", None),
        ("6 weeks", None),
        ("I'm 6", None),
        ("150/95", None),
        ("十分疼", None),  # 十分 here means "very"
        ("5分钟", None),  # five minutes
        ("", None),
    ],
)
def test_parse_severity_phrase(text: str, expected: int | None) -> None:
    assert parse_severity_phrase(text) == expected


# --- health_related and small_talk ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "мне плохо",
        "help",
        "我难受",
        "ibuprofen",
        "bp 150/95",
        "температура 38",
        "血压150",
        "I feel awful",
        "my knee",
        "appointment",
        "救命",
        "помогите",
        "scared",
        "70 kg",
        "95%",
        "120 bpm",
        "no fever",
        "baby not feeding",
        "муж говорит что я храплю",
        "diarea since yesterday",
        "hiccups for 3 hours",
        "my hair is thinning",
        "все вращается",
        "подавленное состояние",
        "掉头发",
    ],
)
def test_health_related(text: str) -> None:
    assert health_related(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "спасибо",
        "谢谢",
        "👍",
        "😀😀",
        "asdfgh",
        "qwerty",
        "hello",
        "thanks doctor",
        "good morning",
        "ok thanks",
        "hmm",
        "???",
        "большое спасибо",
        "你好",
        "привет, как дела?",
        "the weather is nice",
        "",
    ],
)
def test_not_health_related(text: str) -> None:
    assert health_related(text) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi", "greeting"),
        ("hello!", "greeting"),
        ("good morning doctor", "greeting"),
        ("你好", "greeting"),
        ("您好医生", "greeting"),
        ("привет", "greeting"),
        ("здравствуйте", "greeting"),
        ("thanks", "thanks"),
        ("thank you so much", "thanks"),
        ("谢谢医生", "thanks"),
        ("большое спасибо", "thanks"),
        ("ok thanks", "thanks"),
        ("🙏", "thanks"),
        ("ok", "ok"),
        ("okay 👍", "ok"),
        ("👍", "ok"),
        ("好的", "ok"),
        ("ок", "ok"),
        ("хорошо", "ok"),
        ("hi, I have a cough", None),
        ("help", None),
        ("", None),
    ],
)
def test_small_talk(text: str, expected: str | None) -> None:
    assert small_talk(text) == expected


# --- the contract with the intake -------------------------------------------------------------


def test_ids_match_the_intake_questionnaire() -> None:
    q = load_questionnaire(INTAKE_FILE, catalogs=False)
    assert tuple(q.categories) == CATEGORY_IDS
    assert q.durations == DURATION_IDS


def test_bundled_data_loads() -> None:
    u.validate()
    lex = u.load()
    assert lex.child_category == "child_illness"
    assert lex.fallback == "other"
    # "today" is only ever a phrase ("since this morning"), never a number of hours.
    assert [b for b, _ in lex.bands] == [d for d in DURATION_IDS if d != "today"]


# --- broken data ------------------------------------------------------------------------------


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = u.DEFAULT_PATH.read_text(encoding="utf-8")
    assert old in text, f"test fixture out of date: {old!r} not in understand.toml"
    path = tmp_path / "understand.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "[category.eye]\n",
            "[category.eyes]\n",
            r"\[category\.eyes\]: unknown category id 'eyes'",
        ),
        (
            "'''sciatica'''",
            "'''sciatica('''",
            r"\[category\.back_joint\] en\[\d+\]: invalid regex 'sciatica\('",
        ),
        (
            "[category.eye]\nen = [",
            "[category.eye]\nfr = ['''oeil''']\nen = [",
            r"\[category\.eye\]: unknown keys \['fr'\]",
        ),
        ("negation_window = 12", "negation_windw = 12", r"\[lang\.zh\]: unknown keys"),
        ("'''gout'''", r"'''gout\w*'''", r"\[category\.back_joint\] en\[\d+\]: unbounded"),
        ("'''gout'''", "'''%nosuch%'''", r"unknown macro %nosuch%"),
        ("'''gout'''", "'''(?P<x>gout)'''", r"named groups \['x'\] are not allowed"),
        ("'''gout'''", "'''(?:gout)?'''", r"matches the empty string"),
        ("'''gout'''", r"'''(g)out\1'''", r"back-references are not allowed"),
        (
            "'''gout'''",
            "'''(?<=a|bc)gout'''",
            r"\[category\.back_joint\] en\[\d+\]: invalid regex '\(\?<=a\|bc\)gout': look-behind",
        ),
        (
            '"back_joint", "eye", "skin"',
            '"back_joint", "skin"',
            r"\[choose\] priority: categories with phrases are not ranked: \['eye'\]",
        ),
        ('fallback = "other"', 'fallback = "misc"', r"\[choose\] fallback: unknown category"),
        (
            'child_keeps = ["injury"]',
            'child_keeps = ["injuries"]',
            r"\[choose\] child_keeps: unknown category id 'injuries'",
        ),
        ("cue_window = 4\n", "", r"\[lang\.zh\] cue_window: expected a whole number"),
        (
            "also_after = '''^,? ?(?:тоже|также)(?![а-я])'''",
            r"also_after = '''тоже\w*'''",
            r"\[lang\.ru\] also_after: unbounded",
        ),
        (
            '{ id = "days_4_7", below_hours = 169 }',
            '{ id = "days_4_7", below_hours = 50 }',
            r"\[duration\] bands\[3\]: below_hours must grow",
        ),
        (
            "phrases.minutes = [\n    '''just now'''",
            "phrases.instant = [\n    '''just now'''",
            r"\[lang\.en\.duration\.phrases\]: unknown keys \['instant'\]",
        ),
        ('{ who = "any", match', '{ who = "anyone", match', r"who must be one of"),
        ("[lang.ru]\n", "[lang.ru_old]\n", r"\[lang\.ru_old\]: unknown language"),
        ('order = ["thanks", "greeting", "ok"]', 'order = ["thanks", "ok"]', r"\[small_talk\]"),
        (
            "gives_way.breathing.en = [",
            "gives_way.breath.en = [",
            r"\[category\.chest_pain\] gives_way\.breath: unknown or same category id",
        ),
        (
            "counts_within = { today = 24 }",
            "counts_within = { tomorrow = 24 }",
            r"\[duration\] counts_within: unknown duration id 'tomorrow'",
        ),
    ],
)
def test_broken_data_is_refused(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(UnderstandDataError, match=rf"^understand\.toml: .*{expected}"):
        u.load(path)


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(UnderstandDataError, match=r"^nothere\.toml: file: cannot read"):
        u.load(tmp_path / "nothere.toml")
    bad = tmp_path / "understand.toml"
    bad.write_text("[choose\n", encoding="utf-8")
    with pytest.raises(UnderstandDataError, match=r"^understand\.toml: TOML: "):
        u.load(bad)


def _regexes(value: object) -> Iterator[re.Pattern[str]]:
    if isinstance(value, re.Pattern):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _regexes(getattr(value, field.name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _regexes(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _regexes(item)


def _same_as_compiled_text(rx: re.Pattern[str]) -> bool:
    again = re.compile(rx.pattern)
    # Pattern equality compares the flags and the byte code.
    return rx == again and rx.groupindex == again.groupindex and rx.groups == again.groups


def test_regexes_are_their_text_compiled() -> None:
    # The loader puts the big regexes together from their sources' parse trees and byte code;
    # each must be exactly what re.compile makes of its text.
    if (3, 11) <= sys.version_info[:2] <= (3, 13):
        assert u._layout_works()
    found = list(_regexes(u.load()))
    assert len(found) > 100
    assert [rx.pattern[:80] for rx in found if not _same_as_compiled_text(rx)] == []


# Parts that exercise each rule of re's parser the loader mirrors: shared prefixes, the same
# source twice, single characters and sets merged, an alternative left empty, scoped flags,
# assertions, atomic groups. With a capturing group, or a bound with a top-level "|", the
# regexes are compiled from their text.
_PARTS = [
    "gout",
    "gout",
    "gouty",
    "go",
    "g",
    "[gh]",
    "[^x]y",
    "(?i:sciatica)",
    "(?:a|b)c",
    r"\d{1,3} ?days?",
    r"\bknee",
    "(?>hip)",
    "(?<=a)b",
    "é{1,2}?",
    "x|y",
]


@pytest.mark.parametrize("bounds", [("(?<![a-z])", "(?![a-z])"), ("", "")])
def test_regexes_put_together_are_their_text_compiled(
    bounds: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not u._layout_works():
        pytest.skip("regexes are compiled from their text on this Python")
    rx = u._Regexes()
    compiled: list[str] = []
    compile_text = re.compile

    def compile_spy(text: str) -> re.Pattern[str]:
        compiled.append(text)
        return compile_text(text)

    monkeypatch.setattr(u.re, "compile", compile_spy)
    duration = r"(?P<minus>about )?(?P<n>\d{1,2}) ?(?P<u>days?|weeks?)"
    items = [("d0", "number", duration), ("p_days", "days_1_3", rx.join(_PARTS[:5]))]
    combined = u._combine(rx, items, bounds)
    found = [
        u._fast(rx, _PARTS, bounds),
        u._fast(rx, _PARTS, bounds, starts_only=True),
        # more than _MAX_GROUPS sets of parts
        u._fast(rx, [*_PARTS, *(f"{chr(0x4E00 + i)}痛" for i in range(60))], bounds),
        rx.either(_PARTS, bounds),
        rx.either(_PARTS[:5], bounds),  # "g" moves out, leaving one alternative empty
        rx.either(["a", "[bc]", "é"], bounds),  # one set
        combined.rx,
        combined.starts,
    ]
    monkeypatch.undo()
    assert compiled == []  # all put together
    assert combined.rx.groupindex == {"d0": 1, "d0_minus": 2, "d0_n": 3, "d0_u": 4, "p_days": 5}
    assert [r.pattern[:80] for r in found if not _same_as_compiled_text(r)] == []


@pytest.mark.parametrize(
    ("parts", "bounds"),
    [
        ([*_PARTS, "(k)nee"], ("(?<![a-z])", "(?![a-z])")),
        (_PARTS, ("(?<![a-z])|^", "(?![a-z])")),
        (_PARTS, ("(?<![a-z])", "(?![a-z])(x)")),
    ],
)
def test_regexes_compiled_from_text(parts: list[str], bounds: tuple[str, str]) -> None:
    rx = u._Regexes()
    found = [
        u._fast(rx, parts, bounds),
        u._fast(rx, parts, bounds, starts_only=True),
        rx.either(parts, bounds),
    ]
    assert [r.pattern[:80] for r in found if not _same_as_compiled_text(r)] == []


def test_loaded_copy_behaves_like_default(tmp_path: Path) -> None:
    path = tmp_path / "understand.toml"
    path.write_text(u.DEFAULT_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    lex = u.load(path)
    text = "my 5-year-old son has had diarrhoea for 2 days, 7/10"
    assert understand(text, lexicon=lex) == understand(text)


# --- robustness -------------------------------------------------------------------------------

_WORDS = st.lists(
    st.sampled_from(
        [
            "cough",
            "no",
            "not",
            "fever",
            "3",
            "days",
            "a",
            "week",
            "my",
            "son",
            "is",
            "7",
            "/10",
            "pain",
            "out of",
            "years",
            "old",
            "I'm",
            "38.5°",
            "150/95",
            "and",
            "but",
            "咳嗽",
            "没有",
            "发烧",
            "三天",
            "岁",
            "个月",
            "分",
            "十",
            "宝宝",
            "头疼",
            "，",
            "кашель",
            "нет",
            "температура",
            "дня",
            "лет",
            "сыну",
            "на",
            "семерку",
            "не",
            ",",
            "\n",
            "ё",
            "\u200f",
            "👍",
            "hi",
            "спасибо",
            "",
            " ",
        ]
    ),
    max_size=600,
).map(" ".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_WORDS, st.text(max_size=5000)))
def test_never_raises(text: str) -> None:
    result = understand(text)
    assert result.category is None or result.category in CATEGORY_IDS
    assert result.duration is None or result.duration in DURATION_IDS
    assert result.severity is None or 0 <= result.severity <= 10
    assert result.subject in (None, "self", "other")
    assert result.age_years is None or 0 < result.age_years <= 120
    assert parse_duration(text) in (None, *DURATION_IDS)
    severity = parse_severity_phrase(text)
    assert severity is None or 0 <= severity <= 10
    assert health_related(text) in (True, False)
    assert small_talk(text) in (None, "greeting", "thanks", "ok")


ADVERSARIAL = {
    "one long word": "a" * 4096,
    "repeated words": ("cough " * 700)[:4096],
    "repeated denials": ("no cough and no fever " * 200)[:4096],
    "words that start phrases": ("and a back knee pain in my " * 200)[:4096],
    "number words": ("one two three a couple of " * 200)[:4096],
    "digits and units": ("2d 3h 38.5° 150/95 7/10 " * 200)[:4096],
    "chinese run": "咳" * 4096,
    "chinese numerals": "十几" * 2048,
    "russian stems": ("не кашляю болит голова " * 200)[:4096],
    "three scripts": ("my 3 year old 头疼 болит 38.5° " * 150)[:4096],
    "punctuation": "(((([[[%%%///" * 316,
    "emoji": "👍😀" * 2048,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_input_completes(name: str) -> None:
    text = ADVERSARIAL[name]
    assert len(text) >= 4096
    assert isinstance(understand(text), Understood)
    assert parse_duration(text) in (None, *DURATION_IDS)
    assert parse_severity_phrase(text) in (None, *range(11))
    assert health_related(text) in (True, False)
