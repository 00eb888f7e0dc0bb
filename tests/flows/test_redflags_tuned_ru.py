"""Rules added to the Russian lexicon after the first training set (train-01).

Each rule has an emergency wording that is not in any phrase set and a benign look-alike that
must stay unflagged.
"""

from __future__ import annotations

import pytest

from tests.flows.tuned import assert_reads

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
    # trauma: a bone sticking out
    ("у мужа из голени торчит кость", "trauma"),
    ("из супа торчит косточка", None),
    # trauma: a gun wound
    ("брата ранили из пистолета в живот", "trauma"),
    ("дед выстрелил из ружья в воздух, чтобы отпугнуть кабанов", None),
    # trauma: crushed under something heavy
    ("на стройке рабочего завалило плитой", "trauma"),
    ("снегом завалило всю дорогу к даче", None),
    # trauma: more vehicles that hit someone
    ("велосипедиста сбила маршрутка", "trauma"),
    ("маршрутка сбила график, опоздала на работу", None),
    # trauma: impaled
    ("сын напоролся на арматуру животом", "trauma"),
    ("напоролся на грубость в магазине", None),
    # trauma: a finger or limb torn off
    ("мужу отрубило топором два пальца, он отрубил их полностью", "trauma"),
    ("оторвал заусенец у пальца", None),
    # trauma: a stab in the body
    ("ударили заточкой под ребра", "trauma"),
    ("коллега воткнул нож в спину на совещании", None),
    # trauma: a limb bent the wrong way
    ("у дочки запястье странно вывернуто после падения с горки", "trauma"),
    ("вывернул шапку наизнанку", None),
    # trauma: a vehicle rolled over; ribs moving
    ("наш джип опрокинулся в кювет", "trauma"),
    ("перевернул лодку на зиму вверх дном", None),
    # trauma: falls from more heights
    ("дед сорвался с чердака на бетонный пол", "trauma"),
    ("дед принес старые книги с чердака", None),
    # cues: a decade is history; nobody hurt; what first aid is; a series, an essay, a course
    ("в девяностых дядя разбился на мотоцикле, сейчас хромает", None),
    ("столкнулись на парковке, все целы", None),
    ("какая первая помощь при переломе со смещением?", None),
    ("вчера вышел фильм про аварию на трассе, очень страшно", None),
    ("смотрели фильм, и вдруг у мужа перекосило лицо", "stroke"),
    ("дочка пишет доклад про огнестрельные ранения", None),
    # vision_loss: one side or half the picture gone
    ("у отца слева все почернело и не проходит", "vision_loss"),
    ("слева на фото все почернело от вспышки", None),
    # vision_loss: black paint, blinds over an eye
    ("в левом глазу как будто черной краской залили", "vision_loss"),
    ("жалюзи опустили, в комнате темно", None),
    # vision_loss: sudden loss of sight (a noun)
    ("у бабушки резкая потеря зрения на правый глаз", "vision_loss"),
    ("какие бывают причины потери зрения с возрастом", None),
    # vision_loss: closing the good eye and seeing nothing
    ("прикрываю левый глаз, а правым ничего не вижу", "vision_loss"),
    ("прикрываю левый глаз от солнца", None),
    # vision_loss: the left or right eye not seeing
    ("правый глаз совсем не видит с утра", "vision_loss"),
    ("правый глаз видит хуже левого, надо к окулисту", None),
    # burns: the size of a palm or a plate
    ("ошпарил бедро, пятно размером с тарелку", "burns"),
    ("ожог размером с монетку, уже заживает", None),
    # burns: hot liquid spilled on a child or a limb; skin peeling off
    ("горячий суп опрокинулся на ребенка", "burns"),
    ("горячий суп налили в тарелку ребенку", None),
    # burns: a hand in the deep fryer or boiling oil
    ("повар сунул руку в кипящее масло", "burns"),
    ("повар сунул руку в холодную воду", None),
    # burns: scalded by steam; flame in the face; singed lashes
    ("кипятком окатило грудь и живот", "burns"),
    ("волной окатило с головы до ног на пляже", None),
    # burns: skin hard or white like leatherette; a grey burn spot
    ("после огня кожа на руке твердая как резина и не чувствует", "burns"),
    ("мяч твердый как резина", None),
    # burns: a child biting a cable
    ("малыш перегрыз шнур от лампы", "burns"),
    ("кот перегрыз шнур от лампы", None),
    # burns: a palm in huge blisters
    ("у сына спина в огромных волдырях после кипятка", "burns"),
    ("мелкие волдыри на руках от крапивы", None),
    # burns: clothes on fire
    ("на бабушке вспыхнул халат от газовой плиты", "burns"),
    ("халат купила новый на рынке", None),
    # burns: skin eaten by acid or battery electrolyte
    ("едкая жидкость попала, разъедает кожу на ладони", "burns"),
    ("крем разглаживает кожу на ладонях", None),
    # thunderclap_headache: worse than ever or than childbirth
    ("затылок болит так, что хуже не было в жизни, началось за секунду", "thunderclap_headache"),
    ("хуже не было никогда этого сериала, голова от него болит", None),
    # thunderclap_headache: something burst or popped in the head
    ("в голове будто что-то лопнуло, и сразу адская боль", "thunderclap_headache"),
    ("в голове не укладывается, что отпуск закончился", None),
    # thunderclap_headache: the maximum at once
    ("боль в голове за пару секунд дошла до предела", "thunderclap_headache"),
    ("голова болит на 3 из 10, к вечеру проходит", None),
    # thunderclap_headache: as if struck by lightning or a knife
    ("затылок как молнией прошило", "thunderclap_headache"),
    ("голова как чугунная после перелета", None),
    # thunderclap_headache: "бошка" suddenly and severely
    ("вдруг башка заболела дико, никогда так не было", "thunderclap_headache"),
    ("башка заболела от шума, выпил таблетку", None),
    # seizure: a fit that will not stop
    ("припадок у брата не прекращается уже пять минут", "seizure"),
    ("приступ кашля не прекращается третий день", None),
    # seizure: beating or thrashing
    ("дедушка упал и стал биться на полу", "seizure"),
    ("сердце стало биться чаще после кофе", None),
    # seizure: stiffening, then jerking
    ("сын весь выгнулся, а потом руки задергались", "seizure"),
    ("кошка выгнула спину и зашипела", None),
    # seizure: limbs or face twitching for minutes
    ("у мамы нога дергается без остановки и не слушается", "seizure"),
    ("нога дергается, когда засыпаю, потом все нормально", None),
    # seizure: one side twitching, a fixed stare
    ("у дочки подергивания левой половины и глаза застыли", "seizure"),
    ("левую половину огорода вскопали", None),
    # seizure: shaking for a minute or two
    ("отца затрясло на пару минут, потом не помнит ничего", "seizure"),
    ("машину затрясло на кочках", None),
    # cue: "чем отличается X от Y" is a question
    ("чем отличается эпилепсия от обычных судорог?", None),
    # stroke: only one half moves
    ("папа пробует улыбнуться, а шевелится только одна половина рта", "stroke"),
    ("на даче работает только одна половина теплицы", None),
    # stroke: the face slid down on one side
    ("у деда пол лица будто стекло вниз", "stroke"),
    ("пол лица закрыто маской от солнца", None),
    # stroke: only sounds instead of words; porridge in the mouth; speech not right
    ("хочет что-то сказать, а выходит только мычание", "stroke"),
    ("на завтрак была каша, во рту до сих пор вкус овсянки", None),
    # stroke: numb like after the dentist; an arm hanging
    ("у мамы губа как после заморозки у стоматолога, а к врачу не ходила", "stroke"),
    ("рука висит на перевязи после перелома, гипс снимут через неделю", None),
    # confusion: "спутанная" alone
    ("бабушка какая-то спутанная с обеда", "confusion"),
    ("спутанная леска на удочке", None),
    # confusion: thinks it is another year
    ("дед уверен, что сейчас 1975 год", "confusion"),
    ("дед уверен, что этот год будет урожайным", None),
    # confusion: cannot say what day it is or where she lives
    ("мама не смогла назвать, какое сегодня число", "confusion"),
    ("не смогла вспомнить, где оставила ключи", None),
    # confusion: asks the same thing over and over
    ("отец по кругу спрашивает, где он", "confusion"),
    ("по кругу бегали дети на празднике", None),
    # confusion: lost in her own flat; a dead relative's name
    ("дедушка заблудился в собственном подъезде", "confusion"),
    ("заблудились в лесу, но вышли к станции, все хорошо", None),
    # cues: numb after a knock or sitting; tablets since an old stroke; tongue tied by drink
    # or nerves; foggy after a night shift; for an essay; in a photo
    ("стукнулся коленом о стол, нога онемела", None),
    ("руки онемели, когда спала на них", None),
    ("папа принимает статины после инсульта, нужен рецепт", None),
    ("от волнения на экзамене язык заплетался", None),
    ("после ночной смены ничего не соображаю", None),
    ("какие признаки менингита у детей? для доклада", None),
    ("на фото у мамы один глаз кажется опущенным", None),
    ("муж говорит как пьяный, язык заплетается, а он не пил", "confusion"),
    # child_unresponsive: an age alone names a child; cannot be woken, asleep mid-word, flat
    ("ему 3, с утра лежит пластом и не смотрит на нас", "child_unresponsive"),
    ("ему 3, с утра строит башню из кубиков", None),
    ("ей 6 лет, никак не добудиться после обеда", "child_unresponsive"),
    ("ей 6 лет, по утрам ее не добудиться в школу", None),
    ("дочка засыпает прямо на полуслове, ей 2", "child_unresponsive"),
    ("бабушка засыпает на ходу после ночной смены", None),
    # child_dehydration: no wet nappy; not peeing since a time of day; not a sip; neither
    # breast nor bottle
    ("мокрого памперса нет с обеда, малыш горячий", "child_dehydration"),
    ("мокрый памперс меняем каждые три часа", None),
    ("сын не пописал с самого утра и вялый", "child_dehydration"),
    ("малышка ни глотка не сделала за весь вечер, рвота", "child_dehydration"),
    ("малышка ест кашу, а пьет только компот", None),
    ("сын не пьет молоко, а кефир пьет", None),
    # meningitis: a neck that locked or cramped, the head not lowered or arched back, crying
    # when the neck is touched, with a fever
    ("шею свело так, что не повернуть, и жар 39", "meningitis"),
    ("шею свело после сна на неудобной подушке", None),
    ("малыш выгибается и запрокидывает голову, температура высокая", "meningitis"),
    ("малыш запрокидывает голову, когда смеется", None),
    # meningitis: neck, fever, rash named together
    ("сыпь, шея, температура 39,5", "meningitis"),
    ("сыпь на шее от нового шарфа", None),
    # cues: a vaccine against meningococcus; is it contagious
    ("нужна ли прививка от менингококка перед лагерем?", None),
    ("эпилепсия наследуется от родителей?", None),
    # anaphylaxis: an allergen or contrast dye and a lump in the throat, a dull voice, lips
    # swelling, covered in welts
    ("съела миндаль, и голос пропадает, в горле что-то мешает", "anaphylaxis"),
    ("голос пропадает после концерта, пью теплый чай", None),
    ("после контраста на МРТ губы пухнут на глазах", "anaphylaxis"),
    ("у дочки губы пухлые от природы, и аллергии нет", None),
    # sepsis: fever with mottled or net-like purple skin, a cold sticky sweat, fearing death
    ("жар под 40 и на бедрах фиолетовая сеточка", "sepsis"),
    ("на бедрах фиолетовая сеточка сосудов, давно так", None),
    # sepsis: red streaks from a wound and chills
    ("от пореза на руке красная полоса до локтя, знобит", "sepsis"),
    ("красная полоса на стене от фломастера", None),
    # sepsis: shaking chills after a caesarean or with a catheter
    ("неделю после кесарева, колотит и живот болит", "sepsis"),
    ("неделю после кесарева, шов заживает хорошо", None),
    # sepsis: spots that do not fade when pressed
    ("пятнышки на ногах не бледнеют, если на них нажать", "sepsis"),
    ("пятна на ногах бледнеют, если нажать, температуры нет", None),
    # cauda_equina: back trouble and saddle numbness, wet pants unnoticed
    ("спину прихватило, и ягодицы немеют, как после укола", "cauda_equina"),
    ("спину прихватило, ягодицы не немеют, в туалет хожу нормально", None),
    ("с грыжей позвоночника, сегодня мокрые трусы, не заметил как", "cauda_equina"),
    ("мокрые трусы после бассейна", None),
    # urinary_retention: failing to pass urine and a bladder about to burst
    ("хочется писать, а не получается, ощущение что лопну", "urinary_retention"),
    ("хочется писать после кофе, бегу в туалет", None),
    ("мешок катетера пустой с ночи, внизу распирает", "urinary_retention"),
    # cues: swollen from tears or salt; teeth chattering from the cold; blotches after a hot
    # shower; an auto-injector expiring
    ("веки опухли от слез, всю ночь плакала", None),
    ("зуб на зуб не попадает, на улице холодно", None),
    ("после бани на ногах красные пятна", None),
    ("у эпипена кончается срок годности, как заменить", None),
    ("после операции ни разу не сходила по-маленькому, внизу распирает", "urinary_retention"),
    # bleeding: a long nosebleed, "течёт и течёт"
    ("у сына кровь из носа уже полчаса, вата не помогает", "bleeding"),
    ("у сына кровь из носа была минуту, сразу прошла", None),
    # bleeding: coughing up clots, a mouthful of blood, bright red froth
    ("отец кашляет сгустками, весь платок красный", "bleeding"),
    ("отец кашляет второй день, мокрота желтая", None),
    # bleeding: "опять хлещет"; a dressing soaked through
    ("повязка насквозь промокла кровью за десять минут", "bleeding"),
    ("повязка на колене сухая, меняю раз в день", None),
    # bleeding: black shiny or sticky stool; vomiting blood
    ("стул черный липкий, как деготь, слабость", "bleeding"),
    ("стул черный после активированного угля, чувствую себя хорошо", None),
    ("брата стошнило кровью два раза", "bleeding"),
    ("брата стошнило в машине, укачало", None),
    # breathing: every breath a struggle; the reliever inhaler not helping
    ("у дочки астма, сальбутамол не помогает уже третий раз", "breathing"),
    ("сальбутамол закончился, нужен рецепт", None),
    # breathing: unable to say two words; clutching the throat; breathless even sitting
    ("мама не может сказать больше двух слов, губы серые", "breathing"),
    ("мама не может сказать ни слова по-английски", None),
    # chest_pain: as if squeezed by a hoop or a vice, a brick on the chest
    ("будто тисками сдавило грудь, пот ручьем", "chest_pain"),
    ("будто тисками сдавило виски после работы за компьютером", None),
    # chest_pain: heavy or aching right through to the back; tight in the chest
    ("грудину давит и отдает в лопатку", "chest_pain"),
    ("в груди туго, не вздохнуть полной грудью", "chest_pain"),
    ("в груди нет никакой боли, просто насморк", None),
    # unconscious: collapsed and still not moving; came to on the ground; did not respond
    ("дед упал в ванной и так и не шевелится", "unconscious"),
    ("дед упал в ванной, сам встал, синяк на бедре", None),
    ("очнулся на полу в коридоре и не помню, как упал", "unconscious"),
    ("очнулся на диване после сериала", None),
    # overdose: weed killer, antifreeze, solvent, vinegar essence
    ("сын глотнул антифриза из бутылки в гараже", "overdose"),
    ("купил антифриз для машины, какой лучше?", None),
    # testicular_pain: "хозяйство", one side of the groin; "так болят", came on very fast
    ("хозяйство распухло и болит, сын плачет", "testicular_pain"),
    ("хозяйство на даче большое, болит спина от грядок", None),
    # abdominal_emergency: a belly tight as a drum or hard as concrete
    ("у отца живот натянутый как барабан и болит сильно", "abdominal_emergency"),
    ("сын стучит по животу как по барабану, смеется", None),
    # pregnancy_bleeding: pregnant and unable to straighten up for pain
    ("на 9 неделе, внизу так больно, что не могу разогнуться", "pregnancy_bleeding"),
    ("после грядок не могу разогнуться, спина", None),
    # cues: an appendix removed long ago, "can I get X"; how a heart attack shows itself, "can X
    # look like a heart attack"; an arm aching after a jab
    ("аппендикс удалили в детстве, болит ли шрам потом?", None),
    ("можно ли инсульт получить от стресса?", None),
    ("как начинается инфаркт у пожилых?", None),
    ("может ли остеохондроз быть похож на инфаркт?", None),
    ("рука ноет после прививки от гриппа", None),
    ("после укола правая рука болит второй день", None),
    # cues: pretending to faint; knocked out by a film; out like a light after drinking or on
    # the sofa; "щас в обморок упаду"
    ("сын притворился мертвым в игре", None),
    ("этот фильм меня просто убил, так красиво", None),
    ("вырубилась на диване до утра после смены", None),
    ("вчера напился и вырубился, сегодня болит голова", None),
    ("от этих цен щас в обморок упаду", None),
    # cues: laughing until breathless; choking on paperwork; blue fingers in the cold; a stubbed
    # toe gone blue
    ("угорали до удушья над видео", None),
    ("задыхаюсь от отчетов в конце квартала", None),
    ("в холодной реке губы посинели, вылезли и согрелись", None),
    ("стукнул палец молотком, теперь синий ноготь и синяк", None),
    # cues: a vitamin taken twice; an "overdose" of sweets; a normal temperature; how to take a
    # temperature; asking in advance; coughed it up; bleeding that stopped within minutes
    ("дала сыну витамин Д дважды за утро", None),
    ("передоз сладкого на празднике", None),
    ("малышу 2 месяца, температура в норме, просто капризничает", None),
    ("как измерять температуру месячному малышу?", None),
    ("что делать при судорогах у ребенка? хочу знать заранее", None),
    ("подавился косточкой, откашлялся и все", None),
    ("порезала палец, много крови, но через пять минут остановилась", None),
    # generalisation checks: a groan for words; crying when the head is bent, with a fever;
    # a figurative crush or "exploding" head; a piece cut, not a finger
    ("хочет ответить, а выходит нечленораздельное", "stroke"),
    ("из колонок выходит только шипение", None),
    ("малыш кричит, когда наклоняю голову, и жар", "meningitis"),
    ("его завалило работой к концу года", None),
    ("палец отрезал кусочек сыра", None),
    ("голова взрывается от информации на курсах", None),
    # generalisation checks: "лучше б мне не жить"; hitting oneself on the forehead is a
    # gesture; a pot of boiling water tipped over oneself; a face hit by steam; a sudden,
    # unbearable "башка"; a belly bloated like a drum
    ("лучше б мне вообще не просыпаться", "self_harm"),
    ("бью себя по лбу каждый раз, когда забываю пароль", None),
    ("дочка опрокинула на себя чайник с кипятком", "burns"),
    ("опрокинула на себя стакан сока", None),
    ("шею обдало паром из чайника, краснота и пузыри", "burns"),
    ("башка вдруг заболела, адски, как никогда", "thunderclap_headache"),
    ("живот как барабан после фасоли, но не болит", None),
    # generalisation checks: wanting to pee "в туалет по-маленькому"; not feeling oneself wipe
    # (after a comma); sitting "как на вату"; a sticky sweat in the heat; breathless after
    # stairs, then it passes
    ("хочу в туалет по-маленькому, а не выходит, и очень больно", "urinary_retention"),
    ("хочу в туалет по-маленькому, подождите минутку", None),
    ("спина болит третий день, и не чувствую, как подтираюсь", "cauda_equina"),
    ("спина болит третий день, подтираюсь нормально, все чувствую", None),
    ("липкий пот в жару, хожу в душ три раза в день", None),
    ("задыхаюсь на лестнице, потом проходит", None),
    # a negation inside the gap ("речь не изменилась", "губы не пухнут") is not the symptom
    ("речь не изменилась, просто устал", None),
    ("голос не садится, губы не пухнут, просто чешется после орехов", None),
    ("половина лица не опустилась, все симметрично", None),
    ("кровь из носа не идет уже час, остановилась", None),
    ("в груди не туго, дышу свободно", None),
    ("кожа не разъедает, просто покраснела", None),
    ("в груди будто камень лежит, и рука немеет", "chest_pain"),
    ("на душе будто камень лежит после ссоры", None),
    # head_injury: kicked in the head by an animal (the animal's victim is the patient)
    ("корова лягнула отца в голову, он теперь путается", "head_injury"),
    ("лошадь лягнула ведро с водой", None),
    ("у собаки после драки кровь течет и течет", None),
    # train-02/round 06 (ru) — confusion: stopped recognising someone (a word between), cannot work
    # out what year it is or where one is, muddled words, cannot find one's own flat
    ("дедушка вдруг перестал нас узнавать и спрашивает, где он", "confusion"),
    ("перестал совсем понимать этот сериал", None),
    ("бабушка не может понять, какой сейчас месяц", "confusion"),
    ("не могу понять, какой сейчас тариф у оператора", None),
    ("отец путается в словах с обеда", "confusion"),
    ("путаюсь в датах отпуска", None),
    ("сосед не может найти свой подъезд, хотя живет здесь 20 лет", "confusion"),
    ("не могу найти квартиру в аренду", None),
    # seizure: arched like a bow, jaws clenched; a person shaking for minutes
    ("дочку выгнуло дугой, потом задергалась", "seizure"),
    ("на растяжке спину выгнула дугой", None),
    ("брата колотит уже больше трех минут", "seizure"),
    ("меня колотит от волнения уже больше трех минут", None),
    # stroke: cannot get a word out, a tongue that barely moves, a face gone asymmetric
    ("мама пытается сказать и не может, слова не выходят", "stroke"),
    ("хочет сказать, но не может от смущения", None),
    ("у деда язык еле ворочается и лицо асимметричное", "stroke"),
    ("после праздника язык еле ворочается от усталости? нет, просто болтала весь вечер", None),
    # anaphylaxis: a thick tongue too big for the mouth; covered in blotches and hoarse after an
    # allergen
    ("после креветок язык стал огромный", "anaphylaxis"),
    ("язык огромный от природы, логопед сказал", None),
    ("съел орехи и покрылся красными волдырями, охрип", "anaphylaxis"),
    ("покрылся загаром за неделю на море", None),
    # burns: a deep burn, a burn that does not hurt, a live wire and skin blackening; drain
    # cleaner; half the back red and blistered
    ("ожог от сковородки, глубокий и белый в середине", "burns"),
    ("ожог неглубокий, на пальце, уже подсох", None),
    ("сын схватился за оголенный провод, на пальцах кожа чернеет", "burns"),
    ("оголенный провод торчит из стены, надо вызвать электрика", None),
    ("плеснула средство для прочистки труб на ногу, кожа побелела", "burns"),
    ("купила средство для труб, какое лучше?", None),
    ("на сына опрокинулся чайник, половина живота в пузырях", "burns"),
    # overdose: carbon monoxide
    ("в бане рано закрыли заслонку, у отца рвота и голова кружится", "overdose"),
    ("в новогоднем угаре забыли про салат", None),
    # vision_loss: not seeing with one eye, one eye dark or switched off, a grey veil
    ("не вижу правым глазом вообще, с утра", "vision_loss"),
    ("правый глаз погас, как будто выключили, полчаса", "vision_loss"),
    ("правый глаз видит хуже, серый налет на очках", None),
    # unconscious: "не будится"
    ("дед лежит и не будится, еле дышит", "unconscious"),
    ("будильник звенит, а я не слышу", None),
    # urinary_retention: unable to pass urine for hours (min_hours cancels short ones)
    ("не могу помочиться уже десять часов", "urinary_retention"),
    ("не могу писать 2 часа, в поезде очередь в туалет", None),
    # negation: a bare "никак" right before the match is emphasis ("никак не реагирует")
    ("тетя совсем никак не реагирует на голос", "unconscious"),
    ("телефон никак не реагирует на нажатия", None),
    # a clock time is not a duration ("с 5 часов утра")
    ("малыш не писал с пяти часов утра, сухой памперс", "child_dehydration"),
    ("подгузник сухой всего 3 часа", None),
    # sepsis: marble skin, no wee, with a fever or chills
    ("у отца ноги в разводах как мрамор и знобит", "sepsis"),
    ("мраморная столешница в разводах", None),
    # meningitis: a neck like a stake or the back of the head wooden; a burning forehead; crying
    # when one tries to bend the neck
    ("у сына затылок деревянный и жар", "meningitis"),
    ("шея как палка после тренировки, температуры нет", None),
    ("малышка кричит, когда пытаюсь нагнуть ей голову, температура 39", "meningitis"),
    ("голову не наклонить, лоб горит", "meningitis"),
    ("лоб горит от стыда", None),
    # thunderclap: "никогда такого не было" kept whole; clutching the head, "раскалывается"
    ("вдруг голова разорвалась от боли, никогда такого не было", "thunderclap_headache"),
    (
        "отец схватился за голову, говорит раскалывается, началось резко, никогда так",
        "thunderclap_headache",
    ),
    ("схватилась за голову от счетов, голова раскалывается от шума", None),
    # child_unresponsive: sags when picked up, barely moves
    ("малыш обвисает на руках и почти не шевелится", "child_unresponsive"),
    ("щеки обвисают с возрастом", None),
    # child_dehydration: not been for a wee since morning
    ("сын 3 лет с утра не ходил по-маленькому, рвота", "child_dehydration"),
    # pregnancy: "на сроке N", cannot bend for pain
    ("на сроке 12 недель мажет и тянет", "pregnancy_bleeding"),
    ("на сроке 12 недель, все хорошо, анализы в норме", None),
    ("беременна, 30 нед, живот так болит, что выпрямиться не могу", "pregnancy_bleeding"),
    # cauda_equina: numb around the anus, stool passing by itself, not feeling when peeing,
    # numbness (a noun) in the saddle, a bladder not felt
    ("поясница болит и онемение в промежности", "cauda_equina"),
    ("спина ноет, а мочевой пузырь не чувствую, полный он или нет", "cauda_equina"),
    ("спина болит, в туалет хожу нормально, все чувствую", None),
    # urinary_retention: wanting the toilet but failing, pain low down; a catheter that fell out
    ("хочется в туалет, но не выходит, и боль внизу живота", "urinary_retention"),
    ("у деда выскочил катетер и ничего не идет", "urinary_retention"),
    ("хочу в туалет, а очередь длинная", None),
    # testicular_pain: "тестикул", the Latin word in a Russian message
    ("резкая боль в тестикуле, тошнит", "testicular_pain"),
    ("что такое тестикулярная микролитиаз? просто интересно", None),
    # "раньше ... ничего такого не было" says the event is new; "прошло минут десять" is time
    # elapsed, not an end
    ("после укуса осы отек лица, раньше кусали и ничего такого не было", "anaphylaxis"),
    ("глаз вдруг перестал видеть, серая пелена, прошло уже 20 минут", "vision_loss"),
    ("в прошлом году мушки перед глазами исчезли за полчаса", None),
    # abdominal_emergency: a severe belly pain and a tense belly
    ("адская боль в животе, живот напряжен", "abdominal_emergency"),
    ("я напряжен перед экзаменом, живот крутит", None),
    # self_harm: a plan with a means and despair
    ("я всё решила, таблетки есть, устала от жизни", "self_harm"),
    ("все продумала к переезду, таблетки от аллергии взяла", None),
    # cues tuned on round 06 (ru): tired tongue; "какие первые признаки"; a heart "breaking" at
    # the news; a cramp limb-first; homework about; two tablets instead of one; refusing milk
    # but wanting juice; "неделю назад"; licked but not swallowed; a leak on sneezing; "что такое
    # острая задержка мочи"; an animal stung as the object
    ("язык заплетается, когда не высплюсь, это нормально?", None),
    ("какие ранние признаки инсульта у пожилых?", None),
    ("сердце разрывается, глядя на бездомных собак", None),
    ("икру свело судорогой ночью, через минуту прошло", None),
    ("у сына домашка про эпилепсию, что почитать?", None),
    ("дала ребенку две таблетки нурофена вместо одной, он бодрый", None),
    ("сын отказывается пить воду, а компот пьет", None),
    ("неделю назад был сильный приступ головной боли, сейчас прошло", None),
    ("дочь лизнула таблетку, но не проглотила", None),
    ("подтекает моча при кашле после родов", None),
    ("что такое задержка мочи у мужчин?", None),
    ("кошку ужалила оса, лапа опухла", None),
    # train-02 (ru): a denied list after a dash (not a bare "— нет" answering the last item);
    # heartburn; out like a light; foggy in the exam session; hiding in a game; bleeding gums; a
    # panic attack; general questions; a task for college, a leaflet; a nappy wet after all;
    # hives alone
    ("рвоты, крови, температуры — ничего нет, просто живот урчит", None),
    ("судорог, потери сознания — ничего такого, просто устал", None),
    ("давит в груди, одышка, температура — нет", "chest_pain"),
    ("изжога, печет за грудиной после жирного", None),
    ("вырубился спать без задних ног после дачи", None),
    ("ничего не соображаю, дедлайн горит", None),
    ("сын спрятался за шторой и не откликался, смеялся", None),
    ("при беременности десны кровоточат, это опасно?", None),
    ("была паническая атака, казалось нечем дышать, прошла сама", None),
    ("сколько длятся фебрильные судороги обычно?", None),
    ("задача для колледжа: боль в груди у мужчины 50 лет", None),
    ("после сна подгузник сухой, но потом сразу пописал", None),
    ("съела клубнику, на руках крапивница, чешется", None),
    ("в груди не давит, в спину не отдает, просто кашель", None),
    ("на груди давит, отдает в руку и в челюсть", "chest_pain"),
    # train-02 (ru) — unconscious: limp and slumped, still not come round, cannot be shaken awake
    ("сосед обмяк на скамейке и не отвечает", "unconscious"),
    ("тесто обмякло, пора лепить", None),
    ("бабушка так и не очнулась после падения", "unconscious"),
    ("не можем растолкать деда, храпит странно", "unconscious"),
    ("растолкать толпу у входа не получилось", None),
    # confusion: believes she is elsewhere while at home; asks who a relative is; cannot say
    # (the question first) what day it is
    ("папа говорит, что он на заводе, а мы дома", "confusion"),
    ("мама говорит, что она в магазине, скоро будет дома", None),
    ("бабуля спросила, кто я такая, хотя я ее внучка", "confusion"),
    ("какое сегодня число сказать не может, путает", "confusion"),
    ("какой сегодня день недели, не подскажете?", None),
    # chest_pain: the middle of the chest first; a fist squeezing inside; the chest crushed;
    # shooting into the chest
    ("посередине груди жжение и давит уже полчаса", "chest_pain"),
    ("в груди будто кулак сжали, пот", "chest_pain"),
    ("кулак сжал от злости", None),
    ("из-под лопатки простреливает в грудь", "chest_pain"),
    # breathing: a reliever that did not help; a straw; lungs not filling; the phrase first
    ("пшикнул ингалятор три раза, не помогло", "breathing"),
    ("ингалятор от насморка помог, спасибо", None),
    ("дышу будто через трубочку, становится хуже", "breathing"),
    ("пью коктейль через трубочку", None),
    ("предложение закончить не может, задыхается", "breathing"),
    # seizure: shaking that will not stop, shaking with a blank stare
    ("мужа трясет и не прекращается, пена у рта", "seizure"),
    ("машину трясет на кочках без остановки", None),
    # stroke: half the face not moving; words as mush; an arm like a whip; arm and leg heavy;
    # speech not right
    ("у мамы половина лица не двигается", "stroke"),
    ("половина лица в веснушках", None),
    ("говорит, а слова кашей", "stroke"),
    ("каша в тарелке, а слова он знает", None),
    ("у мужа рука и нога ватные с одной стороны", "stroke"),
    # abdominal: a belly as if stabbed; a sudden severe pain in the whole belly
    ("в животе будто ножом режут и рвет", "abdominal_emergency"),
    ("режу ножом овощи для живота полезные", None),
    ("внезапная адская боль по всему животу", "abdominal_emergency"),
    # vision_loss: fog in one eye, half the view dark, a dark curtain creeping in, both dimmed
    ("в левом глазу как в тумане с утра, вдруг", "vision_loss"),
    ("в тумане ничего не видно на дороге", None),
    ("темная штора наползает сбоку на глаз", "vision_loss"),
    ("оба глаза разом потускнели", "vision_loss"),
    # urinary_retention: a full bladder and unable to go
    ("мочевой переполнен, а не могу сходить", "urinary_retention"),
    # thunderclap: a simile blow on the head; the head "cracked"
    ("будто по голове кто-то треснул, дикая боль, внезапно", "thunderclap_headache"),
    ("сосед треснул по забору молотком", None),
    ("затылок как раскололся, резко", "thunderclap_headache"),
    # overdose: household chemicals, a bottle of solvent swigged, rat poison, a battery perhaps
    # swallowed, painkillers by the dozen
    ("дочь глотнула средство для мытья полов", "overdose"),
    ("купила средство для мытья посуды", None),
    ("нашел отраву для мышей, у сына во рту гранулы", "overdose"),
    ("купили отраву для мышей на дачу", None),
    ("батарейка пропала, сын, похоже, проглотил", "overdose"),
    ("принимал обезболивающие весь день, уже 14 штук", "overdose"),
    ("купил обезболивающие, в пачке 20 штук", None),
    # trauma: a limb bent midway; head-on; into a lift shaft; from a roof (the place first)
    ("у брата голень посередине изогнута после падения", "trauma"),
    ("лоб в лоб с грузовиком на трассе, водитель зажат", "trauma"),
    ("с балкона сорвался сосед, лежит", "trauma"),
    ("с крыши упал снег на машину", None),
    # self_harm: looking at a rope; a plan; a farewell forever; a note saying she cannot go on
    ("все время смотрю на петлю в гараже", "self_harm"),
    ("смотрю на веревку для белья, порвалась", None),
    ("продумала, как это сделать, и никому не скажу", "self_harm"),
    ("сын написал прощайте навсегда и выключил телефон", "self_harm"),
    # testicular: a testicle in a vice; "стоять не могу"; higher than usual; worse and worse
    ("яичко как в тисках, внезапно", "testicular_pain"),
    ("яичко болит, ходить не могу", "testicular_pain"),
    ("яйца в тисках не колются, рецепт для кухни", None),
    # appendicitis: moved down to the right, with a fever
    ("боль переместилась вниз справа и температура 38", "abdominal_emergency"),
    # pregnancy: "у меня 20 недель", gushing, "так болит, что"; months
    ("у меня 22 недели и хлынуло красное", "pregnancy_bleeding"),
    ("у меня 22 недели, все спокойно", None),
    ("на третьем месяце, скрючилась от боли", "pregnancy_bleeding"),
    # meningitis: a neck like concrete or stiffened, a neck that cannot be moved; "горю"
    ("шея будто бетоном залита, горю вся", "meningitis"),
    ("шеей не пошевелить и температура 39", "meningitis"),
    ("шеей повернуть не могу после сна, температуры нет", None),
    # thunderclap: "башка трещит" with a sudden onset and severity
    ("башка трещит, накрыло за пару секунд, адская боль", "thunderclap_headache"),
    ("башка трещит после вечеринки", None),
    # infant_fever: "мелкой", a head "как печка"
    ("мелкой 3 недели, горит как печка", "infant_fever"),
    ("печка в бане как печка, жарит", None),
    # child_unresponsive: a lolling head, eyes barely opened, a head not held
    ("у сына 2 лет голова болтается, и он еле глаза открывает", "child_unresponsive"),
    ("голова болтается у игрушечной собачки в машине", None),
    # child_dehydration: not a drop; keeps no water down; last wee at breakfast; a sunken
    # fontanelle; not wet
    ("малышу 10 месяцев, рвет, даже воду не держит", "child_dehydration"),
    ("у сынули родничок впал, рвота", "child_dehydration"),
    ("родничок у малыша закрылся, это нормально?", None),
    # cauda: pins and needles in the saddle; not feeling whether one needs the toilet
    ("грыжа, поясница, и мурашки там, где седло", "cauda_equina"),
    ("спина болит, и не чувствую, хочу ли я в туалет", "cauda_equina"),
    ("после велосипеда седло натерло, мурашки по коже от холода", None),
    # urinary: "сходить не могу" with pain; to no avail; a catheter removed; above the pubis
    ("после снятия — сняли катетер, а сходить не могу, боль над лобком", "urinary_retention"),
    ("сняли катетер, сходила сама, все хорошо", None),
    # "во сне" (asleep) is not a dream: a testicle that hurt severely during sleep
    ("во сне резко заболело яичко, опухает", "testicular_pain"),
    ("приснилось, что болит яичко, проснулся — все нормально", None),
    # train-02 (ru) — "сил нет" and "ни с того ни с сего" are not denials
    ("голова раскалывается, резко началась, терпеть сил нет", "thunderclap_headache"),
    ("сил нет терпеть соседей с ремонтом", None),
    ("ни с того ни с сего затылок как раскололся", "thunderclap_headache"),
    ("ни с того ни с сего начал петь", None),
    # a hole "как будто ничего нет" describes the symptom
    ("в правом глазу дырка, как будто ничего нет", "vision_loss"),
    # "еле можем растормошить"
    ("деда еле можем растормошить, мычит", "unconscious"),
    # anaphylaxis: egg yolk, "обсыпана", "с присвистом", amoxiclav, lips swollen up, a lump in
    # the throat
    ("дали желток, сына всего обсыпало пятнами, дышит с присвистом", "anaphylaxis"),
    ("после амоксициллина губы вздулись и комок в горле", "anaphylaxis"),
    ("комок в горле от обиды", None),
    # burns: drain gel, oil from a pan, an exhaust pipe, a heating pad; white as wax; a big grey
    # patch
    ("брызнуло масло со сковороды, на руке огромные пузыри", "burns"),
    ("масло на сковороде зашипело, пузыри пошли", None),
    ("задел ногой выхлопную трубу мотоцикла, кожа слезла", "burns"),
    ("уснул на грелке, на спине большое белое пятно, не чувствует", "burns"),
    # head injury: "по башке" alone; clear water from the nose
    ("мячом по башке, вырвало два раза", "head_injury"),
    ("по башке себя стукнула, забыла ключи", None),
    ("ударился головой, из носа течет прозрачная вода", "head_injury"),
    # a child: "восьмимесячный"
    ("восьмимесячный весь вялый и головку не держит", "child_unresponsive"),
    ("восьмимесячный уже сидит и держит головку", None),
    # child_dehydration: no wet nappy changed since breakfast
    ("малышу год, с утра не меняла мокрый памперс, понос", "child_dehydration"),
    # cauda: "поясничный"
    ("поясничный диск, и онемение в промежности", "cauda_equina"),
    # the object before a denied verb; a baby limp with pleasure
    ("в обморок не падал, сознание не терял, просто голова кружится", None),
    ("малыш обмяк от удовольствия в теплой ванне", None),
    # "зря панику подняла" (a false alarm) is over; "в 3 недели" may be now, not history
    ("беременна, в 8 недель пошла кровь", "pregnancy_bleeding"),
    ("малышу в 3 недели поднялась температура 38,5", "infant_fever"),
    ("малышу 3 недели, температура 38,5", "infant_fever"),
    ("малышке 5 недель, горячая, мерила — 37,1, зря панику подняла", None),
    ("новорожденному 2 недели, горячий, 38,4, вялый", "infant_fever"),
    # hives all over after a drug are anaphylaxis; a horse that kicked someone is not the patient
    ("после пенициллина вся в крапивнице и голос сел", "anaphylaxis"),
    ("после клубники пара пятен крапивницы на руке", None),
    ("лошадь лягнула брата в голову, он теперь путается", "head_injury"),
    # "не" + a complete verb of a run-on message negates that verb, not the next symptom
    ("с утра не ест лежит пластом дочка 2 лет", "child_unresponsive"),
    ("дед не слушается рука висит как плеть", "stroke"),
    ("не было боли в груди", None),
    ("не ела ничего, боли в животе нет", None),
    # bleeding: blood coming through the bandage; a wound that will not stop bleeding (not gums)
    ("кровь проступает сквозь повязку и капает на пол", "bleeding"),
    ("рана не перестает кровоточить уже 20 минут", "bleeding"),
    ("через бинт видно мазь, рана заживает", None),
    ("десна не перестает кровоточить при чистке", None),
    # round 07 (confusion): not grasping that one is at home; arguing with furniture
    ("дед не понимает, что он у себя дома, просится домой", "confusion"),
    ("спорит со шкафом", "confusion"),
    ("сын не понимает, что дома надо убирать за собой", None),
    # round 07 (chest_pain): the chest bound as if by a hoop, the verb after the chest
    ("как будто грудную клетку перетянули ремнем", "chest_pain"),
    ("грудной клетке не тесно в новой куртке", None),
    # round 07 (breathing): the verb object-first, not a blocked nose; a small object breathed in
    ("вдохнуть не получается, помогите", "breathing"),
    ("дышать носом не могу уже неделю, насморк", None),
    ("дочка втянула носом бусину, кашляет", "breathing"),
    ("вдохнул аромат кофе и проснулся", None),
    # round 07 (bleeding): vomiting blood with words between
    ("папу стошнило сгустками темной крови", "bleeding"),
    ("рвало после торта, крови не было", None),
    # round 07 (trauma): a crushed limb; a slab fell on a limb; something white seen in a wound
    ("ногу расплющило прессом", "trauma"),
    ("на ногу упала тяжелая балка, кричит", "trauma"),
    ("порез на ладони глубокий, видно что-то белое", "trauma"),
    ("чувствую себя раздавленной после развода", None),
    ("на ногу упала книжка, ничего страшного", None),
    # round 07 (sepsis): a rash that does not fade when pressed (a noun), "непроходящая";
    # grey-blue blotches
    ("пятнышки на ногах не исчезают при надавливании, и жар", "sepsis"),
    ("у дочки неисчезающая сыпь на груди", "sepsis"),
    ("сыпь бледнеет при нажатии, не чешется", None),
    ("у мужа на спине пятна сине-багровые, его трясет", "sepsis"),
    ("пятна зеленки на коленке", None),
    # round 07 (thunderclap): the head exploded, verb first; a blow felt inside the head
    ("на тренировке резко разорвалась голова от боли", "thunderclap_headache"),
    ("ощутила хлопок в затылке и дикую боль", "thunderclap_headache"),
    ("голова разболелась к вечеру, выпила таблетку", None),
    ("ударился головой о полку, шишка", None),
    # round 07 (overdose): "закинулся" and what; exhaust fumes in a closed garage
    ("он закинулся какими-то таблами и не отвечает", "overdose"),
    ("закинула ногу на ногу и сижу", None),
    ("папа чинил машину в закрытом гараже с работающим двигателем, теперь его тошнит", "overdose"),
    ("машина в гараже не заводится", None),
    # round 07 (abdominal): a hernia that will not go back
    ("у деда пупочная грыжа не вправляется и болит", "abdominal_emergency"),
    ("грыжа легко вправляется, не беспокоит", None),
    # round 07 (self_harm): better off without me, verb first; if I were gone
    ("сестра пишет, что всем станет легче без нее", "self_harm"),
    ("иногда думаю, что лучше, чтобы меня просто не было", "self_harm"),
    ("всем будет лучше без пробок на дороге", None),
    ("хорошо, что меня не было дома, когда прорвало трубу", None),
    # round 07 (burns): a chemical in the eye; a blister over a whole palm from a burn source
    ("сыну в глаз брызнула хлорка, трет и плачет", "burns"),
    ("шампунь попал в глаз, пощипало", None),
    ("сын схватился за горячую сковороду, пузырь на всю ладошку", "burns"),
    ("натер волдырь на всю ладонь веслом", None),
    # round 07 (anaphylaxis): a sting and blotches all over or feeling faint
    ("после креветок сыпь по всему телу и говорит что теряет сознание", "anaphylaxis"),
    ("ужалила оса в палец, покраснело место укуса", None),
    # round 07 (head_injury): a knock on a branded blood thinner; a fall from furniture and drowsy
    ("дедушка на ксарелто стукнулся затылком о полку", "head_injury"),
    ("мама пьет ксарелто, давление в норме", None),
    ("внук свалился с двухъярусной кровати, теперь сонный", "head_injury"),
    ("упала со стула, ушибла копчик, болит", None),
    # round 07 (infant_fever): "2,5 мес"; a name and weeks at the start
    ("сынок 1,5 мес, температура 38.2", "infant_fever"),
    ("Лёве 7 недель, жар 38,3", "infant_fever"),
    ("Лёве 7 лет, жар 38,3", None),
    # round 07 (child_unresponsive): limp and not crying
    ("малышка вялая как тряпочка и не плачет", "child_unresponsive"),
    ("малыш вялый после прививки, спит, но плачет если разбудить", None),
    # round 07 (child_dehydration): not peeing said other ways; sunken eyes; very little urine
    ("у дочки мочи не было с утра, рвота", "child_dehydration"),
    ("сын пописал один раз за весь день, рвет", "child_dehydration"),
    ("у ребенка глаза запали, понос весь день", "child_dehydration"),
    ("сын пописал, моча светлая, пьет хорошо", None),
    # round 07 (overdose): a dose taken twice, then a slow pulse or drowsiness
    ("мама по ошибке приняла снотворное дважды, очень сонливая", "overdose"),
    ("дважды выпила кофе утром, бодрая", None),
    # round 07 (pregnancy_bleeding): bright red discharge or soaked pads
    ("беременна 10 недель, кровянистые выделения и тянет живот", "pregnancy_bleeding"),
    ("на 20 неделе, выделения белые, без запаха", None),
    # round 07 (vision_loss): eye pain and fog or halos
    ("глаз резко заболел и все как в тумане", "vision_loss"),
    ("утром после сна все как в тумане, пока не умоюсь", None),
    # round 07 (cauda_equina): lost sensation round the anus; the bladder not controlled,
    # verb first
    ("спина болит, исчезла чувствительность в паху", "cauda_equina"),
    ("спина ноет, кишечник работает как часы", None),
    # round 07 (urinary_retention): nothing draining into a catheter bag and pain
    ("у папы катетер, в мочеприемник ничего не идет, живот распирает", "urinary_retention"),
    ("поменяли мочеприемник, все нормально", None),
    # round 07 (abdominal): a severe belly pain and unable to move or screaming; right low
    # pain and vomiting
    ("у мужа адская боль в животе, не может пошевелиться", "abdominal_emergency"),
    ("болит живот после пиццы, лежу на диване", None),
    ("у дочки боль внизу справа и ее стошнило", "abdominal_emergency"),
    ("боль справа внизу спины после тренировки", None),
    # round 07 (sepsis): redness spreading up a limb and a fever
    ("после укуса нога красная до колена и температура 38.9", "sepsis"),
    ("нога красная до колена после загара", None),
    # round 07 (cues): a knock to the head is not a bruise; a tourniquet is not the bleeding over;
    # never in one's life closes the clause; habitual fainting at blood; a general question about
    # a group; carrying or renewing an auto-injector; slight swelling; dreams and TV series; in
    # hospital after it; discharged after an operation; an accident seen; a guinea pig
    ("деда стукнулся головой об дверь, он на варфарине, синяк растет", "head_injury"),
    ("ударила коленку о стол, синяк", None),
    ("в ноге глубокая рана, кровь остановили жгутом, ждем скорую", "trauma"),
    ("судорог никогда не было в жизни, просто спрашиваю про ээг", None),
    ("всегда падаю в обморок при виде шприца, можно сдать лежа?", None),
    ("признаки инсульта у пожилых?", None),
    ("нужно ли носить с собой эпипен в школу?", None),
    ("слегка припух палец после укуса мошки", None),
    ("снятся сны, что у меня инфаркт, это к чему?", None),
    ("папа лежит в больнице после инсульта, когда можно навестить?", None),
    ("маму выписали после операции на аппендицит, можно ли ей в баню?", None),
    ("увидела на дороге дтп, до сих пор трясет", None),
    ("морская свинка не дышит и лежит на боку", None),
    # round 07 (look-alikes the new combos leave alone): "мочи нет" (I can't bear it); "уже N
    # недель" and a pregnancy opening a message; a rash all over after a food alone; a bump
    # after a fall
    ("сын так капризничает всю ночь, мочи нет", None),
    ("Уже 3 недели температура 37.5", None),
    ("Жене 8 недель беременности, температура 38", None),
    ("у ребенка аллергия, сыпь по всему телу, чешется", None),
    ("упал с дивана, шишка на лбу, играет", None),
    ("ужалила пчела, теперь пятна по всему телу", "anaphylaxis"),
]


