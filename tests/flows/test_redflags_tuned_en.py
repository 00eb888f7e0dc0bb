"""Rules added to the English lexicon after the first training set (train-01).

Each rule covers a family of wordings. For each: an emergency wording that is in no phrase set,
and a benign look-alike that must stay unflagged (None).
"""

from __future__ import annotations

import pytest

from tests.flows.tuned import assert_reads

TRAIN_01_EN_RULES = [
    # vision: "cnt see", an eye that sees only black, black ink, grey in one eye, half the
    # world gone, from blurry to black
    ("i cnt see anything with my left eye", "vision_loss"),
    ("I can't see the point of this appointment", None),
    ("when I close my right eye I see only black", "vision_loss"),
    ("I had my eyes tested and the optician sees nothing wrong", None),
    ("it's like looking through thick black ink in my left eye", "vision_loss"),
    ("the windscreen was like looking through fog this morning", None),
    ("everything went grey in my left eye a minute ago", "vision_loss"),
    ("the sky went white in my photo of the eclipse", None),
    ("the right side of the world is just gone since this morning", "vision_loss"),
    ("half of the world is asleep when I work nights", None),
    ("my vision went from blurry to black in ten minutes", "vision_loss"),
    ("the photo went from blurry to sharp after the update", None),
    # urinary retention: no urine all day, not a drop, can't go for a wee, desperate but nothing
    ("grandad hasn't passed any urine all day and is in pain", "urinary_retention"),
    ("I've peed all day long since starting the water tablets", None),
    ("not a single drop of urine since breakfast, he's in agony", "urinary_retention"),
    ("not a drop of rain all week", None),
    ("he can't go for a wee and his belly is swollen", "urinary_retention"),
    ("I can't go for a walk today, it's raining", None),
    ("I'm desperate to pee but nothing happens, been 10 hours", "urinary_retention"),
    ("I need to pee a lot at night, is that normal?", None),
    # cauda equina: a numb saddle described; leaking without noticing; lost bladder control
    ("my bottom feels like the dentist numbed it and my back is agony", "cauda_equina"),
    ("sitting on nothing but a hard stool all day", None),
    ("I leaked into my underwear and didn't notice, my back is killing me", "cauda_equina"),
    ("the pen leaked in my bag and I didn't notice", None),
    ("lost bladder control this morning and my lower back is agony", "cauda_equina"),
    ("my back aches after gardening but everything else works", None),
    # self-harm: better off without me, the painless way, hurting oneself to cope, marks and
    # a note, knowing how one will do it
    ("my family would be better off without me", "self_harm"),
    ("the team is better off without him", None),
    ("what is the most painless way to end my life", "self_harm"),
    ("what is the quickest way to get to the hospital", None),
    ("I scratch myself until I bleed when I feel numb", "self_harm"),
    ("I burnt myself on the oven tray when I was cooking", None),
    ("I noticed scratches on her wrists and she wears long sleeves in summer", "self_harm"),
    ("he has cuts on his arms from the rose bushes", None),
    ("I know exactly how I'm going to do it, I've written my goodbye note", "self_harm"),
    ("I know how I'm going to do it, the cake will be a surprise", None),
    # head injury: clashed heads, the back of the head, no helmet
    ("my son clashed heads with a friend and now keeps being sick", "head_injury"),
    ("we clashed heads playing rugby, small bump, feel fine", None),
    ("he came off his scooter with no helmet and hit his head, now he's vomiting", "head_injury"),
    ("fell off my bike, no helmet, but I didn't hit my head at all", None),
    # bleeding: vomit full of blood, spurting, a soaked towel, non-stop, through the dressing,
    # black stool with pallor
    ("my dad vomited a bowl full of dark red blood", "bleeding"),
    ("coughed up yellow phlegm this morning", None),
    ("a vein in his leg burst and it's spurting everywhere", "bleeding"),
    ("she was gushing about her new job", None),
    ("the towel round his hand is soaked and it keeps coming", "bleeding"),
    ("the towel is soaked after my shower", None),
    ("her nose has been bleeding nonstop for an hour", "bleeding"),
    ("my phone has been ringing nonstop", None),
    ("the cut keeps soaking through the dressing", "bleeding"),
    ("rain soaked through my jacket", None),
    ("his poo is jet black and he looks pale and clammy", "bleeding"),
    ("my poo is black since I started iron tablets, no dizziness", None),
    ("the cut on his leg bled heavily and still won't stop", "bleeding"),
    ("my nose bled like crazy for a few minutes and then stopped", None),
    # burns: chemicals, a chewed cable, the size of a palm, a hand in the chip pan, blistering
    ("drain cleaner splashed and is eating into his hand", "burns"),
    ("acid reflux burning my throat after dinner", None),
    ("my baby chewed through the phone charger cable and has a burn on her lip", "burns"),
    ("the dog chewed through the charger cable", None),
    ("he has a burn the size of my palm on his chest", "burns"),
    ("I have a bruise the size of a plate on my leg", None),
    ("his hand went into the chip pan at work", "burns"),
    ("my hand went into the bag of crisps", None),
    ("steam from the kettle hit her arm and her skin is peeling", "burns"),
    ("the kettle steamed up the kitchen window", None),
    # trauma: hanging off, a vehicle on top of someone, caught in machinery, an odd angle
    ("his thumb is hanging off after the saw slipped", "trauma"),
    ("my fingernail is hanging off after I caught it", None),
    ("the quad bike rolled over on top of him", "trauma"),
    ("a branch came down on our fence in the storm", None),
    ("his arm got caught in the conveyor belt", "trauma"),
    ("pinned under a pile of paperwork all week", None),
    ("her wrist is at a really odd angle after she fell", "trauma"),
    ("my elbow bends backwards a little, I'm hypermobile", None),
    # stroke: half the face dropped, a lopsided mouth, only grunts come out, a limp arm
    ("half of his face has dropped since lunch", "stroke"),
    ("half of her face is covered in freckles", None),
    ("his mouth has gone lopsided in the last hour", "stroke"),
    ("my smile looks wonky in photos", None),
    ("she's trying to speak but only grunts come out", "stroke"),
    ("the words won't come out when I'm nervous in meetings", None),
    ("his left arm is hanging limp by his side", "stroke"),
    ("my arm went dead after sleeping on it", None),
    ("my hand went numb out of nowhere and my face is drooping", "stroke"),
    ("my leg went numb because I sat on it too long", None),
    ("his face is drooping on one side right now", "stroke"),
    ("my smile looks a bit wonky in this selfie", None),
    # seizure: twitching for minutes, a first fit then another
    ("her arm has been twitching for ten minutes and she won't answer", "seizure"),
    ("my eyelid has been twitching for days", None),
    ("grandad has never had a fit before and just had one in the garden", "seizure"),
    ("I've never had a seizure before, can I still drive?", None),
    ("he had a seizure this morning and just had another", "seizure"),
    ("she had a seizure once as a child", None),
    # confusion: lost in one's own street, a mouth full of marbles
    ("dad got lost in his own street this afternoon and didn't know me", "confusion"),
    ("I always get lost in my own city, no sense of direction", None),
    ("his mouth is full of marbles when he talks, it started an hour ago", "confusion"),
    ("my mouth is full of ulcers", None),
    # chest: a band round the chest
    ("feels like a tight band around my chest and I'm sweating", "chest_pain"),
    ("the seat belt across my chest left a mark", None),
    # breathing: not more than two words, grabbing the throat without a sound
    ("she can't say more than two words without gasping", "breathing"),
    ("I can't say two words in French", None),
    ("she's clutching her throat and can't cough", "breathing"),
    ("he keeps clutching his throat when he sings", None),
    # unconscious: hasn't moved since; slumped in the car (not a machine not responding)
    ("my grandad fell and hasn't moved since", "unconscious"),
    ("the parcel hasn't moved since Tuesday", None),
    ("grandpa is slumped in the car not responding", "unconscious"),
    ("my car is not responding to the key fob", None),
    # overdose: a toxic liquid, all the tablets at once, a child and an open bottle
    ("my son swallowed some antifreeze from the garage", "overdose"),
    ("is antifreeze poisonous to pets?", None),
    ("she took all her tablets at once", "overdose"),
    ("should I take my tablets all at once or spread them out?", None),
    ("my 2 year old got hold of an open bottle of paracetamol", "overdose"),
    ("my daughter helped me open a new bottle of vitamins", None),
    # anaphylaxis: lips like fillers
    ("her lips look like she's had fillers after the peanut", "anaphylaxis"),
    ("she got lip fillers yesterday and they look great", None),
    # a child's age said as "she's 3", "he's 2": floppy, hard to wake, refusing drinks
    ("she's 3 and her head keeps flopping, we can barely wake her", "child_unresponsive"),
    ("he's 4 and dozing off in the car after the zoo", None),
    ("he's 2 and pushes the cup away every time, no wee since morning", "child_dehydration"),
    ("she's 3 and pushes her peas away at dinner", None),
    (
        "my toddler won't drink anything and hasn't had a wet nappy since this morning",
        "child_dehydration",
    ),
    ("my daughter won't drink milk, only juice", None),
    # infant fever: "he's 6 weeks", "running 38"; a thermometer under 38
    ("he's 6 weeks and running 38.2", "infant_fever"),
    ("he's 6 weeks and running 37.2", None),
    ("my 4 week old feels hot and the thermometer says 38.3", "infant_fever"),
    ("my 4 week old felt warm but the thermometer says 36.9", None),
    # thunderclap: head pain all at once; meningitis: a locked neck and fever
    ("headache came on all at once like being hit with a hammer", "thunderclap_headache"),
    ("my headache is a dull ache behind my eyes", None),
    ("her neck is locked and she has a fever of 39", "meningitis"),
    ("my neck is locked after sleeping funny, no fever", None),
    # testicles by other names; appendicitis said otherwise; a rigid belly; rebound pain
    ("my son's nads are swollen and he's been sick", "testicular_pain"),
    ("my nads itch after the gym", None),
    (
        "the pain started around my belly button and moved to the lower right",
        "abdominal_emergency",
    ),
    ("the ache started at my belly button after dinner and went away", None),
    ("pain in the right lower part of my tummy with a fever of 38.5", "abdominal_emergency"),
    ("right lower tooth aches, no fever", None),
    ("my tummy hurts much more when I let go after pressing", "abdominal_emergency"),
    ("my hand hurts when I let go of the bar", None),
    ("my abs are like a board and the pain is unbearable", "abdominal_emergency"),
    ("my stomach is stiff as anything after sit-ups", None),
    # sepsis: an infection and no urine; grey skin and fever; hay fever is not a fever
    ("her UTI got worse and she hasn't had a wee all day", "sepsis"),
    ("my UTI cleared up and I've peed normally since", None),
    ("her skin has gone a grey colour and she has a high fever", "sepsis"),
    ("the dog's skin has gone grey and he has a fever", None),
    ("my mum is shivering and confused with a high fever from her kidney infection", "sepsis"),
    ("my hay fever is bad and I feel drowsy from the tablets", None),
    # pregnancy words: "preggo", "expecting our first"
    ("preggo and bleeding heavily with cramps", "pregnancy_bleeding"),
    ("we're expecting our first in May, any tips on prenatal vitamins?", None),
    # figurative and everyday: knocked out by a shift, seizure meds, laughter, the cold,
    # a confusing leaflet, a throat tight with nerves, EpiPen renewals, blotchy after a bath,
    # a MenB vaccine, taking a temperature, delirium, floppy infant, the difference between,
    # can you get, overdosing on chocolate, dark for a second on standing, puffy eyes, numb
    # after the filling, a lip that swells a little, a sore throat from a cold, muddled when
    # tired, came round straight away, fine today, blue lips after a swim
    ("he was knocked out by a punch and isn't waking up", "head_injury"),
    ("totally knocked out after a double shift, slept till noon", None),
    ("she's having a seizure and we can't find her seizure meds", "seizure"),
    ("can I take paracetamol with my seizure medication?", None),
    ("he's choking on a grape and can't breathe", "breathing"),
    ("the sketch had us wheezing for breath", None),
    ("shivering because I'm just freezing at the bus stop", None),
    ("grandma is suddenly very confused and doesn't know where she is", "confusion"),
    ("I'm confused by the instructions on the inhaler leaflet", None),
    ("my throat is tight and my lips are swelling after the prawns", "anaphylaxis"),
    ("my throat gets tight whenever I'm nervous before speaking", None),
    ("I had to use her EpiPen, her tongue is swelling", "anaphylaxis"),
    ("can I get a replacement EpiPen, mine is out of date", None),
    ("his skin is mottled and he's burning up with a chest infection", "sepsis"),
    ("my legs get mottled after a hot bath and then it fades", None),
    ("stiff neck, fever and a rash that doesn't fade, could it be meningitis?", "meningitis"),
    ("when should my daughter get the MenB vaccine?", None),
    ("my 6 week old has a temperature of 38.5", "infant_fever"),
    ("how should we take a newborn's temperature, under the arm?", None),
    ("since the operation dad is suddenly confused and seeing things", "confusion"),
    ("what are the symptoms of delirium after surgery?", None),
    ("my 3 month old is floppy and won't wake up", "child_unresponsive"),
    ("what is a floppy infant? the nurse mentioned it", None),
    ("I think I'm having a stroke, my arm is weak", "stroke"),
    ("what's the difference between a TIA and a stroke?", None),
    ("she has a fever and her neck is too stiff to bend", "meningitis"),
    ("can you still get meningitis after the vaccine?", None),
    ("my brother overdosed on heroin and is barely breathing", "overdose"),
    ("I overdosed on chocolate at Christmas", None),
    ("I suddenly went blind in my left eye an hour ago", "vision_loss"),
    ("my sight goes dark for a second when I get up quickly", None),
    ("her eyes and lips are puffing up after the peanut butter", "anaphylaxis"),
    ("my eyes are swollen after a late night", None),
    ("one side of my mouth is drooping and I can't lift my arm", "stroke"),
    ("half my face is numb after the filling, is that normal?", None),
    ("my lips swelled up massively after the bee sting", "anaphylaxis"),
    ("my lip swells a little when I eat pineapple", None),
    ("my throat is swelling shut after the antibiotic", "anaphylaxis"),
    ("throat feels swollen from a bad cold but I'm eating fine", None),
    ("grandad gets a little confused when he's tired in the evening", None),
    ("she fainted and hasn't come round", "unconscious"),
    ("grandma fainted in the heat but came round straight away", None),
    ("his lips went blue and he stopped breathing", "breathing"),
    ("my lips went a little blue after swimming in the lake", None),
    # testes "killing me"; a sudden turn with no speech; a bulging soft spot; a burst appendix
    ("my testes are killing me and I keep retching", "testicular_pain"),
    ("this commute is killing me", None),
    ("out of nowhere my dad can't get his words out", "stroke"),
    ("I was so shocked I couldn't speak", None),
    ("my baby's soft spot is bulging", "meningitis"),
    ("my baby's soft spot looks normal, not bulging", None),
    ("I think my appendix has burst", "abdominal_emergency"),
    ("my appendix burst when I was 12", None),
    # history: contagious, well controlled, always a stroke, in the 90s; a homework frame
    ("my son has a stiff neck and a high fever", "meningitis"),
    ("is sepsis contagious?", None),
    ("my epileptic son is having a seizure right now", "seizure"),
    ("my seizures are well controlled on lamotrigine", None),
    ("his last seizure was 10 minutes ago and he is still not waking", "seizure"),
    ("my last seizure was in March, can I drive again?", None),
    ("is this a stroke? her face is drooping", "stroke"),
    ("does a numb hand always mean a stroke?", None),
    ("he had a seizure once before and is fitting again right now", "seizure"),
    ("my uncle had a bad car crash in the 90s", None),
    ("my son is doing his homework and suddenly can't breathe", "breathing"),
    ("what does a seizure look like? it's for my psychology homework", None),
]


