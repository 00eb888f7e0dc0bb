"""The emergency red-flag detector: phrase set, unit cases, robustness, broken data, wording.

``pytest -s tests/flows/test_redflags.py`` prints the confusion table.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.redflags import (
    NONE,
    evaluate,
    format_table,
    is_detected,
    load_phrases,
    long_paragraphs,
    whole_set,
)
from flows import redflags
from flows.redflags import RED_FLAG_IDS, Hit, LexiconError, detect, detect_all
from locales import LOCALES, catalog_files

MAX_FPR = 0.10
MIN_SAME_FLAG = 0.90
MIN_PHRASES_PER_LANGUAGE = 110


def flag_of(text: str) -> str | None:
    hit = detect(text)
    return hit.flag if hit else None


# --- the phrase set ---------------------------------------------------------------------------


def test_phrase_set_shape() -> None:
    phrases = load_phrases()
    assert len(phrases) >= 330
    for lang in redflags.LANGUAGES:
        mine = [p for p in phrases if p.lang == lang]
        assert len(mine) >= MIN_PHRASES_PER_LANGUAGE, f"[{lang}] only {len(mine)} phrases"
        emergencies = [p for p in mine if p.label != NONE]
        assert 0.35 <= len(emergencies) / len(mine) <= 0.65, f"[{lang}] not about half emergencies"
        for fid in RED_FLAG_IDS:
            n = sum(p.label == fid for p in mine)
            assert n >= 2, f"[{lang}] {fid}: {n} phrases, need at least 2"
    texts = [(p.lang, p.text) for p in phrases]
    dupes = {t for t in texts if texts.count(t) > 1}
    assert not dupes, f"duplicate phrases: {dupes}"


def test_confusion_table() -> None:
    ev = evaluate(load_phrases())
    print()  # noqa: T201 - `pytest -s` shows the table
    print(format_table(ev))  # noqa: T201
    # The lexicon's own contract: it flags every emergency of the set.
    missed = [f"[{p.lang}] {p.label}: {p.text} -> {h}" for p, h in ev.misses if h is None]
    assert not missed, "emergencies not detected:\n" + "\n".join(missed)
    assert ev.overall.lexicon_recall == 1.0
    # What the patient gets: every emergency gets the instructions or, where the model doubts
    # the lexicon's hit, "is this an emergency?" with the number — never nothing. Doubted
    # emergencies are rare (1 of these 280, 2 of the 3,884 of every round, when the doubt was
    # introduced).
    assert ev.overall.recall_or_asked == 1.0
    assert ev.overall.recall >= 0.99, [(p.text, h) for p, h in ev.misses]
    assert ev.overall.fpr <= MAX_FPR, f"false-positive rate {ev.overall.fpr:.1%} > {MAX_FPR:.0%}"
    assert ev.overall.flag_match >= MIN_SAME_FLAG, (
        f"only {ev.overall.flag_match:.1%} of detections name the labelled flag"
    )


@pytest.mark.parametrize("lang", redflags.LANGUAGES)
def test_whole_set_keeps_every_emergency(lang: str) -> None:
    """Every emergency of the first set and every merged round is caught by the lexicon (a hit
    the model doubts still counts: it is asked about, REDFLAGS.md); a rule added for one round
    must not cost a detection of another."""
    ev = evaluate(p for p in whole_set() if p.lang == lang)
    missed = [f"{p.label}: {p.text} -> {h}" for p, h in ev.misses if not is_detected(p.label, h)]
    assert not missed, "emergencies not detected:\n" + "\n".join(missed)
    assert ev.overall.recall_or_asked == 1.0


# --- unit cases -------------------------------------------------------------------------------

NEGATED = [
    "no chest pain",
    "I don't have chest pain",
    "没有胸痛",
    "不胸痛",
    "нет боли в груди",
    "без боли в груди",
    "грудь не болит",
    "no fever, no stiff neck",
    "he has no trouble breathing",
    "no vomiting after he hit his head",
    "没有呼吸困难",
    "у меня не было боли в груди",
]
NEGATION_INSIDE_PATTERN = [
    ("he is not breathing", "breathing"),
    ("can't breathe", "breathing"),
    ("не дышит", "breathing"),
    ("喘不上气", "breathing"),
    ("呼吸不了", "breathing"),
    ("the bleeding won't stop", "bleeding"),
    ("she isn't responding", "unconscious"),
    ("сыпь не исчезает под стаканом", "sepsis"),
]
NEGATION_OTHER_CLAUSE = [
    ("no fever, but crushing chest pain", "chest_pain"),
    ("没有发烧，但是胸口疼得厉害", "chest_pain"),
    ("температуры нет, но сильно давит в груди", "chest_pain"),
    ("I don't know what's happening, he collapsed", "unconscious"),
    ("not sure if it's a heart attack", "chest_pain"),
    ("шея не гнется и температура 39", "meningitis"),
]
IDIOMS = [
    "dying of boredom",
    "I'm dying to see you",
    "this traffic is killing me",
    "a cake to die for",
    "笑死我了",
    "累死了",
    "热死了",
    "饿死了",
    "急死了",
    "умираю от скуки",
    "умираю с голоду",
    "убить готов",
    "what is the ambulance number?",
    "какой номер скорой помощи?",
    "急救电话是多少",
    "that was a stroke of luck",
    "a small burn from the oven",
    "food poisoning from a kebab",
]
HISTORY = [
    "had a stroke in 2015",
    "heart attack 5 years ago",
    "5年前中风过",
    "инсульт был 3 года назад",
    "history of seizures",
    "I was in a car crash two years ago",
]
ACUTE = [
    ("had a seizure 10 minutes ago", "seizure"),
    ("he just had a seizure", "seizure"),
    ("刚才抽搐了", "seizure"),
    ("только что был приступ судорог", "seizure"),
    ("had a stroke in 2015 and now his face is drooping", "stroke"),
]
SELF_HARM = [
    "I want to die",
    "kill myself",
    "I want to end it all",
    "there's no reason to live",
    "I don't want to kill myself",
    "想死",
    "不想活了",
    "自杀",
    "轻生",
    "хочу умереть",
    "покончить с собой",
    "не хочу жить",
    "суицид",
    "I tried to kill myself last year",
]
NORMALISATION = [
    ("ＣＨＥＳＴ ＰＡＩＮ", "chest_pain"),  # full-width Latin
    ("he\u200f can\u2019t\u200e breathe", "breathing"),  # RTL marks, curly apostrophe
    ("I CAN'T BREATHE", "breathing"),
    ("Хочу умереть", "self_harm"),
    ("ЁЛКИ, у него судороги", "seizure"),
    ("потерял сознание, всё", "unconscious"),
    ("we\u00a0can\u00adt\u00a0wake him up", "unconscious"),  # NBSP, soft hyphen
    ("喘不上气！！", "breathing"),
    ("c\u0336a\u0336n\u0336'\u0336t breathe", None),  # strikethrough combining marks: no hit
]
DENIED_OR_OVER_AFTERWARDS = [
    # a denial later in the sentence takes back a list of symptoms
    "stiff neck, fever, rash - none of these, only a runny nose",
    "胸痛 气短 头晕 这些都没有 就是咳嗽",
    "боль в груди, одышка, слабость - ничего из этого, просто кашель",
    # answered like a form
    "chest pain? no. short of breath? nope",
    "胸痛？没有。气短？也没有",
    # over: "fine since", "已经好了", "всё прошло"
    "fainted at work last week, been fine ever since",
    "昨天晕倒过一次 今天一点事都没有",
    "вчера в метро упала в обморок, сейчас всё хорошо",
    "choked on a crisp but coughed it up straight away",
    # said to be minor, or going on for weeks
    "burnt my hand on the iron, small blister",
    "my shoulder hurts and I can't lift my arm above my head",
]
NOT_TAKEN_BACK = [
    # chest pain and stroke signs that came and went are still emergencies (not resolvable)
    ("crushing chest pain an hour ago, fine now", "chest_pain"),
    ("his face drooped on one side for ten minutes, it's fine now", "stroke"),
    # "never had this before" is not a denial
    ("у мужа судороги, никогда такого не было", "seizure"),
    ("老公突然抽搐 口吐白沫 以前从来没这样过", "seizure"),
    # a later symptom is not taken back by an earlier "fine"
    ("he was fine all week but now he collapsed and won't wake up", "unconscious"),
    # context parts of a combo are not "over" because they are old
    ("had back trouble for years, now numb between my legs and wet myself", "cauda_equina"),
]
FICTION_HYPOTHETICAL_INFORMATIONAL = [
    "in the film the hero had a heart attack, is that realistic?",
    "电视剧里主角突然心梗了 真实吗",
    "в сериале у героини случился инсульт, так бывает?",
    "what temperature is a fever in a newborn?",
    "if someone is having a seizure should you hold them down?",
    "can anxiety cause chest tightness?",
    "怎么判断是不是中风",
    "中风疫苗有吗",
    "если вдруг у папы будет инфаркт, куда звонить?",
    "can you explain what a TIA is?",
    "my boss is going to have a stroke when he sees this",
    "这首歌好听到窒息",
    "加班加到吐血",
    "цены такие, что инфаркт можно получить",
    "задыхаться не задыхаюсь, просто устаю",
    "i cant breathe lol this video",
    "the heat is suffocating today",
    "choking hazard: not for under 3s",
]
MIXED = [
    ("我爸爸 can't breathe", "breathing"),
    ("my mum 中风了", "stroke"),
    ("у мамы chest pain, crushing", "chest_pain"),
    ("没有 chest pain, just a cough", None),
    ("нет chest pain", None),
]


@pytest.mark.parametrize("text", NEGATED)
def test_negation_cancels(text: str) -> None:
    assert detect(text) is None, detect_all(text)


@pytest.mark.parametrize(("text", "flag"), NEGATION_INSIDE_PATTERN + NEGATION_OTHER_CLAUSE)
def test_negation_that_does_not_cancel(text: str, flag: str) -> None:
    assert flag_of(text) == flag, detect_all(text)


@pytest.mark.parametrize("text", IDIOMS)
def test_idioms(text: str) -> None:
    assert detect(text) is None, detect_all(text)


@pytest.mark.parametrize("text", HISTORY)
def test_history(text: str) -> None:
    assert detect(text) is None, detect_all(text)


@pytest.mark.parametrize(("text", "flag"), ACUTE)
def test_acute_time_words_beat_history(text: str, flag: str) -> None:
    assert flag_of(text) == flag, detect_all(text)


@pytest.mark.parametrize("text", SELF_HARM)
def test_self_harm_is_crisis_even_negated_or_past(text: str) -> None:
    hit = detect(text)
    assert hit is not None and hit.flag == "self_harm" and hit.crisis, detect_all(text)


@pytest.mark.parametrize("text", DENIED_OR_OVER_AFTERWARDS)
def test_denied_or_over_afterwards(text: str) -> None:
    assert detect(text) is None, detect_all(text)


@pytest.mark.parametrize(("text", "flag"), NOT_TAKEN_BACK)
def test_not_taken_back(text: str, flag: str) -> None:
    assert flag_of(text) == flag, detect_all(text)


@pytest.mark.parametrize("text", FICTION_HYPOTHETICAL_INFORMATIONAL)
def test_fiction_hypothetical_informational_figurative(text: str) -> None:
    assert detect(text) is None, detect_all(text)


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        # euphemisms and indirect statements of self-harm
        ("thinking about unaliving myself", "self_harm"),
        ("everyone would be better off if I wasn't here", "self_harm"),
        ("the pills are lined up, tonight is the night", "self_harm"),
        ("我把猫送人了 想安安静静地走", "self_harm"),
        ("我现在站在天台上", "self_harm"),
        ("лучше бы меня не было", "self_harm"),
        ("сижу на подоконнике девятого этажа", "self_harm"),
        # Russian morphology and word order, Chinese synonyms
        ("пописать не могу с утра, живот распирает", "urinary_retention"),
        ("яйцо болит адски и опухло", "testicular_pain"),
        ("头像被雷劈了一样 突然剧痛", "thunderclap_headache"),
        ("肚子疼 硬得像木板一样", "abdominal_emergency"),
        # concepts in either order, anywhere in the message
        ("my chest is killing me", "chest_pain"),
        ("a car hit my son on his bike", "trauma"),
    ],
)
def test_indirect_wordings(text: str, flag: str) -> None:
    assert flag_of(text) == flag, detect_all(text)


SCOPES = [
    # a negation or "but" inside a gap of a pattern
    ("her face is not swollen", None),
    ("my chest does not hurt at all", None),
    ("sore throat but no swelling of the tongue", None),
    # an animal earlier in the sentence, no person named in between
    ("our cat scratched his eye on a branch and it's bleeding a lot", None),
    ("我家的猫从柜子上摔下来了 一动不动", None),
    ("собака порезала лапу, кровь хлещет", None),
    # ... but a person hurt by the animal, or an animal in a simile, is the patient
    ("the neighbour's dog bit my son and he's bleeding heavily", "bleeding"),
    ("his cough sounds like a seal barking and now he can't breathe", "breathing"),
    # hypotheticals, whatever acute words they hold
    ("what if he suddenly collapses tonight, who do I call?", None),
    ("万一半夜突然抽搐了 该怎么办", None),
    ("если вдруг сейчас начнется приступ судорог, что делать?", None),
    # fiction, study and questions asked in advance, anywhere in the message
    ("just read a thriller where the detective has a stroke, how realistic is that", None),
    ("my exam tomorrow is on anaphylaxis and sepsis", None),
    ("孩子误吞了纽扣电池要怎么处理？想提前了解一下", None),
    ("в новом сериале героиня потеряла сознание, интересно снято", None),
    # a context part stands however long ago it began, or whatever follows it
    (
        "took the baby for her jabs this morning, all normal, now she's floppy and won't wake",
        "child_unresponsive",
    ),
    ("腰疼好多年了 今天下面没有感觉了 尿也控制不住", "cauda_equina"),
]


# Wordings written after round 04, beyond the phrase set (the flags the round missed most).
BEYOND_THE_SET = [
    ("our toddler pulled a pan of boiling pasta water off the stove onto himself", "burns"),
    ("my mate touched the electric fence and now his hand is burnt and numb", "burns"),
    ("back went last week, now I can't feel when I'm weeing", "cauda_equina"),
    ("he took way more of his sleeping tablets than he should have", "overdose"),
    ("I'm bursting for a wee but it won't come, it's been 10 hours", "urinary_retention"),
    (
        "haven't pooed or passed wind in 3 days, belly is bloated and I'm vomiting",
        "abdominal_emergency",
    ),
    ("grandma woke up and has no idea what day it is or where she lives", "confusion"),
    ("her arm just flopped down and she can't move it", "stroke"),
    ("I can only see shadows out of my left eye since this morning", "vision_loss"),
    ("my baby feels like a rag doll and only whimpers", "child_unresponsive"),
    ("I'm standing on the bridge", "self_harm"),
    ("孩子把一壶开水打翻在身上 胸口起了好多大水泡", "burns"),
    ("腰痛三天 今天大便拉在裤子上自己都没感觉", "cauda_equina"),
    ("宝宝吃了几颗奶奶的安眠药", "overdose"),
    ("孩子肚子疼 一碰就哭 还发烧", "abdominal_emergency"),
    ("我爸今天突然说话前言不搭后语", "confusion"),
    ("我妈突然视物重影 眼皮也耷拉下来了", "vision_loss"),
    ("宝宝发烧 囟门鼓起来了", "meningitis"),
    ("我现在在楼顶 不想下去了", "self_harm"),
    ("в глаза попала известь", "burns"),
    ("спина болит и стул стал непроизвольным", "cauda_equina"),
    ("парень наглотался обезболивающих и запил пивом", "overdose"),
    ("у деда аденома, целый день не мочился, живот надулся", "urinary_retention"),
    ("папа внезапно начал говорить бессвязно и не узнает улицу", "confusion"),
    ("перед глазом как будто опустилась штора, половины не видно", "vision_loss"),
    ("я больше не могу, хочу со всем покончить", "self_harm"),
    # and benign look-alikes
    ("my son fell off his scooter and grazed his knee", None),
    ("my husband snores and sometimes stops breathing for a second", None),
    ("my vision went blurry for a second when I rubbed my eyes", None),
    ("he fainted at the sight of blood during his jab, fine after a minute", None),
    ("考试太难了 差点心梗", None),
    ("压力大会胸闷吗", None),
    ("宝宝早上尿不湿是干的 后来又尿了好几次", None),
    ("сколько можно выпить таблеток от давления за раз?", None),
    ("бабушка после инсульта много лет, нужна лфк", None),
    ("обожгла руку утюгом, небольшое покраснение", None),
]


@pytest.mark.parametrize(("text", "flag"), BEYOND_THE_SET)
def test_wordings_beyond_the_phrase_set(text: str, flag: str | None) -> None:
    hit = detect(text)
    if flag is None:
        assert hit is None, detect_all(text)
    else:
        assert hit is not None and is_detected(flag, hit), detect_all(text)


# The general rules added after round 05 (docs/REDFLAGS.md): for each, a wording that is not in
# the phrase set and a benign look-alike that must stay silent.
ROUND_05_RULES = [
    # confusion: waking up confused, lost in time, asking for the dead, not knowing where
    ("grandad woke up from his afternoon sleep all disorientated", "confusion"),
    ("woke up confused about what day it was, then remembered it's a bank holiday", None),
    ("nan suddenly thinks it's 1970 and wants to go to work", "confusion"),
    ("he thinks it's 2030 already, time flies", None),
    ("my dad keeps asking for his late mother", "confusion"),
    ("grandma is asking for her late husband's old watch to be repaired", None),
    ("my uncle is not knowing where he is since lunch", "confusion"),
    ("not knowing where she is going to live next year stresses her", None),
    # chest pain without "my"; fighting for every breath
    ("heavy pressure in centre of chest for an hour", "chest_pain"),
    ("no pressure in chest, just a cough", None),
    ("grandad is struggling for every breath", "breathing"),
    ("we were fighting for every point in the final", None),
    # a fit going on too long; collapsing, then jerking
    ("his seizure has gone on for over five minutes", "seizure"),
    ("how long does a seizure usually last?", None),
    ("my uncle keeled over and started jerking", "seizure"),
    ("I fell asleep on the sofa and my legs started jerking", None),
    # black, tarry stool; burns of both hands; a head that hit the ground
    ("his stools are jet black and sticky like tar", "bleeding"),
    ("my poo turned black since I started iron tablets", None),
    ("she scalded both hands badly with the kettle", "burns"),
    ("burnt both hands a little on the baking tray", None),
    ("her head hit the ice and she's been sick twice", "head_injury"),
    ("my head hit the cupboard door, small bump, fine", None),
    # a vehicle that ran into someone; legs crushed or pinned
    ("a van ran into my dad on his bike", "trauma"),
    ("I ran into my dad at the shops", None),
    ("his legs are pinned under the tractor", "trauma"),
    ("the shopping bags got squashed in the boot", None),
    # meningitis: a neck that won't bend, lights that bother
    ("fever and her neck won't bend forward", "meningitis"),
    ("neck won't turn after sleeping funny, no fever", None),
    ("stiff neck and the lights bother her", "meningitis"),
    ("the office lights bother me, they flicker", None),
    # thunderclap: "like I got hit", "zero to ten in seconds", a first-ever sudden headache
    ("felt like I got hit on the back of the head, out of nowhere", "thunderclap_headache"),
    ("he got hit on the head with a ball at cricket, just a bump", None),
    ("my headache went from zero to ten within seconds", "thunderclap_headache"),
    ("my headache went from zero to ten over two days", None),
    ("dad never has headaches but suddenly he has an excruciating one", "thunderclap_headache"),
    ("I never get headaches, just a bit of back pain", None),
    ("my head is exploding with pain, worst headache ever", "thunderclap_headache"),
    ("my brain is exploding with all these forms", None),
    # a young baby written "6wk"; a child hard to rouse; refusing to drink anything
    ("6wk baby with a temperature of 38.2", "infant_fever"),
    ("6wk baby with a temperature of 37.2", None),
    ("my toddler is really hard to rouse after his nap", "child_unresponsive"),
    ("my husband is hard to rouse in the mornings", None),
    ("my daughter is refusing to drink anything", "child_dehydration"),
    ("my son refuses to drink milk, only water", None),
    # overdose: pills to get high, someone else's pills, detergent pods in the mouth
    ("my brother took his mate's tramadol to get high and now he's drowsy", "overdose"),
    ("can you get high from cough syrup?", None),
    ("she swallowed a handful of her mum's pills", "overdose"),
    ("she bought a handful of her mum's favourite sweets", None),
    ("the baby had a laundry pod in her mouth", "overdose"),
    ("we keep the laundry pods in a locked cupboard", None),
    # pregnancy in months ("along") and "I'm expecting, 10 weeks"
    ("my partner is 5 months along and has severe tummy pain", "pregnancy_bleeding"),
    ("my partner is 5 months along and feeling great", None),
    ("I'm expecting, about 10 weeks, and have sharp pain low down", "pregnancy_bleeding"),
    ("I'm expecting a call from the midwife about my scan", None),
    # vision: half of it gone, sudden blindness
    ("half of the vision in my left eye is suddenly gone", "vision_loss"),
    ("what causes sudden blindness in older people?", None),
    ("sudden loss of vision in my right eye", "vision_loss"),
    ("what causes sudden vision loss?", None),
    # back pain and no urge to pass urine; a bladder about to burst; a swollen scrotum
    ("my back is killing me and I can't feel the urge to pee", "cauda_equina"),
    ("no back pain, just haven't felt the urge to wee much today", None),
    ("my bladder feels like it's gonna burst and nothing comes out", "urinary_retention"),
    ("no problems peeing, bladder feels fine", None),
    ("his ball sack is swollen and he's in agony", "testicular_pain"),
    ("he got the sack suddenly last week", None),
    # appendicitis: low on the right with a temperature; pain moving from the navel
    ("pain low on the right side and a high temperature", "abdominal_emergency"),
    ("pain low on the right side after the gym, no fever", None),
    ("pain in the lower right of my tummy and I've got a temp", "abdominal_emergency"),
    ("lower right tummy ache, we hired a temp for the office", None),
    ("pain started at my navel and has moved to the lower right", "abdominal_emergency"),
    ("the rash started at my belly button and spread to the lower right", None),
    # self-harm: can't stop hurting oneself; not wanting to keep going
    ("he can't stop hurting himself", "self_harm"),
    ("I can't stop hurting my back at the gym", None),
    ("honestly I don't want to keep going any more", "self_harm"),
    ("I don't want to keep going to that gym", None),
    # informational and figurative: choking under pressure, whom a condition affects, a
    # documentary about one
    ("totally choked in my exam today", None),
    ("he choked on a grape and can't breathe", "breathing"),
    ("can a stroke happen in your thirties?", None),
    ("I think he's having a stroke, his face is drooping", "stroke"),
    ("listened to a podcast on sepsis yesterday", None),
    ("we watched a documentary on whales and then my son started choking", "breathing"),
    ("as I was drifting off to sleep my legs started jerking", None),
    ("she fell to the floor and her legs started jerking", "seizure"),
    # Chinese: "毫无征兆" (without warning) does not negate the symptom; "不知不觉" is no negation
    ("没有任何征兆，突然剧烈头痛", "thunderclap_headache"),
    ("没有剧烈头痛，只是有点晕", None),
    ("腰疼好几天，刚才不知不觉尿裤子了", "cauda_equina"),
    ("腰疼好几天，没有尿裤子", None),
    # no reaction at all; no longer recognises people
    ("爷爷倒在沙发上，拍他一点反应都没有", "unconscious"),
    ("点了按钮，手机一点反应都没有", None),
    ("奶奶今天突然不认人了", "confusion"),
    ("这孩子认生，见了陌生人就哭", None),
    # clutching the chest; the chest squeezed "like a fist"; cannot draw air in
    ("我爸捂着胸口说喘不上来", "chest_pain"),
    ("我们笑得捂着胸口", None),
    ("胸口这里闷闷的像被人攥住一样", "chest_pain"),
    ("我吸不进气了", "breathing"),
    ("奶茶太稠，吸管吸不进去", None),
    # a fit longer than usual
    ("他有癫痫，这次抽得比平时都久", "seizure"),
    ("他有癫痫，这次发作和平时差不多，已经好了", None),
    # blood: all of it; running down the legs; black and sticky stool
    ("吐出来的全是暗红的血", "bleeding"),
    ("咳出来的痰里有点血丝", None),
    ("血顺着大腿一直往下流", "bleeding"),
    ("大便黑黑的，像柏油一样黏", "bleeding"),
    ("吃了猪血，大便有点黑", None),
    # the tongue too big for the mouth
    ("吃了虾以后舌头变厚了，嘴里放不下", "anaphylaxis"),
    ("舌头上长了个小泡", None),
    ("早上起来眼睛后面胀胀的", None),
    # burns: stove, iron, clothes alight, "烫得很严重", drain cleaner
    ("孩子手按到电熨斗上，手掌发白", "burns"),
    ("手碰到灶台，有点红", None),
    ("烫得很严重，整个手背都起泡了", "burns"),
    ("烫得不严重，就红了一下", None),
    ("通马桶的药水溅到脸上了", "burns"),
    ("通马桶的药水用完了，去买一瓶", None),
    ("烧烤的时候裙子着了", "burns"),
    # trauma: thrown far, a lorry ran into the car, legs pinned, bone through the skin
    ("骑电动车摔了，人被甩出去好几米远", "trauma"),
    ("骑摩托去上班了", None),
    ("卡车撞上了我们的车，人卡在里面出不来", "trauma"),
    ("腿被被子压住了，有点麻", None),
    ("胳膊摔断了，骨头从肉里戳出来", "trauma"),
    # overdose: many or several tablets of a dangerous drug; a dishwasher tablet bitten
    ("我爸一下吃了五片安眠药", "overdose"),
    ("我爸每天吃一片降压药", None),
    ("朋友吃了太多曲马多，叫不太醒", "overdose"),
    ("宝宝把洗碗片塞嘴里咬开了", "overdose"),
    ("洗碗片放在柜子最上面了", None),
    # children: a niece or a little boy; refusing any water; last wee hours ago; too sleepy
    ("侄女两岁，一点水都不喝，嘴唇干裂", "child_dehydration"),
    ("侄女两岁，今天水喝得少了点，尿也正常", None),
    ("宝宝十个月，上一次尿是十个小时前", "child_dehydration"),
    ("小侄子特别能睡，摇他也只是哼一声", "child_unresponsive"),
    ("小侄子特别能吃，每天都很开心", None),
    # pregnancy: twins, a hard belly, shoulder-tip pain
    ("怀双胞胎30周，下面出血了", "pregnancy_bleeding"),
    ("怀双胞胎30周，一切正常", None),
    ("怀孕早期，肩膀尖疼，小腹刺痛", "pregnancy_bleeding"),
    # cauda equina: numb between the legs, buttocks and groin
    ("腰椎间盘突出，两腿中间发麻", "cauda_equina"),
    ("屁股和腹股沟都麻了", "cauda_equina"),
    ("久坐以后腿有点麻，站起来就好了", None),
    # a belly too hard to touch; a neck that hurts when the head bends; light unbearable
    ("肚子疼，硬得碰都不能碰", "abdominal_emergency"),
    ("发烧，低头的时候脖子疼", "meningitis"),
    ("脖子有点僵，是落枕了，不发烧", None),
    ("脖子硬得转不动，手机屏幕的光都受不了", "meningitis"),
    # sepsis: an infected wound with fast breathing or no urine
    ("伤口化脓了，现在呼吸很急促", "sepsis"),
    ("伤口有点红，呼吸正常", None),
    # head injury: the back of the head hit the ground, very sleepy since
    ("滑倒了后脑勺着地，现在特别困", "head_injury"),
    ("滑倒了后脑勺着地，现在没事", None),
    # thunderclap: from zero to ten in a second
    ("头突然一下子从零到十，疼得受不了", "thunderclap_headache"),
    ("头疼程度从零到十打分的话大概三分", None),
    # self-harm: a goodbye message and no answer; joining someone who died; driving into a wall
    ("我哥给我发微信说永别了，现在手机关机", "self_harm"),
    ("同事发消息说对不起，他迟到了", None),
    ("我想去找我妈，她走了两年了，今晚就去", "self_harm"),
    ("想去看看我奶奶，她住在乡下，今天就去", None),
    ("有时候我想开车撞护栏", "self_harm"),
    # figurative, informational, fiction
    ("这电费贵得我吐血", None),
    ("表格看得我要脑溢血了", None),
    ("作业多到窒息", None),
    ("怎么用杯子压一下看是不是脑膜炎？", None),
    ("癫痫发作多久需要叫救护车？", None),
    ("看了个中风的纪录片", None),
    ("胸口疼得要命哈哈开玩笑的", None),
    # pinyin
    ("laogong hun dao le", "unconscious"),
    ("wo ba xiong kou teng", "chest_pain"),
    ("mama chuan bu shang qi", "breathing"),
    ("yeye zhong feng le", "stroke"),
    ("haizi chou chu", "seizure"),
    ("wo xiang zi sha", "self_harm"),
    ("zisha teapot price?", None),
    ("pomogite, syn proglotil magnit", "overdose"),
    # Russian: "ни на что не реагирует" is emphasis, not a denial; "прошло, но" keeps the symptom
    ("мама лежит и ни на кого не реагирует", "unconscious"),
    ("ни на что не жалуется, просто хочу сдать анализы", None),
    ("у сына были судороги, сейчас прошло, но он очень вялый", "seizure"),
    ("у сына был насморк, сейчас все прошло", None),
    ("подруга еле в сознании", "unconscious"),
    # confusion: "меня не узнает", "несет какую-то чушь", "стала путать меня"
    ("бабушка сегодня меня не узнает", "confusion"),
    ("в маске меня никто не узнал, смешно", None),
    ("папа вдруг начал нести какую-то ерунду", "confusion"),
    ("мама вдруг стала путать меня с внучкой", "confusion"),
    # breathing: cannot finish a phrase
    ("муж задыхается и не может договорить фразу", "breathing"),
    ("не может договорить фразу от волнения на сцене", None),
    # seizure: on the floor and shaking; stiffening, then jerking
    ("сосед на полу трясется, глаза закрыты", "seizure"),
    ("сидим на полу и трясемся от смеха", None),
    ("сын вдруг весь напрягся и затрясся", "seizure"),
    ("у меня задергался глаз от усталости", None),
    # stroke: an arm like a whip, words that won't come, the corner of the mouth dropped
    ("у папы левая рука висит плетью", "stroke"),
    ("дед хочет сказать, а слова не выходят", "stroke"),
    ("у мамы вдруг опустился уголок рта", "stroke"),
    ("устала, руки как плети после ремонта, но все двигается", None),
    # bleeding: coughing up bright blood; black sticky stool
    ("откашливаю ярко-красную кровь", "bleeding"),
    ("стул черный и липкий как деготь", "bleeding"),
    ("стул черный, потому что пью активированный уголь", None),
    # burns: white leathery skin; electrical shock with entry and exit marks; caustic cleaner
    ("схватился за горячую духовку, кожа белая и как кожаная", "burns"),
    ("схватился за горячую духовку, чуть покраснело", None),
    ("мужа шарахнуло током от розетки", "burns"),
    ("брызнул средством для прочистки труб в лицо", "burns"),
    ("купил средство для прочистки труб, как им пользоваться", None),
    # trauma: a lorry ran into a car; legs pinned; a fall from a horse is no animal's emergency
    ("грузовик въехал в нашу машину, ноги зажало", "trauma"),
    ("сосед въехал в гараж на новой машине", None),
    ("свалилась с лошади, кость торчит", "trauma"),
    ("лошадь захромала, ветеринар едет", None),
    # sepsis: greyish or bluish skin with a fever
    ("высокая температура, кожа серо-синяя", "sepsis"),
    # meningitis: a neck that will not bend with a fever; a screen too bright
    ("температура 39 и шею не наклонить вперед", "meningitis"),
    ("продуло, шею не повернуть, температуры нет", None),
    ("шея одеревенела, на экран смотреть больно", "meningitis"),
    # thunderclap: "по затылку будто кувалдой", "от нуля до десяти", a first-ever headache
    ("как будто по затылку кувалдой ударили", "thunderclap_headache"),
    ("голова вдруг заболела, за секунду от нуля до десяти", "thunderclap_headache"),
    ("голова у него никогда не болит, а тут вдруг адская боль", "thunderclap_headache"),
    ("голова у меня никогда не болит, спасибо зарядке", None),
    ("голову будто разорвало, внезапно", "thunderclap_headache"),
    # infants written "нашему 6 недель"; a niece; "спит и спит"; refusing any drink
    ("нашему 6 недель, температура 38,2", "infant_fever"),
    ("нашему 6 недель, температура 36,8, все хорошо", None),
    ("у племяшки 2 года, спит и спит, ручки висят", "child_unresponsive"),
    ("пятилетка отказывается от любого питья и плачет без слез", "child_dehydration"),
    ("пятилетка отказывается от молока, пьет только воду", None),
    # overdose: empty blisters beside someone; a named sedative; a dishwasher capsule bitten
    ("нашли брата, а рядом пустые блистеры", "overdose"),
    ("выбросила пустые блистеры в мусор", None),
    ("подруга наглоталась феназепама", "overdose"),
    ("малыш разгрыз капсулу для стирки", "overdose"),
    ("где купить капсулы для стирки подешевле?", None),
    ("с утра подташнивает, наверное что-то не то съел", None),
    ("случайно выпила две таблетки витамина D вместо одной", None),
    # pregnancy: "жду малыша", early pregnancy, doubled over with pain
    ("жду малыша, 10 недель, кровит", "pregnancy_bleeding"),
    ("ранний срок, резкая боль внизу живота", "pregnancy_bleeding"),
    ("можно ли кровотечение на ранних сроках считать нормой?", None),
    ("беременна, 6 месяцев, скрутило от боли", "pregnancy_bleeding"),
    # vision: half the view gone; a curtain over the eye
    ("в левом глазу половины обзора нет", "vision_loss"),
    ("на глаз будто опустилась черная шторка", "vision_loss"),
    ("купила черные шторы в спальню", None),
    # cauda equina: back pain with no urge to pass urine, leaking; numbness of the saddle
    ("поясница болит, позыва в туалет нет, а потом подтекло", "cauda_equina"),
    ("болит спина и не держу мочу", "cauda_equina"),
    ("болит спина, но в туалет хожу нормально", None),
    ("онемение в области седла и боль в пояснице", "cauda_equina"),
    # urinary retention: no urine since noon; "поссать"; a catheter not draining
    ("с обеда нет мочи, живот распирает", "urinary_retention"),
    ("не могу поссать с вечера, очень больно", "urinary_retention"),
    ("катетер не выводит мочу, живот болит", "urinary_retention"),
    ("катетер поставили вчера, все работает", None),
    # testicular: shot through, suddenly, hanging higher
    ("яичко вдруг как прострелило", "testicular_pain"),
    ("яичко висит выше другого и болит", "testicular_pain"),
    # self-harm: a farewell message and no answer; driving into a pole; going to a dead parent
    ("брат написал «прощай» и не отвечает", "self_harm"),
    ("друг написал «прости, опоздаю», скоро будет", None),
    ("думаю въехать на машине в столб", "self_harm"),
    ("хочу уйти к папе, его не стало год назад, сегодня решу", "self_harm"),
    # figurative, informational, fiction
    ("в 3 года были фебрильные судороги, сейчас ему 7", None),
    ("как пользоваться эпипеном?", None),
    ("чем инсульт отличается от инфаркта", None),
    ("смотрела документалку про инсульт", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_05_RULES)
def test_rules_added_after_round_05(text: str, flag: str | None) -> None:
    hit = detect(text)
    if flag is None:
        assert hit is None, detect_all(text)
    else:
        assert hit is not None and is_detected(flag, hit), detect_all(text)


@pytest.mark.parametrize(("text", "flag"), SCOPES)
def test_scopes(text: str, flag: str | None) -> None:
    assert flag_of(text) == flag, detect_all(text)


@pytest.mark.parametrize(("text", "flag"), [*NORMALISATION, *MIXED])
def test_normalisation_and_mixed_language(text: str, flag: str | None) -> None:
    assert flag_of(text) == flag, detect_all(text)


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("my chest is crushing and I want to kill myself", "self_harm"),
        ("a small cut and he can't breathe", "breathing"),
        ("my 5 week old has a fever and is floppy", "child_unresponsive"),
        ("胸口压着疼，我不想活了", "self_harm"),
        ("сильная боль в яичке, не может дышать", "breathing"),
    ],
)
def test_precedence_crisis_then_ambulance_then_emergency(text: str, flag: str) -> None:
    hits = detect_all(text)
    assert hits and hits[0].flag == flag, hits
    levels = [0 if h.crisis else 1 + redflags.DISPOSITIONS.index(h.disposition) for h in hits]
    assert levels == sorted(levels)


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("no wet nappy for 3 hours", None),
        ("no wet nappy for 10 hours", "child_dehydration"),
        ("no wet nappy since this morning", "child_dehydration"),
        ("宝宝十个小时尿不湿都是干的", "child_dehydration"),
        ("подгузник сухой уже 2 часа", None),
        ("can't pee, it's been 2 hours", None),
        ("can't pee for 12 hours, agony", "urinary_retention"),
    ],
)
def test_min_hours_threshold(text: str, flag: str | None) -> None:
    assert flag_of(text) == flag, detect_all(text)


def test_hit_shape_and_language() -> None:
    assert detect("не дышит") == Hit("breathing", "emergency_ambulance", False, "ru")
    assert detect("心梗") == Hit("chest_pain", "emergency_ambulance", False, "zh_Hans")
    assert detect("I want to die") == Hit("self_harm", "emergency_ambulance", True, "en")
    assert detect("") is None
    assert detect("   \n\t ") is None


def test_registry() -> None:
    reg = redflags.registry()
    assert tuple(reg) == RED_FLAG_IDS
    assert {f.disposition for f in reg.values()} == {"emergency_ambulance", "emergency"}
    assert [fid for fid, f in reg.items() if f.crisis] == ["self_harm"]
    assert reg["burns"].disposition == "emergency"
    assert reg["stroke"].disposition == "emergency_ambulance"
    redflags.validate()


# --- robustness -------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8"),  # any code point but lone surrogates
    max_size=300,
)
_WORDS = st.lists(
    st.sampled_from(
        [
            "no",
            "not",
            "chest",
            "pain",
            "不",
            "没有",
            "胸痛",
            "не",
            "боль",
            "в",
            "груди",
            ",",
            ".",
            "can't",
            "breathe",
            "in 2015",
            "刚才",
            "5年前",
            "\u200f",
            "\n",
            "ё",
            "die",
            "死",
        ]
    ),
    max_size=800,
).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_TEXT, _WORDS, st.text(max_size=5000).filter(lambda s: "\ud800" not in s)))
def test_detect_never_raises(text: str) -> None:
    hits = detect_all(text)
    top = detect(text)
    assert (top is None) == (not hits)
    for hit in hits:
        assert hit.flag in RED_FLAG_IDS
        assert hit.language in redflags.LANGUAGES


def _search_loop(rx: re.Pattern[str], text: str) -> list[tuple[int, int, str | None]]:
    out = []
    pos = 0
    while (m := rx.search(text, pos)) is not None:
        out.append((m.start(), m.end(), m.lastgroup))
        pos = m.start() + 1
    return out


def test_dispatch_finds_what_the_whole_alternation_finds() -> None:
    """The split-by-first-character scan is only an optimisation: same matches, same flags."""
    lex = redflags._default()
    texts = [redflags.normalize(p.text) for p in load_phrases()[::3]]
    texts += [redflags.normalize(t) for t in long_paragraphs().values()]
    for lang in lex.languages.values():
        assert lang.dispatch is not None and lang.combo_dispatch is not None, lang.code
        for text in texts:
            got = [(m.start(), m.end(), m.lastgroup) for m in redflags._matches(lang, text)]
            assert got == _search_loop(lang.patterns, text), (lang.code, text)
            spans = redflags._part_spans(lang, text)
            assert spans is not None
            for part, found in zip(lang.combo_parts, spans, strict=True):
                assert found == [(a, b) for a, b, _ in _search_loop(part, text)], part.pattern


def _built_regexes(
    monkeypatch: pytest.MonkeyPatch,
) -> list[
    tuple[redflags._Regexes, list[str], list[tuple[str | None, list[str]]], re.Pattern[str]]
]:
    """Every regex a load puts together from parsed pieces, with what it was built from."""
    built = []
    build = redflags._Regexes.build

    def spy(
        self: redflags._Regexes, prefix: list[str], groups: list[tuple[str | None, list[str]]]
    ) -> re.Pattern[str]:
        rx = build(self, prefix, groups)
        built.append((self, prefix, groups, rx))
        return rx

    monkeypatch.setattr(redflags._Regexes, "build", spy)
    redflags.load()
    return built


def test_assembled_code_is_what_re_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading lays out byte code from each source's code, parsed and translated once: it must be
    exactly what re's compiler produces for the same parse tree, and match like the regex
    text compiled by re.compile."""
    re_compiler = pytest.importorskip("re._compiler")
    assert redflags._LAYOUT, "this Python's re should allow the fast loading path"
    built = _built_regexes(monkeypatch)
    assert len(built) > 300
    texts = [redflags.normalize(p.text) for p in load_phrases()[::25]]
    assembled = [x for x in built if x[0].can_assemble(x[1], x[2])]
    assert len(assembled) > 0.95 * len(built)
    for n, (regexes, prefix, groups, rx) in enumerate(assembled):
        tree, code = regexes.layout(prefix, groups)
        assert re_compiler._code(tree, 0) == code, rx.pattern[:200]
        if n % 10:
            continue
        plain = re.compile(rx.pattern)
        for text in texts:
            for at in range(len(text)):
                a, b = rx.match(text, at), plain.match(text, at)
                assert (a and (a.span(), a.lastgroup)) == (b and (b.span(), b.lastgroup))


