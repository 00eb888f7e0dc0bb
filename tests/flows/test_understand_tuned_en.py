"""Rules added to the English prefill after prefill-05's misses.

Each rule covers a family of wordings. For each: a wording that is in no prefill set, and a
look-alike the rule must not change.
"""

from __future__ import annotations

import pytest

from flows.understand import understand

PREFILL_05_EN_RULES = [
    # hair that has been falling out is about health (the fallback category)
    ("my hair's been coming out in handfuls since the summer", "category", "other"),
    ("my hair has been cut short since the summer", "category", None),
    # when the writer came back from a trip is not the onset
    ("flew back from spain last week, since yesterday a bad cough", "duration", "days_1_3"),
    ("bad cough since last week, i was in spain", "duration", "days_4_7"),
    # the children the writer can't keep up with or snaps at are context, not the patient
    ("knees hurt for weeks, can't keep up with the grandkids any more", "category", "back_joint"),
    ("shouting at the kids all the time, my mood is so low lately", "category", "mental_health"),
    ("my son's knees hurt for weeks after football", "category", "child_illness"),
    # the chest wall or breastbone feels bruised; pain along the breastbone; costochondritis
    ("my breastbone feels bruised and tender since the weekend", "category", "chest_pain"),
    ("an ache down my sternum when i twist, about 3 days", "category", "chest_pain"),
    ("my shin is bruised where the trolley hit it", "category", "injury"),
    # pain where the kidneys are is urinary, not a tummy ache in the side
    ("aching around my left kidney since this morning", "category", "urinary"),
    ("ache in my left side since lunch", "category", "abdominal_pain"),
    # a cut or graze that is not healing or is oozing is a skin complaint, a fresh one an injury
    ("graze on my elbow still not healed after two weeks, a bit of pus", "category", "skin"),
    ("a deep cut on my thumb from the bread knife, bleeding a lot", "category", "injury"),
    # a review of a named long-term condition; a long-term medicine just started
    ("osteoarthritis review is due, knees stiff every morning", "category", "chronic_review"),
    ("my arthritis is flaring in my fingers since yesterday", "category", "back_joint"),
    ("just started amlodipine and my ankles are puffy", "category", "chronic_review"),
    ("my ankles are sore after the long walk", "category", "back_joint"),
    # "one" after left/right/the/this is a thing, not a rating of 1
    ("a sore ear and a bit of pain in the right one too", "severity", None),
    ("sore tooth, the pain is a one really, just annoying", "severity", 1),
]


@pytest.mark.parametrize(("text", "field", "expected"), PREFILL_05_EN_RULES)
def test_rules_added_after_prefill_05_en(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected


# Prefill-06 (en): each rule with wordings in no set, and a look-alike it must not change.
PREFILL_06_EN_RULES = [
    # an illness someone else had is a likely cause, not the complaint
    ("temperature of 38.6 since lunch, my flatmate had flu last week", "category", "fever"),
    ("my flatmate had flu last week and now i have a bad cough", "category", "cough_cold"),
    # a rating with "ish" joined on
    ("giddy when i stand up, give it a 4ish", "severity", 4),
    ("giddy when i stand up since about 5ish this evening", "severity", None),
    # a burning in the (upper) stomach
    ("a burning in my stomach at night for a week", "category", "abdominal_pain"),
    ("a burning in my throat when i swallow", "category", "sore_throat_ear"),
    # the child the writer hurt their back lifting is context
    ("my shoulder ached since carrying my granddaughter upstairs", "category", "back_joint"),
    ("my granddaughter has a sore shoulder since the weekend", "category", "child_illness"),
    # a sport said with -ing
    ("hurt my wrist snowboarding on saturday, still swollen", "category", "injury"),
    # a long-term medicine just started, said as "the new"
    ("started the new atorvastatin on monday and my shoulders ache", "category", "chronic_review"),
]


@pytest.mark.parametrize(("text", "field", "expected"), PREFILL_06_EN_RULES)
def test_rules_added_after_prefill_06_en(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected


# Prefill-07 (en): each rule with wordings in no set, and a look-alike it must not change.
PREFILL_07_EN_RULES = [
    # a wound that is not healing or oozing is a skin complaint; a fresh wound is an injury
    ("the wound on my heel still isn't healing after a week", "category", "skin"),
    ("deep wound on my palm from a kitchen knife tonight", "category", "injury"),
    # bruising easily or more than usual is no injury (on a blood thinner: a review)
    ("on apixaban and bruising very easily lately", "category", "chronic_review"),
    ("bruised my hip on the table corner", "category", "injury"),
    # sore throats (plural); the glands in the neck swollen
    ("I keep getting sore throats every winter", "category", "sore_throat_ear"),
    ("glands in my neck are really swollen since friday", "category", "sore_throat_ear"),
    ("my neck is stiff and sore since friday", "category", "back_joint"),
    # an ache on the left or right side of the chest
    ("sharp twinge on the left side of my chest when i twist", "category", "chest_pain"),
    # lower back pain on one side with a urinary complaint; alone it stays a back complaint
    ("ache in my lower back on the left and peeing every half hour", "category", "urinary"),
    ("pain in my lower back on the left after gardening", "category", "back_joint"),
    # the children had it first: the writer is the patient
    ("sniffles and a cough, my daughter had it first", "category", "cough_cold"),
    ("my daughter has a cough and a runny nose", "category", "child_illness"),
    # an age word before "N days ago" is no age
    ("twisted my knee chasing my toddler 3 days ago", "duration", "days_1_3"),
    ("my toddler is 3 and has had a rash since monday", "age_years", 3),
    # how long an episode lasted is no onset
    ("dizzy spell this afternoon, settled after 10 minutes", "duration", "today"),
    ("dizzy spells started 10 minutes ago", "duration", "minutes"),
    # "a solid 6", "i'd say 4", ", a 5 most of the time", "pain isn't bad, maybe 3ish"
    ("earache, a strong 7 at night", "severity", 7),
    ("knee pain, i'd say 5", "severity", 5),
    ("i'd say 5 days now", "severity", None),
    ("hip aches, a 4 most of the time", "severity", 4),
    ("pain is mild maybe 2ish", "severity", 2),
]


@pytest.mark.parametrize(("text", "field", "expected"), PREFILL_07_EN_RULES)
def test_rules_added_after_prefill_07_en(text: str, field: str, expected: object) -> None:
    assert getattr(understand(text), field) == expected