@pytest.mark.parametrize(("text", "flag"), TRAIN_01_EN_RULES)
def test_rules_added_after_train_01_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


ROUND_06_EN_RULES = [
    # unconscious: 'hes/shes not responding' without the apostrophe
    ("shes not responding to anything we say", "unconscious"),
    ("shes not answering her phone, probably at work", None),
    # confusion: not knowing who family are; drunk-sounding without drinking; a relative who died
    ("grandpa doesn't recognise who his own grandchildren are since lunch", "confusion"),
    ("I don't know who the new manager is yet", None),
    ("my husband seems drunk but he hasn't had a drop, started an hour ago", "confusion"),
    ("my husband seems drunk after the office party", None),
    ("mum thought I was her sister who passed away ten years ago", "confusion"),
    ("my sister passed away ten years ago and I still miss her", None),
    # chest pain: something heavy sitting on the patient; the heart or ribs in a vice
    ("it's like a ton of bricks pressing on me and I can't stop sweating", "chest_pain"),
    ("the cat is sitting on me and I can't move", None),
    ("his heart feels like it's caught in a vice", "chest_pain"),
    ("my jaw is in a clamp after the dentist", None),
    # seizure: arms and legs jerking; one fit after another
    ("the toddler's arms and legs are jerking, eyes rolled", "seizure"),
    ("my arms and legs are going numb from sitting cross-legged", None),
    ("she's having one seizure after another", "seizure"),
    ("one meeting after another today", None),
    # stroke: an arm and a leg on one side heavy; one side of the face slack
    ("left arm and leg feel heavy as lead and won't lift", "stroke"),
    ("my legs feel heavy after the marathon", None),
    ("the left side of dad's face looks slack and he's dribbling", "stroke"),
    ("the left side of the house looks frozen in the snow photo", None),
    # burns: waxy or bubbling skin; trauma: a stabbing, a vehicle tipped onto someone
    ("the skin on her arm is blistered and looks waxy after the fire", "burns"),
    ("my skin looks waxy in winter", None),
    ("there has been a stabbing outside the shop and he's on the ground", "trauma"),
    ("my stab vest arrived today for work", None),
    ("the tractor tipped over onto him in the field", "trauma"),
    ("the tractor tipped over in the field but nobody was near it", None),
    # thunderclap: a bang of pain in the head, something popping inside it
    ("there was a sudden bang of pain at the base of my skull", "thunderclap_headache"),
    ("the fireworks made a sudden bang", None),
    (
        "it felt like a blood vessel popped in my head, the pain is the worst ever",
        "thunderclap_headache",
    ),
    ("a blood vessel popped in my eye after sneezing", None),
    # overdose: a whole dosette box in one go; 'swalowed' a battery
    ("nan took her whole dosette box in one go by mistake", "overdose"),
    ("nan fills her dosette box once a week", None),
    ("my son swalowed a battery from his toy car", "overdose"),
    ("my son swallowed his food too fast and got hiccups", None),
    # vision: a shadow over part of the sight, half of it gone, a light off in one eye
    ("a dark shadow crept up over half of my vision in my left eye", "vision_loss"),
    ("a shadow crept over the garden as the sun set", None),
    ("the top half of what I see just vanished in my right eye", "vision_loss"),
    ("the top half of the page just vanished when I printed it", None),
    ("it's like someone turned off the lights in my left eye", "vision_loss"),
    ("someone turned off the lights in the office", None),
    # bleeding: pressure held and it still gushes; burns: a chemical splash
    ("she's holding a towel on the gash and it's still gushing", "bleeding"),
    ("we held a towel on the spilt milk and it's still dripping off the table", None),
    ("bleach splashed in his eyes and they're burning", "burns"),
    ("bleach splashed on my jeans and left a mark", None),
    # cauda equina: no feeling of the seat; urinary retention: can't pee at all
    ("I've had back pain all week and I can't feel the toilet seat when I sit", "cauda_equina"),
    ("I can't feel the seat of my bike after a long ride", None),
    ("he can't pee at all and he keeps going back to the toilet", "urinary_retention"),
    ("I can't go at all to the party this weekend", None),
    # abdominal: can't bear the duvet on the belly; self-harm: goodbye then silence,
    # never waking up, doing something to oneself
    ("her tummy hurts so much she can't bear the duvet touching it", "abdominal_emergency"),
    ("I can't bear the duvet on me in this heat", None),
    ("my son texted me goodbye and now his phone is switched off", "self_harm"),
    ("she said goodbye and then called back five minutes later", None),
    ("sometimes I think how peaceful it would be to never wake up", "self_harm"),
    ("it is peaceful to sleep in on Sundays", None),
    ("I'm scared he'll do something to himself tonight", "self_harm"),
    ("he did something to his back lifting boxes", None),
    # in-place widenings: grabbing AT the throat, misspelt fever, he/she moving the neck,
    # any ball to the head, a clipped head, hot drinks, misspelt pregnancy and bleeding
    ("he's grabbing at his throat and can't make a sound", "breathing"),
    ("he's grabbing at his throat because he has a sore throat", None),
    ("fevre of 39 and her neck is too stiff to move", "meningitis"),
    ("fevre blisters on my lip again", None),
    ("he screams when she tilts his neck and the light hurts his eyes", "meningitis"),
    ("he screams when she tilts the camera, silly boy", None),
    ("a cricket ball to the head and now he keeps throwing up", "head_injury"),
    ("a cricket ball to the head yesterday, no symptoms at all", None),
    ("she clipped her head on the cupboard and now won't stay awake", "head_injury"),
    ("she clipped the hedge and won't stay awake past nine", None),
    ("a mug of coffee went over his lap and it is blistering already", "burns"),
    ("the tea was so hot it made my tongue sore", None),
    ("pregant 8 weeks and there's a lot of bleding", "pregnancy_bleeding"),
    ("pregnant 8 weeks and a bit of spotting once, now gone", None),
    ("baby's due in 3 weeks and blood is trickling down my thighs", "pregnancy_bleeding"),
    ("baby's due in 3 weeks and my feet are swollen", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_06_EN_RULES)
def test_rules_added_after_round_06_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


ROUND_06_EN_CUES = [
    # history: last week/Tuesday, a month, 'always has been'; at what age
    ("dad collapsed in the kitchen and isn't responding", "unconscious"),
    ("my son had a seizure last Tuesday and the neurologist wants to see him", None),
    ("my 2 year old is having a febrile seizure right now, what do I do", "seizure"),
    ("at what age do kids usually stop having seizures", None),
    # idioms: dying of hunger, as if hit by a bus; how long a typical seizure lasts;
    # tablets that get muddled; a spare epipen; can you overdose on; which thermometer
    ("my friend was hit by a bus and isn't moving", "unconscious"),
    ("feel like I've been run over by a truck after that gym session", None),
    ("i'm dying of hunger, when is lunch", None),
    ("his seizure has lasted 10 minutes and he's still fitting", "seizure"),
    ("how long does a typical febrile seizure last?", None),
    ("she's muddled and doesn't know where she is", "confusion"),
    ("he keeps getting his tablets muddled up", None),
    ("I used his epipen, his throat is closing", "anaphylaxis"),
    # frames: writing a story, a soap, an exam question, in my lecture
    ("can I get a spare epipen for school?", None),
    ("my son is choking on a sweet right now", "breathing"),
    ("writing a short story where the hero is choking on a sweet", None),
    ("in Emmerdale the pregnant woman was bleeding heavily, is that realistic", None),
    ("exam question: what are the signs of sepsis", None),
    ("in my pharmacology lecture they said a paracetamol overdose can kill", None),
    # hypothetical: if my newborn ever gets; resolved: wearing off, that was it;
    # taken back: false alarm; animals that fell; heartburn burning behind the breastbone
    ("my newborn has a temperature of 38.2 right now", "infant_fever"),
    ("if my newborn ever gets a temperature, should I ring 111?", None),
    ("my speech is slurred and it's getting worse", "confusion"),
    ("my words were slurred after the filling but it's wearing off now", None),
    ("he fainted in the queue, came round, and that was it", None),
    ("I thought she wasn't breathing, false alarm, she was just sleeping deeply", None),
    ("she isn't breathing, please help", "breathing"),
    ("cat fell off the shelf and is limping", None),
    ("grandad fell off the ladder and is not moving", "unconscious"),
    ("heartburn after curry, burning behind my breastbone, antacids help", None),
    ("burning pain behind my breastbone spreading to my jaw", "chest_pain"),
    ("can you overdose on vitamin C?", None),
    ("he overdosed on his insulin and is sweaty and confused", "overdose"),
    ("which ear thermometer should I buy for my 4 week old?", None),
    ("my 4 week old's thermometer reads 38.4", "infant_fever"),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_06_EN_CUES)
def test_cues_added_after_round_06_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


TRAIN_02_EN_RULES = [
    # thunderclap: the skull cracked open; a blow likened, sudden (combo)
    ("out of nowhere it's like my skull cracked open, worst pain ever", "thunderclap_headache"),
    ("my laptop screen cracked open when I dropped it", None),
    ("like a sledgehammer to the back of my head, came out of nowhere", "thunderclap_headache"),
    ("like a hammer to the back of my head, this hangover, I've had it since waking", None),
    # vision: one eye gone black; can't see out of an eye; a shadow across the sight
    ("my left eye has gone completely black in the last ten minutes", "vision_loss"),
    ("my left eye is black and blue after the punch", None),
    ("she can't see anything out of her right eye since lunch", "vision_loss"),
    ("she can't see the stage from the back row", None),
    ("there's a grey shadow across the side of my vision in the right eye", "vision_loss"),
    ("there's a grey shadow across the lawn in the evening", None),
    # self-harm: staring at the pills or the rope (any mention is self_harm)
    ("I keep staring at the pills in the drawer and I can't stop thinking", "self_harm"),
    ("I keep staring at the pills for the week in the organiser to check them", "self_harm"),
    # trauma: bone sticking out, a fall off scaffolding; chest & arm; gulping for air
    ("his leg bone is sticking out through his jeans after the crash", "trauma"),
    ("the bone is sticking out of the dog's dinner bowl", None),
    ("he fell off the scaffolding at work and can't get up", "trauma"),
    ("he fell off the wagon again, started drinking", None),
    ("chest & left arm aching badly for 20 mins", "chest_pain"),
    ("my chest of drawers is crushed in the move", None),
    ("she's gulping for air and can't talk", "breathing"),
    ("the goldfish is gulping at the surface of the tank", None),
    # seizure: some sort of seizure; stroke: half the face not moving; confusion: which town
    ("my son just had some sort of seizure, he's never had one before", "seizure"),
    ("my son wants some sort of fitness tracker", None),
    ("half of grandad's face isn't moving when he smiles", "stroke"),
    ("half of the team isn't moving to the new office", None),
    ("dad doesn't know which town he is in and keeps asking who we are", "confusion"),
    ("I don't know which town the wedding is in", None),
    # combos: lightning in the head; busting and nothing comes out; a rash under a glass;
    # white spirit drunk; a child who can't keep milk down
    ("like being struck by lightning in my head, out of the blue", "thunderclap_headache"),
    ("like being struck by lightning, the news out of the blue", None),
    ("he's been busting for a wee for 10 hours and nothing will come out", "urinary_retention"),
    ("I'm busting for a wee, where is the nearest toilet", None),
    ("purple dots on his legs that don't fade under a glass", "sepsis"),
    ("a red rash that fades when I press a glass on it", None),
    ("my 2 year old drank some white spirit from the shed", "overdose"),
    ("I cleaned the brushes with white spirit in the shed", None),
    ("my 9 month old can't keep any milk down since lunch", "child_dehydration"),
    ("I can't keep water down after the stomach bug", None),
    # widened: something slammed on the head; can't feel the paper; a teste; twins' age
    ("the cupboard door slammed on his head and now he keeps being sick", "head_injury"),
    ("the cupboard door slammed shut and the baby keeps being sick with a cold", None),
    ("my back's been bad for days and now I can't feel the paper when I wipe", "cauda_equina"),
    ("my back's been bad since the move", None),
    ("stabbing pain in his teste that started 30 minutes ago", "testicular_pain"),
    ("the teste strip says negative", None),
    ("twins are 6 weeks and one of them is 38.5", "infant_fever"),
    ("twins are 6 weeks and both feeding well", None),
]


@pytest.mark.parametrize(("text", "flag"), TRAIN_02_EN_RULES)
def test_rules_added_after_train_02_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


TRAIN_02_EN_RULES_2 = [
    # half the face not moving; an eye gone dark; turning the neck is agony; a head about
    # to burst; a child hardly responding; the balls numb with a bad back; not a drop since
    # breakfast; eyebrows gone at a bonfire; grey leather skin; spark out; a rash under a glass;
    # at the bridge wanting it to stop; 20 paracetamol in a day
    ("half her face isn't moving and she can't smile", "stroke"),
    ("half the class isn't moving up a set", None),
    ("eye gone dark suddenly, 5 mins, scared", "vision_loss"),
    ("eye gone red from the chlorine in the pool", None),
    ("fever and turning her neck is agony, she wants the lights off", "meningitis"),
    ("turning the mattress is agony with my bad shoulder", None),
    (
        "his head feels like it's going to burst, came on suddenly a minute ago",
        "thunderclap_headache",
    ),
    ("my inbox feels like it's going to burst, came on suddenly after the holiday", None),
    ("my 3 year old is so sleepy and hardly responding to us", "child_unresponsive"),
    ("my son is hardly responding to my messages from camp", None),
    ("bad back all week and now my balls and the area behind feel numb", "cauda_equina"),
    ("bad back all week and my feet are cold", None),
    ("been trying to wee since breakfast and not a single drop", "urinary_retention"),
    ("been trying to get a table since breakfast, not a single one free", None),
    ("the bonfire flared and his eyebrows are gone and there are blisters everywhere", "burns"),
    ("the bonfire was lovely and the sparklers lit up the garden", None),
    ("her thigh burn looks like grey leather and she can't feel it", "burns"),
    ("these boots look like grey leather but they're plastic", None),
    ("he went spark out after the tackle and isn't answering us", "unconscious"),
    ("I went spark out on the sofa after the roast", None),
    ("he has a rash that won't fade under the glass and a fever", "sepsis"),
    ("the rash fades under the glass, just heat rash", None),
    ("I'm at the bridge and I want it all to stop", "self_harm"),
    ("I'm at the bridge club and I want the bidding to stop", None),
    ("she's had 20 paracetamol today for toothache", "overdose"),
    ("she's had 20 minutes of sleep today", None),
    # it passed within minutes (a resolvable flag), unless it has not passed
    ("she can't breathe and it hasn't passed in 20 minutes", "breathing"),
    ("I felt like I couldn't breathe on the bus, it passed in 5 minutes", None),
]


@pytest.mark.parametrize(("text", "flag"), TRAIN_02_EN_RULES_2)
def test_more_rules_added_after_train_02_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Round 07 (en): rules added after round 07's misses and false alarms, each with a wording in no
# phrase set and a benign look-alike.
ROUND_07_EN_RULES = [
    # confusion: talking complete nonsense; can't follow a simple conversation
    ("my husband is talking utter gibberish and looks lost", "confusion"),
    ("the pundit was speaking on the radio about the match", None),
    ("mum suddenly can't follow a normal conversation with us", "confusion"),
    ("I can't follow the football on the radio, too fast", None),
    # confusion: a new delusion or bizarre act that started suddenly or today
    ("grandpa thinks the nurses are trying to poison him, it started this morning", "confusion"),
    ("grandpa thinks the nurses are lovely, he started physio this morning", None),
    ("mum put her keys in the freezer and her slippers in the oven, all of a sudden", "confusion"),
    ("I put the peas in the freezer after the shopping", None),
    # 'none of it makes sense' is not a denial
    ("my nan is talking rubbish since lunch, none of it makes any sense", "confusion"),
    ("chest pain, fainting, blue lips: none of it, just a cough", None),
    # breathing: can't. breathe. with stops; stridor when trying to breathe in; back blows given
    ("i. cant. breath.", "breathing"),
    ("can't. wait. for the weekend.", None),
    ("she makes a high-pitched noise when she tries to breathe in, she's blue", "breathing"),
    ("the kettle makes a high-pitched noise when it boils", None),
    ("gave him five back blows and the sweet is still stuck", "breathing"),
    ("the swimming coach taught back strokes today", None),
    # seizure: jerking that spread to the whole body; a bitten tongue with jerking or on the floor
    ("his left leg was twitching and it moved to the rest of his body", "seizure"),
    ("my eye has been twitching all week from tiredness", None),
    ("he bit his tongue and his arms were jerking on the kitchen floor", "seizure"),
    ("I bit my tongue eating a sandwich and it's sore", None),
    # bleeding: stools that are just blood or clots
    ("my stools are nothing but bright red blood since lunch", "bleeding"),
    ("my stools are darker since I started iron tablets", None),
    # anaphylaxis: hives and breathing funny or wheezing
    ("after the peanut she has hives all over and is wheezing", "anaphylaxis"),
    ("after the walk she has hives from the nettles, itchy but fine", None),
    # burns: a blister across the palm from a hot object; 'doesn't hurt' only when not 'any more'
    ("he grabbed the hot pan and there's a blister right across his hand", "burns"),
    ("a blister across my heel from the new shoes", None),
    ("splashed boiling water on my leg, doesn't even hurt, it's white", "burns"),
    ("brushed the oven door, pink mark, doesn't even hurt now", None),
    # head injury: a head knock on blood thinners
    ("nan banged her head on the cupboard and she takes rivaroxaban", "head_injury"),
    ("nan takes rivaroxaban, can she have ibuprofen for her knee?", None),
    # trauma: crushed in a machine; a deep wound where fat or muscle shows
    ("his arm got mangled in the conveyor at the warehouse", "trauma"),
    ("my hand got crushed in the crowd at the concert, just bruised", None),
    ("the cut on his shin is so deep you can see the tendon", "trauma"),
    ("the cut of this steak is lean, you can see the fat on the edge", None),
    # thunderclap: the most excruciating headache ever; full strength within seconds; a pop in
    # the back of the head; the head exploded with pain
    ("the most excruciating headache of my life just hit me", "thunderclap_headache"),
    ("the most boring lecture of my life just ended", None),
    ("the headache went to full strength in a second, like a bang", "thunderclap_headache"),
    ("felt a pop in the back of my head and then blinding pain", "thunderclap_headache"),
    ("felt a pop in the back of my knee on the run", None),
    ("his head just out of nowhere exploded with pain", "thunderclap_headache"),
    ("my head is exploding with ideas for the garden", None),
    # abdominal: severe pain in the tummy going to the back; low right pain that started round the
    # middle or that a jolt or a cough makes much worse
    ("excruciating pain in my upper tummy shooting through to my back", "abdominal_emergency"),
    ("mild pain in my tummy after lunch, nothing to my back", None),
    ("bottom right of my belly is agony, it started near my belly button", "abdominal_emergency"),
    ("every bump in the car makes it agony, pain in my lower right side", "abdominal_emergency"),
    ("lower right of the screen is cracked, it started near the button", None),
    # urinary retention: no wee comes out
    ("he keeps trying but no urine is coming out, 9 hours now", "urinary_retention"),
    ("no toothpaste is coming out of the tube", None),
    # child dehydration: won't drink more than a sip
    ("my 2 year old won't drink more than a few sips since yesterday", "child_dehydration"),
    ("my 2 year old won't eat more than a few bites of broccoli", None),
    # pregnancy: one-sided pain with spotting or so bad she can't stand straight
    ("6 weeks pregnant, pain on one side and now some bleeding", "pregnancy_bleeding"),
    ("22 weeks pregnant, twinge on one side when I stand up, midwife says ligament pain", None),
    # vision: halos round lights and a painful eye
    ("seeing halos around the lights and my left eye is throbbing", "vision_loss"),
    ("I see halos around street lights at night since my cataract, no discomfort", None),
    # cauda equina: back pain and can't pee and feel it; both legs going numb
    ("bad back and I can't wee or feel when I need to", "cauda_equina"),
    ("bad back and both my legs are tired after the hike", None),
    # self-harm: someone cutting her arms; burning oneself with a cigarette
    ("my son is cutting his wrists, I found the blades", "self_harm"),
    ("my son is cutting his hair himself with the kitchen scissors", None),
    ("I keep burning my arms with cigarettes when it gets bad", "self_harm"),
    ("I burned myself with a lighter while lighting the candles, tiny red mark", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_07_EN_RULES)
def test_rules_added_after_round_07_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Round 07 (en): cues and idioms for its false alarms (a habit, an indirect question, a show's
# episode, "stable now", blindness from a chronic eye disease), and emergencies they must not hide.
ROUND_07_EN_CUES = [
    # a toddler who puts everything in his mouth (a habit)
    ("we lock the button batteries away, she's 1 and sticks everything in her mouth", None),
    ("my toddler put a button battery in his mouth and swallowed it", "overdose"),
    # asked what a condition actually is
    ("my son asked me what a stroke really means", None),
    ("I don't know what a stroke looks like but his face is drooping", "stroke"),
    # an episode of a named show where
    ("the episode of House where the girl has sepsis was so tense", None),
    # stable now
    ("my brother collapsed at work on Monday, he's stable now in the ward", None),
    ("my brother collapsed at work and isn't stable, he's not waking up", "unconscious"),
    # blindness from a named chronic eye disease is history
    ("my grandad went blind from macular degeneration, can I get tested?", None),
    ("I suddenly went blind in my right eye ten minutes ago", "vision_loss"),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_07_EN_CUES)
def test_cues_added_after_round_07_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Round 08 (en): rules for its misses. Each: an emergency wording in no phrase set, and a benign
# look-alike that must stay unflagged.
ROUND_08_EN_RULES = [
    # someone who does not recognise their own family
    ("grandad doesnt recognise his own grandchildren since he got up this morning", "confusion"),
    ("the passport gate doesnt recognise the kids photos, whats the fix", None),
    # pain on one side of the chest
    ("a dull ache on the left side of my chest since lunch", "chest_pain"),
    ("a rash on the left side of my chest, itchy", None),
    # only a few words out, or at a time
    ("she can only say a few words before she has to stop for air", "breathing"),
    ("my toddler can only say a few words, is his speech delayed?", None),
    # a noise with every breath
    ("a squeaking sound on every breath since she choked on a grape", "breathing"),
    ("my car makes a squeaking sound on every bump", None),
    # fits without coming round in between
    ("he keeps fitting and hasnt come round in between them", "seizure"),
    ("the kids never came round in between the holidays", None),
    # an arm and a leg on one side numb or weak
    ("my face and arm on the right side have gone numb and heavy", "stroke"),
    ("my arm and leg ache after the gym on the right side", None),
    # a large amount of blood in the toilet
    ("there's loads of blood in the loo after I went", "bleeding"),
    ("a big bowl of blood oranges on the table", None),
    # hives all over and faint or vomiting
    ("he came out in welts all over his body and now he's really dizzy", "anaphylaxis"),
    ("hives all over after the new washing powder, itchy but otherwise fine", None),
    ("hives all over and I feel like I'm going crazy with the itch", None),
    # a caustic product on the skin
    ("I splashed oven cleaner on my arms and the skin is peeling", "burns"),
    ("spilled bleach on my jeans, ruined them", None),
    # a baby who fell off a changing table or bed and then a soft swelling or quieter
    ("she toppled off the sofa onto the tiles and is drowsier than usual", "head_injury"),
    ("he fell off the sofa laughing, he's fine", None),
    # a head hit and hard to rouse later
    ("mum banged her head on the cupboard and now she's impossible to rouse", "head_injury"),
    ("my teenager is impossible to rouse on school mornings", None),
    # caught in a machine
    ("his arm got dragged into the conveyor at work", "trauma"),
    ("my sleeve got caught in the door, ripped my shirt", None),
    # fell down stairs and neck pain or tingling limbs
    ("he tumbled down the stone steps and now his legs feel numb", "trauma"),
    ("I fell down the steps last summer and bruised my knee", None),
    # a fall and a leg that looks shorter or turned out
    ("nan slipped in the kitchen and her foot is now pointing outwards", "trauma"),
    ("my son's left leg is shorter than the other, the physio suggested insoles", None),
    # a red streak from a wound and a fever
    ("red lines spreading up from the splinter in his hand and he has a temperature", "sepsis"),
    ("red lines spreading up the wall from the damp patch", None),
    # shivering and confused with an infection
    ("dad has a water infection and is shaking and muddled today", "sepsis"),
    ("I'm confused about my antibiotics, should I take them with food?", None),
    # dots that stay when pressed and a fever
    ("a temperature and purple specks on his legs that stay when you press them", "meningitis"),
    ("freckles on my arms that stay when I press them", None),
    # a bulging soft spot a few words away
    ("her fontanelle on the top is bulging and she won't feed", "meningitis"),
    ("her fontanelle on the top is closing up, normal at 18 months?", None),
    # sunken eyes or crying without tears, a child
    ("my 3 year old is crying without any tears and hasnt eaten", "child_dehydration"),
    ("I cried without any tears at the film last night", None),
    # a child being sick who has not been for a wee
    ("my daughter has a tummy bug and hasnt been for a wee all day", "child_dehydration"),
    ("my daughter hasnt been for a wee since school, is that ok? she drank loads", None),
    # a child into a packet of tablets with some missing
    ("my 3 year old got into grandma's heart tablets and two are missing", "overdose"),
    ("my 3 year old found my glasses, two screws are missing", None),
    # a weekly medicine taken daily
    ("she has been taking her alendronate every day", "overdose"),
    ("she has been taking her vitamins every day", None),
    # a week's tablets or a dosette box gone
    ("dad's pill organiser was empty this morning and it was full last night", "overdose"),
    ("my pill organiser is nearly full, can you send the repeat?", None),
    # a TV remote is not a programme
    ("she swallowed a battery out of the telly remote", "overdose"),
    ("I saw on the telly that someone swallowed a battery", None),
    # lost most of the sight in one eye
    ("I lost half of the sight in my left eye an hour ago", "vision_loss"),
    ("I lost half of my glasses down the drain", None),
    # back trouble and numb inner thighs, or can't tell when finished weeing
    ("sciatica for weeks and now I cant tell if ive finished weeing", "cauda_equina"),
    ("I cant tell if ive finished the course of tablets", None),
    # back pain into both legs and feet that drag
    ("low back pain and both legs weak, my foot keeps slapping the ground", "cauda_equina"),
    ("both legs fine, I just have a dropped foot arch and flat feet", None),
    # a catheter that has not drained
    ("his catheter has stopped draining and he's in pain", "urinary_retention"),
    ("his catheter bag needs changing, where do I get more", None),
    # pain low on the right and it hurts when jumping, or bent double
    ("pain lower right, she's bent double", "abdominal_emergency"),
    ("rash on the lower right of my back, he's bent over laughing at me", None),
    # no wind and vomiting
    ("throwing up and not passing any wind for two days", "abdominal_emergency"),
    ("no wind in the garden today, perfect for the bbq", None),
    # belly pain and can't lie still
    ("my stomach is in agony and I can't keep still", "abdominal_emergency"),
    ("the kids can't sit still, they're bouncing off the walls", None),
    # thinking of hurting oneself, even denied
    ("not thinking about harming myself but it's getting hard", "self_harm"),
    ("thinking about hiring myself out as a tutor", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_08_EN_RULES)
def test_rules_added_after_round_08_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Round 08 (en): cues and idioms for its false alarms (a general question, a supply of adrenaline
# pens, news, a ward's name, an exam station), and emergencies they must not hide.
ROUND_08_EN_CUES = [
    ("can kids catch sepsis from a cut knee at the park?", None),
    ("he caught meningitis, his neck is stiff and he has a fever now", "meningitis"),
    ("I'm so worried about having a stroke like my dad did", None),
    ("I'm worried, I think I'm having a stroke, my face is drooping", "stroke"),
    ("when should I give an epipen to my son, just asking", None),
    ("I gave him the epipen and his lips are still swelling", "anaphylaxis"),
    ("I need a prescription for two new epipens before the trip", None),
    ("is sepsis rare in healthy young people", None),
    ("my grandma had her foot amputated due to gangrene years back", None),
    ("his foot was amputated by the lawnmower blade just now", "trauma"),
    ("we are running an overdose prevention session at the youth club", None),
    ("he took an overdose of his sleeping pills an hour ago", "overdose"),
    ("how do I find the burns unit at the hospital for my appointment", None),
    ("my colleague had a miscarriage last month, what do I say to her", None),
    ("I read there had been a shooting near the school, the kids are anxious", None),
    ("our exam station on Friday is a sepsis scenario", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_08_EN_CUES)
def test_cues_added_after_round_08_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Round 09 (en): a rule for each family of its missed emergencies, with a benign look-alike.
ROUND_09_EN_RULES = [
    # not (really) with us yet, hasn't properly come round
    ("the fit has finished but he still isn't really with us, just staring", "unconscious"),
    ("my grandad is not with us any more, can I cancel his appointment?", None),
    # sudden numbness or weakness in one arm and leg
    ("dad has sudden weakness in his right arm and leg, started at breakfast", "stroke"),
    ("I get numbness in my left arm and leg when I sit cross-legged too long", None),
    # a throat itchy and tight
    ("ate a cashew at the party and my throat feels tingly and tight", "anaphylaxis"),
    ("my throat is itchy and sore from the hay fever", None),
    # jumped off a roof, a bridge or a numbered floor
    ("my brother jumped from a third floor window and he can't move his legs", "trauma"),
    ("the kids jumped off the sofa all afternoon and now they're asleep", None),
    # an object gone right through a foot or hand
    ("a nail from the pallet went straight through his hand at work", "trauma"),
    ("a nail went through the tyre of my bike on the way home", None),
    # needs to pee but can't; hasn't urinated at all today
    ("he's bursting for a wee but just can't, in agony", "urinary_retention"),
    ("I always need a pee but can't find a loo on the motorway", None),
    (
        "grandad hasn't passed urine at all since he got up and his belly hurts",
        "urinary_retention",
    ),
    ("grandad hasn't been out at all today because of the rain", None),
    # found on the floor and won't talk or respond
    ("found grandpa lying on the kitchen floor and he can't speak to me properly", "unconscious"),
    ("found my glasses on the floor and the kids won't talk about who broke them", None),
    ("found my phone on the floor and it won't turn on", None),
    # asthma and the reliever not helping
    ("her asthma is really bad tonight, the ventolin isn't helping at all", "breathing"),
    ("my asthma nurse says I'm still struggling to remember the brown inhaler", None),
    # a head hit and clear fluid from the nose or an ear
    (
        "he banged his head on the radiator and now clear fluid is leaking from his ear",
        "head_injury",
    ),
    ("clear watery stuff running from my nose every morning, hay fever season", None),
    # a headache that began like a switch, or the worst one ever had
    ("headache came on like someone hit a switch, two minutes ago", "thunderclap_headache"),
    ("my toddler flicked the light switch all evening and now I have a headache", None),
    # a child and a household chemical on the mouth, swallowed or drooling
    ("my toddler got into the dishwasher tablets and is drooling loads", "overdose"),
    ("how do I store bleach safely with a toddler in the house", None),
    # back trouble and both legs giving way, the soles of both feet numb
    ("since the disc went, the soles of both feet have gone numb", "cauda_equina"),
    ("my back aches and my legs feel like jelly after leg day at the gym", None),
    # no poo, vomiting and a distended belly
    (
        "my son hasn't done a poo in five days, keeps vomiting and his belly is swollen up",
        "abdominal_emergency",
    ),
    ("toddler constipated, no poo for 4 days, tummy a bit bloated, not vomiting", None),
    # belly pain through to the back and vomiting over and over
    (
        "tummy pain going straight through to his back and he can't stop being sick",
        "abdominal_emergency",
    ),
    ("stomach ache going through to my back after a big curry, feel fine otherwise", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_09_EN_RULES)
def test_rules_added_after_round_09_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Round 09 (en): cues and idioms for its false alarms (a past operation, a stay in hospital,
# hearsay from school, the usual state, fine after a crash, recovering, a dog breed, a practice
# scenario, money bleeding out, a bruised nail, an adrenaline pen's paperwork), and a child's
# baseline before it began; with emergencies they must not hide.
ROUND_09_EN_CUES = [
    ("I had an operation for a torsion when I was 12, will it affect fertility?", None),
    ("my nephew was in hospital for sepsis last spring, is he more at risk now?", None),
    (
        "a girl at my daughter's school had a seizure in assembly, should I talk to her about it",
        None,
    ),
    ("my son is having a seizure right now at school", "seizure"),
    ("mum's memory is muddled in the mornings as usual, can we review her tablets", None),
    ("my brother was in a motorbike crash last night and he's fine, just sore", None),
    ("my uncle had meningitis and is recovering at home, can we visit him?", None),
    ("our spaniel collapsed at the park and the vet is seeing him", None),
    ("we ran a training scenario on anaphylaxis at work today", None),
    ("the business is haemorrhaging money since the new rent", None),
    ("I trapped my finger in the door and my nail has gone black", None),
    ("the school wants a new epipen care plan signed by the gp", None),
    ("does charcoal actually work for a paracetamol overdose?", None),
    ("he took an overdose of paracetamol, will charcoal actually work for him?", "overdose"),
    (
        "my girl was playing happily this morning and now she's floppy and won't wake up",
        "child_unresponsive",
    ),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_09_EN_CUES)
def test_cues_added_after_round_09_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Someone on a roof, bridge or ledge who says they will jump, or threatens to jump off
# something (found while reviewing round 09's rules: missed when the words came after).
JUMP_EN = [
    ("my flatmate got onto the roof of the car park, keeps yelling she'll jump", "self_harm"),
    ("my brother is threatening to jump out of the window", "self_harm"),
    ("the lads on the bridge were jumping into the lake for a dare, all fine", None),
    ("my toddler keeps threatening to jump in every puddle", None),
]


@pytest.mark.parametrize(("text", "flag"), JUMP_EN)
def test_threat_to_jump_en(text: str, flag: str | None) -> None:
    assert_reads(text, flag)