@pytest.mark.parametrize(
    ("prefix", "groups"),
    [
        ([], [(None, [r"\b([a-z]{2,5})-\1\b", "foo"])]),  # a back reference in the first source
        (["(?<![a-z])"], [(None, [r"(ab|cd)\1", "x+y"])]),
        ([], [(None, ["a", r"(b)c\1"])]),
        ([], [("f0", ["ab", "a"]), ("f1", ["b(?=c)"])]),
    ],
)
def test_assembly_matches_like_the_text(
    prefix: list[str], groups: list[tuple[str | None, list[str]]]
) -> None:
    re_compiler = pytest.importorskip("re._compiler")
    regexes = redflags._Regexes()
    assert regexes.can_assemble(prefix, groups)
    built, plain = regexes.build(prefix, groups), re.compile(redflags._text(prefix, groups))
    tree, code = regexes.layout(prefix, groups)
    assert re_compiler._code(tree, 0) == code
    for text in ["haha-haha foo", "abab cdcd xy xxy", "aab ab ac", "bcb bcc", "abc bc"]:
        for at in range(len(text)):
            a, b = built.match(text, at), plain.match(text, at)
            assert (a and (a.span(), a.groups(), a.lastgroup)) == (
                b and (b.span(), b.groups(), b.lastgroup)
            )
    # a group that would be renumbered: left to re.compile
    assert not regexes.can_assemble([], [("f0", ["(a)b"])])
    assert not regexes.can_assemble([], [(None, ["(a)", "(b)c"])])