@pytest.mark.parametrize(("text", "flag"), TUNED_RU_RULES)
def test_rules_tuned_on_train_01_ru(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# round 08: a wording of each family added after round 08 (not in any phrase set) and a benign
# look-alike that must stay unflagged.
ROUND_08_RU_RULES = [
    # round 08 (confusion): delirious; recognising nobody; not knowing where one's home is
    ("дедушка третий день в бреду, температуры нет", "confusion"),
    ("хожу как в бреду от недосыпа", None),
    ("бабушка с утра никого не узнает, даже меня", "confusion"),
    ("папа не помнит где его дом, стоит у подъезда", "confusion"),
    ("не знаю, где его квартира, адрес потеряла", None),
    # round 08 (chest_pain): a prickling in the chest
    ("с утра покалывает в груди посередине", "chest_pain"),
    ("покалывает в пальцах рук после сна", None),
    # round 08 (breathing): a low oxygen reading; every word an effort
    ("у мамы сатурация 87, губы синеют", "breathing"),
    ("сатурация 98, пульс 88, все в норме", None),
    ("каждая фраза дается через силу, задыхается", "breathing"),
    # round 08 (seizure): a limb twitching rhythmically
    ("у мужа левая нога ритмично дергается и он не отвечает", "seizure"),
    ("веко ритмично дергается уже неделю", None),
    # round 08 (stroke): a mush instead of words; the mouth pulled aside; half the face numb
    ("дед пытается сказать что-то, а выходит набор звуков", "stroke"),
    ("у мамы рот перекосило набок", "stroke"),
    ("папа не чувствует левую половину тела", "stroke"),
    ("после стоматолога не чувствую губу, заморозка", None),
    # round 08 (burns): a chemical splashed on the face or skin; a burn in the groin or face
    ("брызнул электролит на руку, кожа белеет", "burns"),
    ("лимонная кислота в составе, можно ли при гастрите?", None),
    ("ожог промежности кипятком у дочки", "burns"),
    ("солнечный ожог на лице, шелушится", None),
    # round 08 (sepsis combo): infection or fever with shock
    ("температура 39, давление 75/40, весь холодный", "sepsis"),
    ("температура 38, пульс 100, давление 120/80", None),
    # round 08 (head_injury combo): a fight then clear fluid, vomiting or a blackout
    ("сына избили во дворе, его дважды вырвало", "head_injury"),
    ("после драки синяк на руке и разбита губа", None),
    # round 08 (meningitis combos): the chin to the chest; a rash like bruises with a fever
    ("не может никак подбородок прижать к груди, температура 39", "meningitis"),
    ("после тренировки не могу подбородок к груди прижать, шея забита", None),
    ("сыпь будто кровоподтеки по ногам и жар 39", "meningitis"),
    ("синяки на ногах после тренировки", None),
    # round 08 (anaphylaxis combo): a sting, then the pressure falling or the whole body
    ("оса ужалила в руку, теперь голова кружится и слабость", "anaphylaxis"),
    ("оса ужалила в палец, чешется немного", None),
    # round 08 (child_dehydration): crying without tears; sunken eyes, hours without urine
    ("плачет без слез, рвет с ночи", "child_dehydration"),
    ("плачу без слез, просто тоска", None),
    ("у дочки глаза запали и 10 часов без мочи", "child_dehydration"),
    ("у сына 2 часа без мочи, пьет хорошо", None),
    # round 08 (overdose): pills got hold of and eaten; wild mushrooms and vomiting
    ("внук нашел мамины таблетки и проглотил несколько", "overdose"),
    ("сын достал мне таблетки из аптечки", None),
    ("поели лесных грибов, теперь рвота у всех", "overdose"),
    ("собрали в лесу грибы, как их лучше засолить?", None),
    # round 08 (pregnancy_bleeding): "малыш в животе", "30 неделя"; the baby moving little
    ("30 неделя, ребенок почти не шевелится с утра", "pregnancy_bleeding"),
    ("30 неделя, малыш активно толкается", None),
    # round 08 (vision_loss): sight dropped suddenly; haloes and a painful eye
    ("вдруг пропало зрение на правом глазу", "vision_loss"),
    ("зрение постепенно ухудшается с возрастом", None),
    ("вокруг фонарей ореолы и глаз ломит", "vision_loss"),
    # round 08 (testicular_pain): the testicle swelled or went hard
    ("яичко раздуло за час, больно", "testicular_pain"),
    # round 08 (abdominal): no stool nor wind; severe pain and a cold sweat; a girdling pain
    ("второй день нет стула и газы не отходят", "abdominal_emergency"),
    ("стул был, газы отходят, просто пучит", None),
    ("адская боль в животе и холодный пот", "abdominal_emergency"),
    ("боль опоясывающая под ребрами, рвет желчью", "abdominal_emergency"),
    ("опоясывающий лишай, болит и тошнит", None),
    # round 08 (self_harm): about to take all the pills at once
    ("таблетки тут, хочу их съесть все разом", "self_harm"),
    ("таблетки от давления собираюсь выпить сразу после завтрака", None),
    # round 08 (cues): a normal function is not the emergency over; a delay is not a duration;
    # a general question; intensive care after it; a prescription or a swab
    ("дочке 6 недель, температура 38.4, пьет вроде нормально", "infant_fever"),
    ("малыш не писал 9 часов, через 10 минут после питья рвет", "child_dehydration"),
    ("что делать при судорогах у собаки", None),
    ("какие признаки инфаркта у женщин?", None),
    ("дедушка в больнице после инфаркта, что ему можно есть?", None),
    ("выпишите, пожалуйста, эпипен, ребенок аллергик", None),
    ("анализ на менингококк сдали, когда результат?", None),
    ("грудничок весь вялый, голова свисает", "child_unresponsive"),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_08_RU_RULES)
def test_rules_tuned_on_round_08_ru(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# round 09: a wording of each family added after round 09 (not in any phrase set) and a benign
# look-alike that must stay unflagged.
ROUND_09_RU_RULES = [
    # round 09 (confusion): suddenly asking what year it is or where we live
    ("папа вдруг спрашивает меня какой сегодня год, и не узнает комнату", "confusion"),
    ("сын спросил у продавца какой год выпуска у машины", None),
    # round 09 (seizure): the whole body jerking; stiffening and arching with a rattle
    ("деда на диване всего дергает и он молчит", "seizure"),
    ("сестра напряглась и выгнулась дугой, хрипит", "seizure"),
    ("на йоге напряглась и выгнула спину", None),
    # round 09 (stroke): one side's leg and arm numb; speech gone suddenly; the mouth twisted
    ("правую руку не чувствую и ногу тоже, полчаса уже", "stroke"),
    ("правую руку не чувствую, отлежала ночью", None),
    ("у деда вдруг пропала речь", "stroke"),
    ("у мамы рот кривит на одну сторону", "stroke"),
    ("кривит рот в усмешке, когда злится", None),
    # round 09 (trauma): a limb at an odd angle; pinned under a heavy thing
    ("после падения с лестницы рука под неестественным углом", "trauma"),
    ("рабочего придавило бетонной плитой на стройке", "trauma"),
    ("ставлю ноутбук под углом, чтобы удобнее", None),
    # round 09 (thunderclap_headache): like thunder or an explosion inside; split within seconds
    ("муж говорит в голове как будто взрыв грянул, и лег", "thunderclap_headache"),
    ("голова за пару секунд раскалывается, кричит от боли", "thunderclap_headache"),
    ("никогда голова не болела, а сейчас за секунду разболелась", "thunderclap_headache"),
    ("никогда голова не болела, а сейчас болит горло", None),
    ("новость как гром среди ясного неба", None),
    ("орехи за минуту раскалываются в этой машинке", None),
    # round 09 (overdose): pills instead of one; an unknown number of pills; a car poison drunk;
    # paracetamol every two hours; poisonous berries eaten
    ("бабушка выпила 5 таблеток вместо одной, путает", "overdose"),
    ("выпил лишнего на корпоративе, болит голова", None),
    ("сын съел неизвестное количество таблеток из аптечки", "overdose"),
    ("съел неизвестное количество конфет, болит живот", None),
    ("муж глотнул тормозной жидкости из бутылки", "overdose"),
    ("залил тормозную жидкость в машину", None),
    ("дочь пила нурофен каждые 2 часа со вчера, тошнит", "overdose"),
    ("можно ли давать нурофен каждые 8 часов?", None),
    ("малыш съел листья с куста, а они ядовитые", "overdose"),
    ("наелись ягод на даче, очень вкусные", None),
    # round 09 (urinary_retention): cannot pee at all, with pain
    ("не могу мочиться совсем, распирает внизу", "urinary_retention"),
    ("не могу писать ручкой, рука устала", None),
    # round 09 (abdominal_emergency): a hernia that will not go back; every movement hurts
    ("у деда грыжа выпала и не вправляется, тошнит", "abdominal_emergency"),
    ("грыжа вправляется легко, не беспокоит", None),
    ("живот болит так что встать не могу", "abdominal_emergency"),
    # round 09 (self_harm): a helpline; a note; better if I were not here; on a roof; death
    ("подскажите номер телефона доверия, мне очень плохо", "self_harm"),
    ("подскажите номер телефона регистратуры", None),
    ("дочь написала записку, что простите и не ищите", "self_harm"),
    ("всем проще будет, если бы меня не стало", "self_harm"),
    ("если бы меня не было на той встрече, сделку бы сорвали", None),
    ("брат сидит на мосту и грозится спрыгнуть", "self_harm"),
    ("сын сидит на подоконнике и хочет гулять", None),
    ("все время думаю о смерти, не могу спать", "self_harm"),
    # round 09 (combos): a sting then the face swelling; hives with the pressure falling; a head
    # hit then double vision; a fever with cold clammy skin; the neck will not bend with a fever;
    # spots like bruises with a fever; not "по маленькому" for hours; something taken, pupils
    # huge; back trouble then a bladder that will not empty; the right lower side and vomiting
    ("оса ужалила сына в ногу, губы опухают", "anaphylaxis"),
    ("оса ужалила в ногу, место укуса опухло и чешется", None),
    ("у мамы крапивница по всему телу и давление падает", "anaphylaxis"),
    ("давление падает к вечеру, голова тяжелая", None),
    ("стукнулся головой о полку, теперь все двоится", "head_injury"),
    ("в глазах двоится, когда устаю за компьютером", None),
    ("температура 39, руки холодные и липкие, пульс частый", "sepsis"),
    ("после пробежки руки холодные и мокрые", None),
    ("не может повернуть шею сын, температура 39", "meningitis"),
    ("не могу повернуть шею после сна на сквозняке", None),
    ("пятна похожи на синяки по ногам, жар у сына", "meningitis"),
    ("дочка не ходила по маленькому с обеда, вялая", "child_dehydration"),
    ("муж в клубе что-то принял, пульс 170", "overdose"),
    ("пульс 170 на пробежке, часы показали", None),
    ("поясницу прострелило, а мочевой пузырь не опорожняется", "cauda_equina"),
    ("сын держится за правый бок, его вырвало", "abdominal_emergency"),
    ("правый бок внизу колет после бега, прошло", None),
    # round 09 (cues): never like this before; diagnosed and asking in advance; it turned out
    # fine; cured; a slow change over months
    ("шершень ужалил в шею, лицо отекает, раньше такого не было", "anaphylaxis"),
    ("у мамы стенокардия, расскажите, чтобы мы знали заранее, когда звонить в скорую", None),
    ("сосед упал с крыши гаража, все обошлось, только испугался", None),
    ("тетя отравилась ягодами в прошлом месяце, ее вылечили", None),
    ("дедушка последние полгода путает слова, постепенно", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_09_RU_RULES)
def test_rules_tuned_on_round_09_ru(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Someone on a roof, bridge or sill who says they will jump, or threatens to jump from
# somewhere (found while reviewing round 09's rules: missed with the person named first).
JUMP_RU = [
    ("отец залез на крышу гаража и кричит, что спрыгнет", "self_harm"),
    ("подруга грозится выброситься из окна общежития", "self_harm"),
    ("летом на мосту ребята прыгнуть в реку решили, вода теплая", None),
    ("грозится уволиться с работы, если не дадут отпуск", None),
]


@pytest.mark.parametrize(("text", "flag"), JUMP_RU)
def test_threat_to_jump_ru(text: str, flag: str | None) -> None:
    assert_reads(text, flag)