@pytest.mark.parametrize("missing", ["_LAYOUT", "_PARSER"])
def test_slow_paths_match_the_same(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    """Without re's private modules (another Python), loading is slower, matching the same."""
    monkeypatch.setattr(redflags, missing, None if missing == "_PARSER" else False)
    slow = redflags.load()
    if missing == "_PARSER":
        assert all(lang.dispatch is None for lang in slow.languages.values())
    for phrase in load_phrases()[::7]:
        assert detect_all(phrase.text, slow) == detect_all(phrase.text), phrase.text


@pytest.mark.parametrize("name", list(long_paragraphs()))
def test_long_input_is_not_pathological(name: str) -> None:
    text = long_paragraphs()[name]
    start = time.perf_counter()
    detect(text)
    assert time.perf_counter() - start < 0.5, f"{name}: a 5,000-character input took too long"


# --- broken data ------------------------------------------------------------------------------


def _broken(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = redflags.DEFAULT_PATH.read_text(encoding="utf-8")
    assert old in text, f"test fixture out of date: {old!r} not in redflags.toml"
    path = tmp_path / "redflags.toml"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '[flags.burns]\ndisposition = "emergency"',
            '[flags.burns]\ndisposition = "urgent"',
            r"\[flags\.burns\]: unknown disposition 'urgent'",
        ),
        (
            "meningitis = ['meningitis', 'meningococcal']",
            "meningitis = ['meningitis(', 'meningococcal']",
            r"\[lang\.en\.patterns\] meningitis\[0\]: invalid regex 'meningitis\(':",
        ),
        (
            "meningitis = ['meningitis', 'meningococcal']",
            "meningitis = ['meningitis', 'meningococcal']\nheatstroke = ['heat ?stroke']",
            r"\[lang\.en\.patterns\] heatstroke: flag 'heatstroke' is not in the registry",
        ),
        (
            '[flags.vision_loss]\ndisposition = "emergency"\n',
            "",
            r"\[lang\.en\.patterns\] vision_loss: flag 'vision_loss' is not in the registry",
        ),
        (
            "[lang.ru]\n",
            "[lang.ru_old]\n",
            r"\[lang\.ru_old\]: unknown language",
        ),
        (
            "meningitis = ['meningitis', 'meningococcal']",
            "meningitis = ['%nosuchmacro%']",
            r"unknown macro %nosuchmacro%",
        ),
        (
            "meningitis = ['meningitis', 'meningococcal']",
            "meningitis = ['(?:x)?']",
            r"matches the empty string",
        ),
        ("negation_window = 32", "negation_window = 0", r"negation_window: expected a positive"),
        ("after_window = 90", "after_window = -1", r"after_window: expected a positive"),
        (
            "resolvable = false  # symptoms",
            'resolvable = "no"  # symptoms',
            r"\[flags\.stroke\] resolvable: expected true or false",
        ),
        ("[lang.en.units]", "[lang.en.unitz]", r"unknown keys"),
        (
            # found only when translated, not when parsed
            "meningitis = ['meningitis', 'meningococcal']",
            "meningitis = ['meningitis', '(?<=a+)meningococcal']",
            r"\[lang\.en\.patterns\] meningitis\[1\]: invalid regex .*look-behind",
        ),
        (
            "meningitis = ['meningitis', 'meningococcal']",
            "meningitis = ['meningitis', 'meningococcal', '(?P<x>mening)']",
            r"\[lang\.en\.patterns\] meningitis\[2\]: named groups are reserved",
        ),
        (
            "meningitis = ['meningitis', 'meningococcal']",
            "meningitis = ['meningitis', '(?i)meningococcal']",
            r"\[lang\.en\.patterns\]: patterns do not combine: global flags",
        ),
    ],
)
def test_broken_data_is_refused(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(LexiconError, match=rf"^redflags\.toml: .*{expected}") as info:
        redflags.load(path)
    assert str(info.value).startswith("redflags.toml: ")


def test_missing_language_section(tmp_path: Path) -> None:
    text = redflags.DEFAULT_PATH.read_text(encoding="utf-8")
    start = text.index("[lang.ru]\n")
    path = tmp_path / "redflags.toml"
    # Drop every [lang.ru...] table and [[lang.ru.combos]] array: the file ends with them.
    path.write_text(text[: text.rindex("\n# ====", 0, start)], encoding="utf-8")
    with pytest.raises(
        LexiconError, match=r"^redflags\.toml: \[lang\.ru\]: language section missing"
    ):
        redflags.load(path)


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(LexiconError, match=r"^nothere\.toml: file: cannot read"):
        redflags.load(tmp_path / "nothere.toml")
    bad = tmp_path / "redflags.toml"
    bad.write_text("[flags\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"^redflags\.toml: TOML: "):
        redflags.load(bad)


def test_loaded_copy_behaves_like_default(tmp_path: Path) -> None:
    path = tmp_path / "redflags.toml"
    path.write_text(redflags.DEFAULT_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    lex = redflags.load(path)
    assert detect("crushing chest pain", lex) == detect("crushing chest pain")


# --- wording ----------------------------------------------------------------------------------

BUTTON_MAX = 32


def _redflag_entries(locale: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in catalog_files(locale):
        with path.open("rb") as fh:
            cat = read_po(fh, locale=None)
        out.update(
            (m.id, m.string)
            for m in cat
            if isinstance(m.id, str) and m.id.startswith("redflag.") and isinstance(m.string, str)
        )
    return out


@pytest.mark.parametrize("locale", LOCALES)
def test_every_flag_has_wording(locale: str) -> None:
    entries = _redflag_entries(locale)
    problems = []
    for fid in RED_FLAG_IDS:
        full = entries.get(f"redflag.{fid}", "")
        button = entries.get(f"redflag.{fid}.button", "")
        if len(full) <= len(button):
            problems.append(f"[{locale}] redflag.{fid}: missing, or no longer than its button")
        if not button:
            problems.append(f"[{locale}] redflag.{fid}.button: missing")
        if re.search(r"[<>&{}]", full + button):
            problems.append(f"[{locale}] redflag.{fid}: must be plain text (no HTML, no braces)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("locale", LOCALES)
def test_buttons_fit(locale: str) -> None:
    long = {
        msgid: f"{len(text)} characters: {text}"
        for msgid, text in _redflag_entries(locale).items()
        if msgid.endswith(".button") and len(text) > BUTTON_MAX
    }
    assert not long, f"[{locale}] buttons longer than {BUTTON_MAX} characters: {long}"


# A history cue after the match that starts within the window counts even when it ends beyond
# it ("about fifteen years ago" starting 31 characters after "stabbed").
@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("my brother was stabbed outside a bar in town about fifteen years ago", None),
        ("my brother was stabbed outside a bar in town about fifteen minutes ago", "trauma"),
    ],
)
def test_history_cue_starting_in_the_window(text: str, flag: str | None) -> None:
    assert flag_of(text) == flag, detect_all(text)


# A frame in one language covers another lexicon's hit in the same message: a Chinese or
# Russian message about translating or studying an English term is not an emergency; the same
# term with a real event stays one.
@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("我在翻译一篇论文 里面有 anaphylaxis 这个词", None),
        ("пишу курсовую, тема anaphylaxis у детей", None),
        ("我妈 anaphylaxis 了 嘴唇肿了 喘不上气", "anaphylaxis"),
    ],
)
def test_a_frame_covers_every_lexicon(text: str, flag: str | None) -> None:
    assert flag_of(text) == flag, detect_all(text)
