"""Rules added to the Simplified Chinese lexicon after the first training set (train-01).

Each rule has a wording that is in no phrase set and a benign look-alike that must stay
unflagged, like ``ROUND_05_RULES`` in ``test_redflags.py``.
"""

from __future__ import annotations

import pytest

from tests.flows.tuned import assert_reads

TRAIN_01_ZH_RULES = [
    # cue scopes: 仰过去/晕过去 are not the history word 过去; the 1990s, 多年前, 出过 are history
    ("他往后一仰过去，后脑勺磕在地上，现在一直吐", "head_injury"),
    ("小时候从床上摔下来磕到头吐过一次", None),
    ("刚才出车祸了，我爸被卡在车里", "trauma"),
    ("我舅舅八几年出过车祸，现在腿脚还行，想开点止痛药", None),
    # 现在 followed by "recovered" is not an acute word
    ("外公现在说话含糊，嘴也歪了", "stroke"),
    ("外公前两年中风过，现在恢复得挺好，想开降压药", None),
    # frames: a novel, a game, a video; not a PE class
    ("体育课上同学突然晕倒了，叫不醒", "unconscious"),
    ("在看一本小说，主人公心梗倒在地上了", None),
    ("游戏里我被车撞了，笑死", None),
    ("我在追剧，突然胸口剧痛", "chest_pain"),
    ("在看一部电影，突然我爸倒地抽搐", "seizure"),
    ("追剧看到车祸那集哭惨了", None),
    # pretending, or worrying that it will happen, is not happening
    ("我担心他是中风了，嘴歪了", "stroke"),
    ("弟弟假装晕倒吓唬我", None),
    ("我怕吃了这个药会过敏性休克，可以换一种吗", None),
    # an animal that kicked or butted a person is not the patient
    ("被牛顶到头，现在一直吐", "head_injury"),
    ("牛吃了塑料袋一直吐", None),
    # a baby who feeds and plays normally takes back "sleeps a lot"; "他没事" takes back a lick
    ("宝宝特别能睡，喂奶都不醒", "child_unresponsive"),
    ("宝宝最近特别能睡，不过吃奶和玩都挺好", None),
    ("孩子抽搐了五分钟，现在吃奶都正常", "seizure"),
    ("等红灯被追尾了，脖子有点僵", None),
    ("他从三楼摔下来，腿断了，别的都还好", "trauma"),
    ("孩子舔了洗衣凝珠，现在一直吐，他没事吧？", "overdose"),
    ("孩子舔了一下洗衣球，马上吐出来了，他没事，就是吓了一跳", None),
    ("车祸了，我老公流血很多，孩子没事", "bleeding"),
    ("孩子吞了一颗纽扣电池，看着他没事", "overdose"),
    # idioms: black stool from iron, renewing an adrenaline pen, slurring when drunk
    ("大便黑得像沥青，人站起来就晕", "bleeding"),
    ("吃了铁剂以后大便是黑色的，医生说正常", None),
    ("吃了花生，嘴唇肿了，喉咙发紧", "anaphylaxis"),
    ("儿子的肾上腺素笔到期了，想续开", None),
    ("他没喝酒，说话像喝醉了一样，一边手没劲", "stroke"),
    ("他喝醉了说话含糊，睡一觉就好了", None),
    # a throat tight from nerves, swollen from tonsillitis; eyes swollen from crying
    ("吃了虾以后喉咙发紧，声音都变了", "anaphylaxis"),
    ("一紧张喉咙就发紧，面试前特别明显", None),
    ("孩子吃了花生后一直哭，嗓子发紧", "anaphylaxis"),
    ("扁桃体发炎喉咙肿，吃饭有点疼", None),
    ("被蜜蜂蛰了以后眼皮肿了，喘不上气", "anaphylaxis"),
    ("昨晚哭得眼睛都肿了", None),
    # suffocating under work is figurative
    ("孩子哮喘发作，喘不过气了", "breathing"),
    ("工作任务多得我都喘不过气了", None),
    # general questions: "就一定是X吗", "会遗传吗", how to take a temperature, may he sleep
    ("我爸嘴歪了，手也抬不起来", "stroke"),
    ("手麻就一定是中风吗？", None),
    ("心梗会遗传吗", None),
    ("我爸说话含糊，是中风吗？", "confusion"),
    ("眼睛干涩一个月了，是中风吗？", None),
    ("三周的宝宝烧到38度", "infant_fever"),
    ("新生儿几度算高烧？", None),
    ("一个月宝宝量肛温还是耳温准？", None),
    ("2个月宝宝量体温38.5怎么办", "infant_fever"),
    ("他没喝醉，说话却含糊了", "stroke"),
    ("吃了虾后一直哭嗓子发紧", "anaphylaxis"),
    ("搬完家突然右手抬不起来", "stroke"),
    ("磕到头以后一直想睡觉，还吐了", "head_injury"),
    ("孩子磕到头以后可以睡觉吗", None),
    ("我爸突然说话都说不清了", "stroke"),
    ("这个病我也说不清楚是怎么回事", None),
    # a teenager sleeping in; mottling after a hot bath; a small scrape of cars; shy bladder
    ("早上叫孩子，怎么叫都叫不醒，身子软软的", "child_unresponsive"),
    ("周末孩子睡懒觉，怎么叫都叫不醒", None),
    ("周末我爸突然叫不醒了", "unconscious"),
    ("儿子放假天天叫不醒，睡到中午才起", None),
    ("发烧，身上一块一块发紫，压了不褪", "sepsis"),
    ("泡澡后腿上一块一块花花的，一会就消了", None),
    ("从早上到现在一直尿不出来，小肚子胀得疼", "urinary_retention"),
    ("有人在旁边我就尿不出来", None),
    ("吃了老鼠药，现在一直吐", "overdose"),
    ("追剧追得中毒了，停不下来", None),
    # craving something "to death"; a habit of calling every headache the worst
    ("我想死了，活着没意思", "self_harm"),
    ("想吃火锅想死了", None),
    ("这次头疼跟以前完全不一样，突然就痛到顶了", "thunderclap_headache"),
    ("我儿子每次感冒头疼都喊是这辈子最疼的", None),
    ("我爸平时都不头痛，刚才突然痛死了，一直吐", "thunderclap_headache"),
    ("我从来不头疼，今天有点头疼", None),
    # "要去死" is intent; "感觉要死了" after exercise is not
    ("我真的要去死了，别找我", "self_harm"),
    ("爬山累得感觉要死了哈哈", None),
    # collapsed and not waking; came round on the floor
    ("爷爷在院子里摔倒了，到现在都没醒", "unconscious"),
    ("宝宝午睡两个小时了还没醒", None),
    ("醒来发现自己倒在厨房地上，不知道发生了什么", "unconscious"),
    ("醒来发现自己躺在沙发上，昨晚看电视睡着了", None),
    # confusion: a relative's name or who someone is, the same words again and again, the date
    ("奶奶今天连我是谁都说不出来了", "confusion"),
    ("那个演员的名字我一下子叫不出来", None),
    ("爷爷同样的话一上午说了十几遍", "confusion"),
    ("这首歌我一天听了二十遍", None),
    ("问她今天几号，她答不上来", "confusion"),
    ("问他在哪吃饭，他说还没定", None),
    # slid down to the floor; asking what year it is; people in the room; pills hoarded
    ("奶奶吃着饭人就出溜到地上了，叫不应", "unconscious"),
    ("小孩滑倒了，出溜到地上哈哈", None),
    ("外婆下午开始一直问现在是哪一年", "confusion"),
    ("孩子一直问我今天是星期几，想出去玩", None),
    ("爷爷突然神神叨叨的，说屋里有人", "confusion"),
    ("我爸说屋里有人在装修，吵得很", None),
    ("我把安眠药都攒起来了", "self_harm"),
    ("降压药都囤够了，过年不用去医院", None),
    # sightseeing on a bridge, missing home, a dose twice a day, sore arms, deaf not confused
    ("我现在站在桥上，不想活了", "self_harm"),
    ("站在桥上看江景，特别美", None),
    ("他一个人站在天台边上一直往下看", "self_harm"),
    ("想家想死了，好久没回去", None),
    ("不小心把降压药吃了两次", "overdose"),
    ("奶奶的降压药一天吃两次，晚上忘了能补吗", None),
    ("爸爸右胳膊突然抬不起来了", "stroke"),
    ("打完羽毛球胳膊抬不起来，肌肉酸", None),
    ("爷爷突然答非所问，还不认人", "confusion"),
    ("爷爷耳背，问他话老是答非所问", None),
    ("孩子做作业做到哭，眼睛都哭肿了", None),
    # not recognising even me; chest pain in waves; lips a little blue, nostrils flaring
    ("外婆连家里人都认不出了", "confusion"),
    ("连我都不认识这个字", None),
    ("胸口一阵阵地绞着疼", "chest_pain"),
    ("肚子一阵一阵地疼，拉完就好", None),
    ("宝宝嘴唇有点紫，喘得厉害", "breathing"),
    ("口红涂得嘴唇有点紫", None),
    ("宝宝鼻翼一张一合，呼吸很急", "breathing"),
    ("外公半边身子不能动了", "stroke"),
    ("坐久了半边屁股麻，站起来就好", None),
    # nothing but blood passed; hives after a jab; a bottle of syrup drunk
    ("拉出来的都是鲜血，人发虚", "bleeding"),
    ("拉的全是血丝", None),
    ("打了头孢后身上起了好多风疙瘩，嗓子发紧", "anaphylaxis"),
    ("蚊子咬了，身上起了好多疙瘩", None),
    ("孩子把半瓶退烧药水都喝了", "overdose"),
    ("孩子把一瓶酸奶都喝了", None),
    # "she says she cut herself"; planning to end oneself
    ("胳膊上的伤是他自己割的", "self_harm"),
    ("桌上的字是自己划的", None),
    ("我打算今晚结束自己", "self_harm"),
    ("我打算月底结束自己的小店", None),
    # "不知道我是谁" (not whose child I am); an inhaler without relief; half the view gone;
    # a handful of pills to sleep away; lookaheads read the comma NFKC makes of "，"
    ("爷爷刚才突然不知道我是谁", "confusion"),
    ("他不知道我是谁家的孩子", None),
    ("我奶奶今天连我都不认识了，一直说要回老家", "confusion"),
    ("吸了药也不管用，越来越喘", "breathing"),
    ("喷了药以后好多了", None),
    ("视野一下子少了一半", "vision_loss"),
    ("这张照片的视野少了一半", None),
    ("我想吃一把药睡过去，不想醒了", "self_harm"),
    ("我想吃点安眠药睡个好觉", None),
    # low blood pressure with fever; cold all over after an infected wound; neck pain on bending;
    # no feeling on the toilet with back trouble; a week's pills at once; a big lump on the head
    ("发烧三天，今天血压很低，人很虚", "sepsis"),
    ("血压很低，一直这样，想开点药", None),
    ("伤口红肿发烫，现在全身发冷", "sepsis"),
    ("冬天出门全身发冷", None),
    ("女儿发烧吐了，低头就喊脖子疼", "meningitis"),
    ("落枕了，低头就喊脖子疼", None),
    ("搬东西闪了腰，现在上厕所没感觉了", "cauda_equina"),
    ("闪了腰，上厕所蹲不下去", None),
    ("老人一次吃了一周的药量", "overdose"),
    ("药一次买了一周的量", None),
    ("孩子摔倒后头上鼓起一个大包，一直想睡觉", "head_injury"),
    ("头上起了个包，没别的事", None),
    ("领导安排的任务太多了，压得我喘不过气", None),
    ("胸口压得我喘不过气", "chest_pain"),
    # narrower after look-alikes: a pot lid on a foot, asleep on the floor, a customer asked
    # thrice, "想撞墙" in traffic, grapes by the dozen, a bottle of cola, a fever "烧了",
    # vitamins twice, "人没事", a cut by accident
    ("货架倒下来压住了他的腿", "trauma"),
    ("锅盖掉下来砸到脚，有点青", None),
    ("醒来发现自己躺在地上睡着了，空调太冷了", None),
    ("同样的问题问了三遍，客服还是不回答", None),
    ("开车路上想撞墙，太堵了哈哈", None),
    ("开车时一直想直接冲下桥算了", "self_harm"),
    ("吃了十几颗葡萄", None),
    ("吃了十几颗安眠药", "overdose"),
    ("把一整瓶可乐都喝了", None),
    ("发烧了，手脚冰凉，吃了退烧药好了", None),
    ("手被火烧了，起泡了", "burns"),
    ("今天把维生素吃了两次，没事吧", None),
    ("车翻了，人没事", None),
    ("车翻了，人被压在下面", "trauma"),
    ("用刀切菜不小心划到自己，流了一点血", None),
    ("又忍不住用刀划自己了", "self_harm"),
    # blood everywhere in pregnancy; a neck arched back or that cannot bend, light that hurts;
    # a belly "梆硬"; vomit smelling of stool; "想了结", wanting to die somewhere quiet
    ("怀孕十周，内裤上全是血", "pregnancy_bleeding"),
    ("怀孕十周，内裤上全是分泌物", None),
    ("孩子发烧，脖子往后挺，叫他反应慢", "meningitis"),
    ("拍照的时候头往后仰", None),
    ("高烧，头疼得厉害，脖子不能弯，看到灯就难受", "meningitis"),
    ("晚上看到灯就难受，眼睛干，不发烧", None),
    ("肚子痛得不敢动，一动就疼，摸着梆硬", "abdominal_emergency"),
    ("肚子摸着梆硬，吃太多了", None),
    ("吐出来的东西有屎味，肚子胀得很", "abdominal_emergency"),
    ("老公吐槽这个屎味的榴莲", None),
    ("我觉得活着没什么意义，想了结", "self_harm"),
    ("我想了结这件事，再也不跟他来往", None),
    ("我想找个没人的地方安静地死去", "self_harm"),
    ("这盆花我不想让它死掉", None),
    # dialect and clinical register: 抽过去, 老大的泡, 从房上摔, 磕着脑袋, 颈项强直,
    # 突发视力丧失, 未排尿, 停经N周
    ("孩子抽过去了，翻白眼", "seizure"),
    ("笑得我抽过去了", None),
    ("娃让开水烫着了，起了老大的泡", "burns"),
    ("蚊子咬了，起了老大的包", None),
    ("俺哥从房上摔下来了，起不来", "trauma"),
    ("娃磕着脑袋了，一个劲儿吐", "head_injury"),
    ("磕着脑袋了，起了个包", None),
    ("发热伴颈项强直", "meningitis"),
    ("右眼突发视力丧失", "vision_loss"),
    ("术后八小时未排尿，下腹胀痛", "urinary_retention"),
    ("停经8周，阴道大量流血", "pregnancy_bleeding"),
    ("停经8周了，想问问怎么确认怀孕", None),
    # lifelong, not new
    ("我说话有点大舌头，从小就这样", None),
    ("爸爸今天说话突然大舌头了", "stroke"),
    # a face sagging on one side, an arm that "抬不起"; tree nuts; the same question after a
    # head injury; pinned "被...压住了腿"; a listless child; wet pants unnoticed; to vanish
    ("爸爸脸一边塌下来了，手也抬不起", "stroke"),
    ("举重举得手也抬不起", None),
    ("吃完腰果嗓子越来越紧，话都说不出", "anaphylaxis"),
    ("吃了腰果，肚子有点胀", None),
    ("从自行车上摔下来，头先着地，现在老是问同一个问题", "head_injury"),
    ("被水泥板压住了腿，拉不出来", "trauma"),
    ("被子压住了腿", None),
    ("孩子呕吐后变得蔫蔫的，不爱动", "child_unresponsive"),
    ("孩子叫他都不太理，在玩游戏", None),
    ("腰疼得厉害，尿了裤子自己都不知道", "cauda_equina"),
    ("我想让自己消失", "self_harm"),
    ("我想让自己消失一段时间去旅行", None),
    ("我想让自己消失在人群里，太社恐了", None),
    ("看了个纪录片，讲脑膜炎的，好吓人", None),
    ("刚看了个健康节目，突然我爸说话不清楚了", "stroke"),
    # the belly sucked in with each breath
    ("孩子呼吸很急，每次吸气肚子都往里瘪", "breathing"),
    ("饿得肚子都瘪进去了", None),
    # the chest and the back hurting together
    ("胸口和后背一起疼，出冷汗", "chest_pain"),
    ("胸口和后背一起长了痘", None),
    # breathless at rest, a word at a time, no breath, breathing through a straw
    ("躺着都喘，晚上只能坐着睡", "breathing"),
    ("跑完步坐着休息，一会就不喘了", None),
    ("他现在说话只能一个字一个字地往外蹦", "breathing"),
    ("爷爷好像没气了，叫也不应", "breathing"),
    ("车胎没气了，打不了车", None),
    ("呼吸像用吸管一样，怎么都吸不够", "breathing"),
    ("奶茶太稠，吸管吸不上来", None),
    # stiff, then shaking
    ("浑身僵硬接着开始抖，叫他没反应", "seizure"),
    ("早上起来浑身僵硬，活动一下就好", None),
    # stroke: one side of the mouth, half the face, only sounds, a cup he cannot hold
    ("爸爸笑起来只有半边嘴会动", "stroke"),
    ("我能只让一边眉毛动，朋友都说好厉害", None),
    ("妈妈右边脸突然垮下来了", "stroke"),
    ("最近熬夜脸垮了好多", None),
    ("他张嘴只能发出啊啊的声音", "stroke"),
    ("嗓子发炎，说话只能小声", None),
    ("拿茶杯的手突然端不住了", "stroke"),
    ("茶杯太烫了端不住", None),
    # bleeding: many cotton balls, oozing, spurting, through the dressing, still after an hour
    ("拔牙后棉球换了二十几个，嘴里还是血", "bleeding"),
    ("感冒了，纸巾用了好几包", None),
    ("伤口一直在往外渗血，按不住", "bleeding"),
    ("刷牙时牙龈偶尔渗血", None),
    ("切到手了，血一股一股往外冒", "bleeding"),
    ("气得我血往上涌", None),
    ("绷带缠了好几圈还是往外渗", "bleeding"),
    ("纱布包着，伤口没再渗了", None),
    ("手指割破了，半个小时了还在流", "bleeding"),
    ("切洋葱眼泪流了半个小时了还在流", None),
    # burns: caustics and battery acid on the skin, a hand into boiling water, a palm-sized burn
    ("管道疏通剂溅在手背上，皮都发白了", "burns"),
    ("通下水道的药水放哪里比较安全", None),
    ("蓄电池液弄到手上，越来越痛", "burns"),
    ("电瓶液怎么加", None),
    ("孩子的手伸到开水里了", "burns"),
    ("手泡在热水里暖和一下", None),
    ("热蜡烫到腿上，巴掌大一片", "burns"),
    ("热咖啡洒在裤子上了，人没烫着", None),
    # head injury: the head then an object; something falling on someone's head
    ("头被门框撞了一下，现在一直想睡", "head_injury"),
    ("头被门框撞了一下，起了个包，没别的事", None),
    ("一块砖砸到工友头上，他当场晕了", "head_injury"),
    ("球砸到我头上，一点事都没有", None),
    # trauma: overturned vehicles, pinned by what fell, near-amputation, impaled
    ("三轮车翻了，我爸被压在下面", "trauma"),
    ("我把车里的东西翻了个遍", None),
    ("一根钢管倒下来砸中了工人的腿", "trauma"),
    ("被子压住了腿，有点麻", None),
    ("切菜把手指头切得快掉了", "trauma"),
    ("切菜切到手指，破了点皮", None),
    ("钢筋扎穿了他的小腿", "trauma"),
    ("针扎穿了手套，手没事", None),
    # sepsis: fever with an ashen face; shaking after an operation or a caesarean
    ("妈妈高烧，脸色灰白，叫她反应很慢", "sepsis"),
    ("发烧两天了，脸色有点白，吃了退烧药好多了", None),
    ("剖宫产后第三天，冷得打颤停不下来", "sepsis"),
    ("做完手术病房空调太冷，有点发抖", None),
    # overdose: the verb first, a dose taken again, a dozen tablets; not vitamins, not milk
    ("孩子咬开了一颗洗碗块", "overdose"),
    ("洗衣凝珠要放在孩子够不到的地方", None),
    ("爸爸早上把降糖药吃了三次", "overdose"),
    ("这个药一天吃了三次，按医生说的", None),
    ("弟弟吃了十多片退烧药", "overdose"),
    ("一盒十几片，一天吃一片", None),
    ("不小心吃了两次降压药", "overdose"),
    ("不小心吃了两次钙片", None),
    ("宝宝喝了一整瓶止咳糖浆", "overdose"),
    ("宝宝一口气喝了一整瓶奶", None),
    # pregnancy: weeks without the word, blood that "flows"
    ("30周了，刚才流了很多鲜红的血", "pregnancy_bleeding"),
    ("30周，产检一切正常，胎动很好", None),
    # a child gone limp, an arm that drops; a baby who turns away the bottle all day
    ("孩子一下子软下去了", "child_unresponsive"),
    ("孩子心一下子软了，就原谅了弟弟", None),
    ("宝宝胳膊一松手就垂下去", "child_unresponsive"),
    ("宝宝一喂水就扭头，一整天没喝东西了", "child_dehydration"),
    ("孩子在奶奶家，今天没喝奶，喝了好多水", None),
    # vision: one side gone, gone dark at once, cannot "瞧见"
    ("奶奶说右边的东西都看不见了", "vision_loss"),
    ("右边的东西都收起来了", None),
    ("看着看着眼前一下子全黑了，半个小时还没恢复", "vision_loss"),
    ("电视一下子全黑了", None),
    ("左眼突然瞧不见了", "vision_loss"),
    ("眼镜丢了，瞅不清字", None),
    # cauda equina: saddle numbness in lay words, not knowing whether one has peed, back pain
    ("腰疼了一周，今天屁股那块木木的", "cauda_equina"),
    ("腰痛，上厕所感觉不到自己有没有尿", "cauda_equina"),
    ("腰痛，尿尿正常，腿不麻", None),
    # urinary retention: nothing since the operation, not a drop
    ("做完手术到现在一直没尿出来，憋得慌", "urinary_retention"),
    ("从早上到现在只尿了一次，是不是水喝少了", None),
    ("站了半天一滴尿都出不来", "urinary_retention"),
    ("一滴酒都没喝", None),
    # testicular: sudden pain on one side down there, a young man's pain, one "蛋"
    ("儿子说下面左边突然剧痛", "testicular_pain"),
    ("下面左边的牙疼得厉害", None),
    ("老公说下面疼得要命，站都站不直", "testicular_pain"),
    ("儿子说下面有点痒", None),
    ("右边蛋肿得老大，疼得走不了路", "testicular_pain"),
    ("右边蛋糕有点塌了", None),
    # abdomen: bile-green vomit, a belly hard to the touch or held tight as a drum, and pain
    ("整个肚子绷得紧紧的，疼得直冒汗", "abdominal_emergency"),
    ("吃太饱了肚子都绷紧了，有点疼", None),
    ("一直吐绿水，肚子胀", "abdominal_emergency"),
    ("老公吐苦水说工作太累", None),
    ("胃疼得厉害，摸起来很硬", "abdominal_emergency"),
    ("胃疼，吃了药好点了，肚子摸着软的", None),
    # self-harm: cut marks, "better off without me", driving into a wall, burning oneself, jumping
    ("在儿子手臂上看到好多割痕", "self_harm"),
    ("胳膊上被猫抓了几道，要打针吗", None),
    ("家里人没有我会更轻松", "self_harm"),
    ("他们没有我的电话号码", None),
    ("每天开车上班都想一头撞到护栏上", "self_harm"),
    ("开车的时候差点撞到树，吓死了", None),
    ("我会用烟头烫自己", "self_harm"),
    ("用卷发棒烫到自己了", None),
    ("站在江边就想跳下去", "self_harm"),
    ("站在跳台上不敢往下跳", None),
    # meningitis: a neck that hurts when moved, a child who will not have the light on
    ("烧到39度，一动脖子就哭", "meningitis"),
    ("落枕了，一动脖子就疼，不发烧", None),
    ("发烧39度，脖子硬，不让开灯", "meningitis"),
    # thunderclap: a headache that floors you, a bang in the head, split like an axe, 10 of 10
    ("突然头疼到站不起来", "thunderclap_headache"),
    ("感冒头疼到不想起床", None),
    ("脑子里面砰的一声，然后剧痛", "thunderclap_headache"),
    ("脑子里嗡嗡的，没睡好", None),
    ("头痛得像被斧头劈开一样", "thunderclap_headache"),
    ("头痛得像没睡醒一样", None),
    ("突然头痛，痛到10分", "thunderclap_headache"),
    ("头有点痛，大概3分", None),
    # infant fever: weeks as 礼拜 or in English, twins, after a jab, a forehead burning hot
    ("宝宝6个礼拜，发烧38.2", "infant_fever"),
    ("宝宝6个礼拜，体温36.8，正常吗", None),
    ("my baby 3 weeks，发烧38.5", "infant_fever"),
    ("1个月宝宝打完疫苗发烧38度", "infant_fever"),
    ("打完疫苗宝宝有点闹，不发烧", None),
    ("双胞胎才5周，一个烧到38.5", "infant_fever"),
    ("2个月宝宝额头滚烫", "infant_fever"),
    ("2个月宝宝的奶瓶刚消毒，滚烫的", None),
]


@pytest.mark.parametrize(("text", "flag"), TRAIN_01_ZH_RULES)
def test_rules_added_after_train_01_zh(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Rules added after round 06 (merged) and the second training set (train-02), each with a
# wording that is in no phrase set and a benign look-alike.
ROUND_06_ZH_RULES = [
    # confusion: asked again the moment it is answered; a relative called by another's name
    ("我妈刚告诉完她马上又问一遍现在几点", "confusion"),
    ("客服同样的问题问了三遍", None),
    ("外婆今天把我叫成我舅舅的名字", "confusion"),
    ("他总把我当成小孩", None),
    ("外公起来就糊里糊涂的", "confusion"),
    ("早上起来迷迷糊糊的，洗把脸就好了", None),
    # chest pain spreading to the left-side shoulder
    ("心里难受，疼到左边肩膀", "chest_pain"),
    ("落枕了，脖子疼", None),
    # the whole body stiff, then shaking; not stiff with cold
    ("爸爸整个人突然僵住然后开始抖", "seizure"),
    ("冻得整个人僵硬，一直发抖", None),
    # an arm that drifts down half-way; a mouth "a bit" crooked
    ("让他两只胳膊平举，左手举到一半就垂下去了", "stroke"),
    ("杠铃举到一半就掉下来了", None),
    ("妈妈说话慢，嘴角看着有点歪", "stroke"),
    # a blood thinner and bleeding that will not stop
    ("我外婆吃利伐沙班，切菜割到手，血按不住", "bleeding"),
    ("我吃华法林，咳嗽一直停不下来", None),
    # something stuck in the throat after a food or a jab
    ("孩子吃完花生以后喉咙里好像有东西卡着，说话变了", "anaphylaxis"),
    ("嗓子发炎，咽口水都难", None),
    # a cooker's steam vent and a blistered palm
    ("宝宝手碰到高压锅排气口，整个手掌起了水泡", "burns"),
    ("电饭煲出气口烫了一下，红了一小块", None),
    # a head struck by an object, then a blackout
    ("他的后脑勺被铁锤敲了一下，现在断片了", "head_injury"),
    ("头被蚊子咬了个包", None),
    # a person falling from scaffolding or into a shaft
    ("有个工人掉进电梯井了", "trauma"),
    ("他的钥匙掉进井里了", None),
    # a fever and a sense of doom; not a slightly fast heart
    ("烧到40度，心跳特别快", "sepsis"),
    ("发烧38度，心跳有点快，正常吗", None),
    # pregnancy with bleeding written in English
    ("怀孕8周 bleeding 好多", "pregnancy_bleeding"),
    ("怀孕了，想问问能不能吃布洛芬", None),
    # painkiller totals in milligrams or tablets; not a box's count
    ("退烧药加起来吃了5000毫克", "overdose"),
    ("布洛芬一盒24片，一天吃几片", None),
    # pesticide spraying, then drooling and blurred sight
    ("喷了农药以后一直流口水，看东西模糊", "overdose"),
    ("打农药的时候要戴口罩吗", None),
    # a veil over one eye; "blind" in English; haloes with eye pain
    ("右眼像被一层纱挡住了", "vision_loss"),
    ("眼镜像蒙了一层纱，擦擦就好了", None),
    ("突然 blind 了左眼", "vision_loss"),
    ("看灯有光晕，眼睛胀痛，看不清", "vision_loss"),
    ("近视眼看灯有光晕", None),
    # one side "down there"; one "球" down there; pinyin gao wan
    ("老公说他那里左边疼得受不了", "testicular_pain"),
    ("下面一个球场被占了", None),
    ("下面左侧那里很疼", "testicular_pain"),
    # pinyin "xiang si" with despair, not "missing you"
    ("xiang si，没人在乎我", "self_harm"),
    ("xiang si 你了", None),
    # a head about to burst, scores above ten; not a noisy child
    ("今天头要炸了，突然痛到十三分", "thunderclap_headache"),
    ("孩子吵得我头都要炸了", None),
    # back pain and wet sheets unnoticed; a wooden ring round the bottom
    ("腰疼，发现尿湿了床自己都不知道", "cauda_equina"),
    ("宝宝尿湿了床", None),
    ("腰疼，屁股那一圈全都是木的", "cauda_equina"),
    # the right side of the lower belly in lay words
    ("右边小肚子疼，还发烧", "abdominal_emergency"),
    ("右边小肚子有点胀，吃多了", None),
    # straining, and not a drop
    ("憋得小腹疼，就是排不出来", "urinary_retention"),
    # look-alikes: bleeding gums, static shock, a blocked nose, a chest-pain clinic, a twitching
    # eyelid, flu "run over by a lorry", money "bleeding", laughing breathless, a bath-time baby,
    # dental numbness; the real thing still flags
    ("刷牙的时候满口都是血，止不住", "bleeding"),
    ("牙龈经常出血，是不是上火", None),
    ("插座打了一下，手心发黑", "burns"),
    ("冬天脱毛衣被静电打了一下", None),
    ("吃了虾以后嗓子发紧，喘不上气", "anaphylaxis"),
    ("感冒了鼻子堵得难受", None),
    ("胸口压着疼，出冷汗", "chest_pain"),
    ("胸痛中心在几楼", None),
    ("孩子全身一抽一抽的，叫不醒", "seizure"),
    ("眼皮一抽一抽的，是不是没睡好", None),
    ("被卡车碾过了腿，动不了", "trauma"),
    ("累得像被压路机碾过一样", None),
    ("手被玻璃划了，大出血了", "bleeding"),
    ("装修把我大出血了", None),
    ("笑着笑着突然喘不上气，嘴唇发紫", "breathing"),
    ("笑得我都快岔气了", None),
    ("宝宝洗完澡全身软软的，叫不醒", "child_unresponsive"),
    ("宝宝一洗澡就软软的，可乖了", None),
    ("拔牙打了麻药，喉咙发紧，喘不上气", "anaphylaxis"),
    ("补牙打了麻药，说话有点大舌头", None),
    # a fall from a balcony is trauma, not a jump; a cat that fell is fine
    ("孩子从三楼阳台掉下去了", "trauma"),
    ("猫从阳台掉下去了，没事", None),
    # an age "now" is not an acute word
    ("爸爸现在八十岁了，刚才突然说话不清", "stroke"),
    ("宝宝现在两个月大了，今天长得很好，想约体检", None),
    # general questions: how long, at what age, one disease or two, an emergency or not,
    # what to put in the mouth, which thermometer, the normal temperature
    ("癫痫发作了五分钟还没停", "seizure"),
    ("癫痫发作一般能持续几分钟", None),
    ("高热惊厥几岁就不会再犯了", None),
    ("我爸心绞痛发作了，含了药也不管用", "chest_pain"),
    ("心梗和心绞痛是一回事吗", None),
    ("腰疼得厉害，突然大小便失禁了", "cauda_equina"),
    ("一个人大小便失禁算急症吗", None),
    ("有人抽搐的时候要往嘴里塞东西吗", None),
    ("2个月宝宝耳温38.6", "infant_fever"),
    ("新生儿额温枪好还是耳温枪好", None),
    ("新生儿正常的体温是多少", None),
    ("宝宝体温一直在36.8，正常吗", None),
    # fiction: a heroine, writing a novel
    ("电视剧里的女主晕倒了，好假", None),
    ("写小说，主角车祸了怎么写", None),
    # after a stroke (history) unless it happens again now
    ("爷爷脑梗以后又突然说不出话了", "stroke"),
    ("爷爷中风以后一直在吃药", None),
    # over in minutes, swelling gone, woke and played, a wee after all
    ("刚才喘不上气，到现在还没缓过来", "breathing"),
    ("刚才喘不上气，十分钟就过去了", None),
    ("嘴唇肿了，今天已经完全消了", None),
    ("孩子叫不醒，后来就醒了，又开始闹", None),
    ("宝宝一整天尿布都是干的", "child_dehydration"),
    ("宝宝一上午没尿，刚刚换的时候马上就尿了", None),
    # a vitamin twice, "poisoned" with anger
    ("降压药不小心吃了两次", "overdose"),
    ("维生素D不小心吃了两次", None),
    ("气得我要中毒了", None),
    # train-02: lying still on the floor (not a lazy dog); mumbling no one understands
    ("室友躺地上不动了", "unconscious"),
    ("狗躺地上不动了，懒得很", None),
    ("他说话嘟嘟囔囔的听不懂在说什么", "confusion"),
    ("他说的是方言，我听不懂", None),
    # asking the same question over; not knowing how he got there (a person, not a parcel)
    ("奶奶一直重复问同一个问题", "confusion"),
    ("我一直重复说同样的话提醒他，他还是忘", None),
    ("外公说他不知道怎么到那儿的，在公园坐着", "confusion"),
    ("快递不知道怎么到那的，反正收到了", None),
    # mid-chest heaviness; tearing back pain through to the chest
    ("胸口正中间一直发沉", "chest_pain"),
    ("胸口中间长了颗痘", None),
    ("后背突然撕裂一样疼，窜到胸口", "chest_pain"),
    ("后背长了个痘，有点疼", None),
    # every breath an effort; a named inhaler without relief; gasping
    ("他每口气都很费劲", "breathing"),
    ("喷了万托林也不管用", "breathing"),
    ("喷了万托林以后好多了", None),
    ("他张着嘴大口倒气", "breathing"),
    # fitting on the floor, not smoking there; violent shaking
    ("他躺在沙发上抽", "seizure"),
    ("他在地上抽烟", None),
    ("突然全身剧烈抖动", "seizure"),
    # a limp or leaden arm; suddenly unable to write
    ("她的胳膊软塌塌地垂下来，抬不起来", "stroke"),
    ("左边胳膊像灌了铅，抬都抬不起", "stroke"),
    ("爷爷突然写不了字了", "stroke"),
    # red blood coughed or vomited; blood spurting
    ("外婆咳出来的都是鲜红色的血", "bleeding"),
    ("吐出来的都是红色的西瓜汁", None),
    ("伤口的血往外滋", "bleeding"),
    # a caustic splash that burns; hot oil on the back, not on the floor
    ("洁厕灵溅到手上，火辣辣的，皮都发白了", "burns"),
    ("洗碗水溅到手上了", None),
    ("热油全泼到后背上了", "burns"),
    ("热水洒在地上了", None),
    # knocked flying, a ladder that slips, a stab, a broken shin, a deep gash
    ("一辆电动车把行人撞飞了", "trauma"),
    ("那辆车被撞得飞了出去，人没事", None),
    ("梯子一滑他摔下来了", "trauma"),
    ("他肚子上挨了一刀", "trauma"),
    ("小腿骨断了，动不了", "trauma"),
    ("桌子腿断了", None),
    ("胳膊上划了很深一个口子", "trauma"),
    # a solvent or rat poison swallowed; a battery in the mouth and gone
    ("孩子把松节油喝了", "overdose"),
    ("汽油放在哪里安全", None),
    ("孩子在翻老鼠药，嘴里都是蓝色的东西", "overdose"),
    ("孩子把纽扣电池塞嘴里了，找不到了", "overdose"),
    ("电池装反了", None),
    # a curtain drawn down; "eyes gone blind" (not an insult); floaters and a growing shadow
    ("眼前好像有人把一块黑色的帘子拉下来", "vision_loss"),
    ("救命 我妈眼睛瞎了", "vision_loss"),
    ("你眼睛瞎了吗，红灯都不看", None),
    ("右眼一下子啥也瞧不见了", "vision_loss"),
    ("眼前好多黑点越来越多，有一块黑影越来越大", "vision_loss"),
    # a bladder about to burst; not once since the operation
    ("膀胱胀得感觉要爆了", "urinary_retention"),
    ("手术后一次都没尿出来", "urinary_retention"),
    # one testicle wrung (not a cake)
    ("老公说右边蛋像被拧了一样", "testicular_pain"),
    ("右边蛋糕有点塌了", None),
    # pills hoarded (not the money for them); wanting it all to stop; a train; no point living
    ("管子都准备好了，今晚", "self_harm"),
    ("攒了一个月的药费", None),
    ("晾衣服的绳子已经准备好了", None),
    ("我只想让这一切停下来", "self_harm"),
    ("我想让这场雨停下来", None),
    ("每天都想冲到地铁前面", "self_harm"),
    ("活着有什么意思", "self_harm"),
    # cue scopes: a precaution not taken and "soon after" do not negate; 吃没吃 (whether);
    # 不正常 is not 正常; the horse one rides; not really woken
    ("修灯没断电被电打了手上有个黑点", "burns"),
    ("修灯的时候没被电打到", None),
    ("他没戴头盔摔了，头上流血，一直吐", "head_injury"),
    ("吃了芒果没过多久嘴唇就肿了", "anaphylaxis"),
    ("吃了芒果，没有嘴唇肿，也没有嗓子发紧", None),
    ("忘了吃没吃降压药又吃了两遍", "overdose"),
    ("孩子右下腹疼 38.5 走路都不正常", "abdominal_emergency"),
    ("右下腹有点疼，体温正常", None),
    ("骑马摔下来，头着地，一直吐", "head_injury"),
    ("马摔倒了，一直吐", None),
    ("摔倒以后到现在也没真正醒过来", "unconscious"),
    ("脑壳突然痛得遭不住", "thunderclap_headache"),
    ("大便黑得发亮，一站起来就天旋地转", "bleeding"),
    # combos: a nonsense answer when muddled; hives on the face after a food; a fire and a
    # burnt hand; a fall and a bleeding forehead; rigors with an infection; a neck that will
    # not turn with fever; a child barely opening the eyes (not sleepy); a toddler not
    # drinking; a pregnancy in weeks; saddle signs in lay words; one side swollen down there
    ("奶奶犯迷糊了，问她在哪她说在学校", "confusion"),
    ("问她在哪她说在学校，下课就回来", None),
    ("吃了鸡蛋以后脸上起了一片风团", "anaphylaxis"),
    ("脸上起了一片痘痘", None),
    ("油锅起火，眉毛被烧了", "burns"),
    ("生日蜡烛着火了，好漂亮", None),
    ("摔了一跤，额头上流血，一直想睡", "head_injury"),
    ("额头上长了个包，一直想睡", None),
    ("肾盂肾炎，牙齿咯咯打颤", "sepsis"),
    ("冬天冷得牙齿打颤", None),
    ("发烧，脖子弯不了", "meningitis"),
    ("落枕了，脖子转不动", None),
    ("孩子眼睛几乎睁不开，头往后耷拉", "child_unresponsive"),
    ("宝宝困得眼睛都快睁不开了，一会就睡了", None),
    ("一岁半，不吃不喝，一天了", "child_dehydration"),
    ("我奶奶八十岁了，不吃不喝", None),
    ("我28周了，下面见红了", "pregnancy_bleeding"),
    ("我28岁了，牙龈出血", None),
    ("腰疼，屁股像坐在棉花上，感觉不到椅子", "cauda_equina"),
    ("沙发软得像坐在棉花上", None),
    ("我儿子说下面疼，右边已经肿了", "testicular_pain"),
    ("我女儿说下面疼，可能是尿路感染", None),
    # a calm baby is not a floppy one; "no use" (没用) does not negate what follows; "才三周"
    # without a child word (not a pregnancy); slumped over a table; no feeling passing urine
    ("孩子不哭不闹，就那么躺着", "child_unresponsive"),
    ("宝宝很乖，不哭不闹，吃得也多", None),
    ("吃了药也没用胸口还是疼", "chest_pain"),
    ("吃了药也没用，不头疼", None),
    ("才三周，烧到38.2，一直哼唧", "infant_fever"),
    ("怀孕才六周，发烧38.2", None),
    ("爸爸在桌上一趴就不动了", "unconscious"),
    ("我在床上一趴，就不想动了", None),
    ("腰疼，尿尿的时候好像是滴的而且没感觉", "cauda_equina"),
    ("腰疼，尿尿的时候感觉正常", None),
    # "迷糊过去" (drifting off) is not the history word 过去; a blackout (断片) after a knock,
    # not after drinking
    ("磕到头以后老是吐说着说着就迷糊过去", "head_injury"),
    ("奶奶过去一直吐，查了是胃炎", None),
    ("磕到头以后断片了", "head_injury"),
    ("喝多了断片了", None),
    # "didn't notice any" (没注意到) still negates; "wasn't careful" (没注意) does not
    ("没注意头撞到柜角上一直想睡", "head_injury"),
    ("没注意到有抽搐", None),
    # trying to conceive (备孕) is not a pregnancy; a face in a photo is not the patient's
    ("备孕中，想知道着床出血是什么样的", None),
    ("我妈脸看着有点歪，说话也慢", "stroke"),
    ("照片里我妈脸看着有点歪，是角度问题", None),
    # narrower: a racing heart only with a fever of 39.5 or more; "only want it all to stop";
    # a tongue tied by nerves; a new question is not the same one again; a bin knocked flying
    ("发烧38度，心跳好快，是不是正常", None),
    ("工作压力大，想让这一切停下来", None),
    ("舅舅现在说话舌头打结", "stroke"),
    ("他一紧张说话舌头打结", None),
    ("刚回答完他又问了一个新问题", None),
    ("汽车把垃圾桶撞飞了", None),
    # "突然想起" (suddenly remembering) is not a sudden onset; fitting on a sofa, not smoking
    # an e-cigarette there or spinning a top; pretend play with a remote control
    ("刷了一天题，头要炸了，突然想起还有作业", None),
    ("他在床上抽电子烟", None),
    ("孩子在地上抽陀螺", None),
    ("孩子把遥控器当电话用，玩得开心", None),
    # a splash that changes the skin, not chilli that stings; an operation is not a stabbing;
    # a deep cut in the body, not in trousers
    ("不知道什么东西溅到腿上，皮都变硬了", "burns"),
    ("辣椒水溅到手上，火辣辣的", None),
    ("剖腹产肚子上挨了一刀，现在恢复得不错", None),
    ("裤子划了很深一个口子", None),
    # pregnant and clutching the belly, not laughing; a toothache on one side is not down there
    ("怀孕8周，捂着肚子蜷成一团", "pregnancy_bleeding"),
    ("怀孕了，看小品笑得捂着肚子", None),
    ("儿子说下面疼，左边牙很疼", None),
    ("我家猫3岁，不吃不喝", None),
    # what happens in a show or a novel, up to the end of its clause
    ("电视剧里的人晕倒了，我爸看着看着也突然晕倒了", "unconscious"),
    ("小说里男主被人从背后捅了一刀血流不止", None),
    # a toddler's last wee yesterday, not this morning; breathless from a climb is expected
    ("一岁的娃吐了一天，最后一次尿是昨天晚上", "child_dehydration"),
    ("孩子最后一次尿是早上，现在还不想尿，正常吗", None),
    ("爬山每口气都很费劲，正常吗", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_06_ZH_RULES)
def test_rules_added_after_round_06_zh(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Rules added after round 07 (flows/questionnaires/redflags.toml, comments "round 07: ...").
ROUND_07_ZH_RULES = [
    # history: died of a named disease, hearsay, a third person's diagnosis, "会伤肝" in general
    ("我表哥前阵子中风走了，家里人都很难过", None),
    ("听说隔壁大爷心梗了", None),
    ("听老师说孩子在学校吞了纽扣电池", "overdose"),
    ("我听见他说胸口疼得厉害", "chest_pain"),
    ("同事的孩子得了脑膜炎", None),
    ("孩子发烧，脖子硬，是脑膜炎吗", "meningitis"),
    ("布洛芬吃多了会伤胃吗", None),
    ("孩子吃了太多扑热息痛会伤肝吗", "overdose"),
    # general questions: kinds, screening, a check-up after it
    ("中风有几种类型", None),
    ("心梗筛查要做哪些项目", None),
    ("脑梗以后需要复查吗", None),
    ("爷爷突然中风了，嘴歪了", "stroke"),
    # already in hospital and stable, back at work
    ("我弟车祸受伤，现在在住院观察", None),
    ("她在住院部门口突然晕倒了", "unconscious"),
    ("表姐先兆流产，现在情况稳定了", None),
    ("他昨天晕倒了，今天已经去上班了", None),
    ("车祸了，他躺在路边起不来，还没送医院", "trauma"),
    # frames: a licence exam, a medical student, a school lesson, a play, a titled work, a post
    # seen online, medicine to take in advance; an event during class is not a lesson
    ("考执业医师，心梗的心电图怎么看", None),
    ("我是医学生，想问休克的分类", None),
    ("生物课讲到中风的原因", None),
    ("儿子学校演出要演一个中风的老人", None),
    ("排练的时候突然晕倒了，叫不醒", "unconscious"),
    ("《实习医生》里有人突然抽搐", None),
    ("微博上有人说孩子吞了磁铁，太吓人了", None),
    ("去高原之前要不要提前备点药", None),
    ("上课的时候突然抽搐，口吐白沫", "seizure"),
    ("我在写论文的时候突然胸口剧痛", "chest_pain"),
    ("我在写论文，突然胸口剧痛", "chest_pain"),
    # a fear of a cause and what it might bring
    ("怕低血糖晕倒，包里带什么好", None),
    ("他低血糖晕倒了，叫不醒", "unconscious"),
    # confusion: suddenly asking what year it is; cannot say where she lives
    ("外婆一下子问我们现在是几几年", "confusion"),
    ("孩子问我今年是哪一年，在学日历", None),
    ("问她家在哪她答不上来", "confusion"),
    ("问她家在哪，她说在城东", None),
    # a dull ache in the chest
    ("心口隐隐地疼了一上午", "chest_pain"),
    ("肚子隐隐作痛", None),
    # pads soaked, counted in words
    ("半小时就用了两片姨妈巾", "bleeding"),
    ("一天换了三片卫生巾，量正常", None),
    # a chemical splashed on the skin
    ("管道疏通剂喷到孩子脸上了", "burns"),
    ("化学品溅到衣服上了，洗掉了", None),
    # a rash that does not fade when pressed; still visible under a glass
    ("孩子发烧，腿上的红点按了也不褪", "meningitis"),
    ("红点按了就褪色了", None),
    ("拿杯子按了一下，点点依然看得见", "meningitis"),
    ("拿杯子按了一下，点点就看不见了", None),
    # a dose taken again by mistake; a child who sneaked spirits
    ("老人糊涂，重复服了一遍降压药", "overdose"),
    ("医生说不用重复吃药", None),
    ("三岁女儿偷喝了小半杯二锅头", "overdose"),
    ("孩子偷喝了一口可乐", None),
    # belly pain that stops all movement (not period pain); a hernia that will not go back
    ("小腹痛得完全动不了", "abdominal_emergency"),
    ("痛经肚子疼得动不了", None),
    ("爷爷的疝气鼓出来按不回去了", "abdominal_emergency"),
    ("疝气平躺就能推回去", None),
    # a threat to go and die, not the insult
    ("她说再逼她她就去死", "self_harm"),
    ("滚，去死吧", None),
    # chest discomfort with a cold sweat
    ("心口难受，直冒冷汗", "chest_pain"),
    ("胃里难受，直冒冷汗", None),
    # a first food and hives all over
    ("第一次吃芒果，全身都是风团", "anaphylaxis"),
    ("身上都是蚊子包", None),
    # the head struck by something, then sickness
    ("脑袋被工地上飞来的钢管砸中了，一直恶心", "head_injury"),
    ("头被妹妹的玩具打了一下，哭了一会", None),
    # a fever, then the temperature falling below 36 or blood pressure under 90
    ("外婆肺炎，体温掉到34.8度，手冰凉", "sepsis"),
    ("发烧吃了退烧药，体温降到36.8", None),
    ("发烧三天，血压才75/40", "sepsis"),
    ("发烧三天，血压120/80", None),
    # a sudden headache that brings one to the knees
    ("头疼突然加重，疼得他蹲在地上", "thunderclap_headache"),
    ("突然抽筋，腿疼得蹲在地上", None),
    # a baby two months from birth with a fever
    ("孩子生下来两个月，烧到38.3", "infant_fever"),
    ("孩子出生两个月了，就是有点吐奶", None),
    # a weak cry, a baby like a noodle
    ("宝宝哭声越来越弱", "child_unresponsive"),
    ("宝宝哭声很大，吃完奶就不哭了", None),
    # a child without tears, sick after every drink
    ("闺女拉肚子，哭也没泪", "child_dehydration"),
    ("孩子哭得满脸是泪", None),
    ("小孩子吐了一天 喝啥都吐", "child_dehydration"),
    # not sure whether the dose was taken, then taken again
    ("不记得吃了没 又吃了一顿华法林", "overdose"),
    ("忘了有没有吃药，就没再吃", None),
    # back pain and numb between the legs
    ("腰疼得厉害 两条腿中间都麻了", "cauda_equina"),
    ("腰疼 两条腿中间的皮肤有点痒", None),
    # vomiting and no wind
    ("肚子一直吐 也不排气", "abdominal_emergency"),
    ("吐了两次 放屁很多", None),
    # right lower belly pain, worse when the hand lets go
    ("右下腹疼 松手的时候反而更疼", "abdominal_emergency"),
    ("右下腹有点疼，走路没事", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_07_ZH_RULES)
def test_rules_added_after_round_07_zh(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


# Rules added after round 08 (flows/questionnaires/redflags.toml, comments "round 08: ..."), each
# with a wording that is in no phrase set and a benign look-alike.
ROUND_08_ZH_RULES = [
    # called or shaken and no answer at all
    ("奶奶坐在沙发上，喊她半天也没回应", "unconscious"),
    ("叫他吃饭他回应了一声又继续玩", None),
    # pain in waves in the heart's place
    ("心口这块阵阵地绞着疼", "chest_pain"),
    ("肚子这块一阵一阵地疼，拉完就好了", None),
    # limbs jerking wildly; rigid, then jerking
    ("爷爷手脚乱抽，叫不应", "seizure"),
    ("孩子睡觉时手脚乱动，踢被子", None),
    ("爸爸僵住了几秒然后抽起来", "seizure"),
    ("拍照的时候笑容僵住了", None),
    # the tongue deviating when stuck out
    ("让奶奶伸舌头，她的舌头往右边歪了", "stroke"),
    ("伸舌头照镜子，舌苔有点白", None),
    # a tooth socket that keeps bleeding, gauze soaked
    ("拔了智齿以后一直流血，棉球全湿透了", "bleeding"),
    ("拔完牙咬了半小时棉球，已经不出血了", None),
    # a power tool into a limb; a wound showing inside
    ("爸爸用角磨机切到了手腕", "trauma"),
    ("用电锯锯了一下午木头，胳膊酸", None),
    ("刀口很深，能看见里面黄色的脂肪", "trauma"),
    ("伤口在结痂，外面有点发白", None),
    # an animal named after 被 acted on the person
    ("被邻居家的狗咬了，胳膊上一个大口子，能看到骨头", "trauma"),
    ("我家狗被车撞了，腿断了", None),
    # spots that do not fade under a glass
    ("宝宝发烧，用杯子压那些红点，红点没有消失", "meningitis"),
    ("用杯子压了一下红点，红点就消失了", None),
    # part of the field gone; a sudden shadow; something dark in the way; ink
    ("左眼上半的视野不见了", "vision_loss"),
    ("这个房间视野很好", None),
    ("右眼突然一片黑影，看不清东西", "vision_loss"),
    ("墙上突然多了一片黑影，是窗外的树", None),
    ("有个黑色的东西挡着视线，擦眼睛也没用", "vision_loss"),
    ("前面的人挡住视线了，看不到舞台", None),
    ("右眼好像被墨水洇开了一样", "vision_loss"),
    ("衣服像被墨汁染了一样黑", None),
    # a child took an adult's tablets; magnetic beads
    ("儿子把他爷爷的安眠药吞了", "overdose"),
    ("女儿把我的药放回药箱了", None),
    ("小孩咽下去两颗巴克球", "overdose"),
    ("孩子玩巴克球，没放嘴里", None),
    # redcurrant-jelly stools
    ("两岁孩子大便像草莓酱一样，一阵阵哭", "abdominal_emergency"),
    ("孩子早上吃了果酱面包，大便正常", None),
    # a nappy dry from a time until now
    ("闺女的纸尿裤从中午到现在都是干的", "child_dehydration"),
    ("纸尿裤从早上到现在换了五次，都是湿的", None),
    # burns from a heater or a hot-water bottle
    ("孩子被热水袋烫了，整片起了水泡", "burns"),
    ("热水袋有点漏水，床单湿了一片", None),
    # a baby by 月龄 with a fever
    ("一月龄的宝宝发烧38.2", "infant_fever"),
    ("二月龄宝宝体温37.3，正常吗", None),
    # a child who drinks nothing or brings up every drink
    ("女儿一上午一口水都没喝过，嘴巴干干的", "child_dehydration"),
    ("女儿一口水都没喝就去上学了，中午会喝的", None),
    # numb where one sits, as if anaesthetised, with back pain
    ("腰疼了几天，今天下身像打了麻药一样", "cauda_equina"),
    ("拔完牙半边脸像打了麻药一样", None),
    # atrial fibrillation and severe belly pain
    ("外婆有房颤，突然肚子剧痛", "abdominal_emergency"),
    ("外婆有房颤，肚子有点胀", None),
    # a general question, then the patient's own symptom now
    ("心梗有什么症状 我现在胸口很闷", "chest_pain"),
    ("心梗有什么症状", None),
    # "went away, but it is back"
    ("爸爸突然一只眼看不见，过了一会又好了，可是后来又看不见了", "vision_loss"),
    ("眼睛突然看不清，眨眨眼就好了", None),
    # cues: 但是没 denies; 不想吐; a relative's event at an age; hearsay about the neighbours;
    # "会不会" asks whether it might happen; brought round; an operation done
    ("孩子磕到头了，只是没晕，也不想吐", None),
    ("孩子磕到头了，一直吐", "head_injury"),
    ("我外公是六十岁那年中风的，我要注意什么", None),
    ("听说隔壁那家人一氧化碳中毒，后来都救过来了", None),
    ("我们家烧炭取暖，一家人头晕想吐", "overdose"),
    ("孩子发烧会不会突然抽搐啊", None),
    ("孩子发烧突然抽搐了", "seizure"),
    ("我妈阑尾炎做了手术，多久能出院", None),
    # figurative: a hard question, a crowd; kinds of a disease; paperwork
    ("这个报表难得我快吐血了", None),
    ("公交车上挤得我透不过气", None),
    ("脑梗的分型有哪些", None),
    ("帮我开一份骨折的诊断书", None),
    # frames: an exam in emergency medicine, an exam question, a script, a vlog
    ("下周考临床，脑出血的表现怎么记", None),
    ("选择题：孕妇突然大出血首选什么处理", None),
    ("写剧本，主人公心梗倒下该怎么写", None),
    ("公众号里说很多人中风了自己不知道", None),
    ("写剧本的时候突然胸口剧痛", "chest_pain"),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_08_ZH_RULES)
def test_rules_added_after_round_08_zh(text: str, flag: str | None) -> None:
    assert_reads(text, flag)


ROUND_09_ZH_RULES = [
    # confusion: a named relative not recognised; muddled, day and night mixed; lost near home
    ("奶奶今天一下子认不出爷爷了，一直问他是谁", "confusion"),
    ("奶奶说认不出外公年轻时的照片了", None),
    ("我爸这两天变得特别糊涂，吃过饭又说没吃", "confusion"),
    ("人老了要学会变得糊涂一点", None),
    ("外公下午突然就不认路了，在楼下转圈", "confusion"),
    ("刚搬到这个城市，还不认路", None),
    # breathing like a bellows or a whistle
    ("我妈呼吸声像拉风箱似的，说不了整句话", "breathing"),
    ("爷爷打呼噜像拉风箱一样响", None),
    # one side of the mouth dropping
    ("我爸左边嘴角突然往下耷拉", "stroke"),
    ("她一边笑一边嘴角往上翘", None),
    # soaking pads by the hour
    ("来月经每个小时都要换一片卫生巾，全湿透", "bleeding"),
    ("一天换三片卫生巾正常吗", None),
    # a socket still bleeding after an extraction; gums that bleed when brushing stay benign
    ("拔了牙一直出血，棉球换了好几个", "bleeding"),
    ("刷牙的时候牙龈老出血", None),
    # a gaping wound with something white inside
    ("腿被铁皮撕开了，能看见白色的骨头", "trauma"),
    ("切肉的时候看到里面有白色的筋", None),
    # a thunderclap headache
    ("搬东西时头突然像雷劈一样的疼", "thunderclap_headache"),
    ("跳完霹雳舞有点头疼", None),
    # paracetamol by the gram; a larger wrong dose given to a child
    ("这两天扑热息痛加起来吃了6克", "overdose"),
    ("对乙酰氨基酚一次吃0.5克对吗", None),
    ("退烧药看错了刻度，喂成了12毫升", "overdose"),
    ("本来该喂5毫升，只喂了3毫升就吐了", None),
    # half the field of vision gone
    ("右眼视野突然消失了一块", "vision_loss"),
    ("视野开阔了很多，近视手术很成功", None),
    # belly pain, cannot stand straight; laughing is not
    ("胃疼得直不起身，一直出冷汗", "abdominal_emergency"),
    ("昨天笑得肚子疼得直不起身", None),
    # cutting again with a blade; a crisis hotline asked for
    ("忍不住又用刀片划了几下", "self_harm"),
    ("切菜时不小心用刀划了手，流了点血", None),
    ("能给我一个心理援助热线吗", "self_harm"),
    ("心理咨询预约怎么收费", None),
    # combos: a sting and hives all over and unsteady; a fall and a shortened leg
    ("被蜈蚣咬了，全身都起了疙瘩，站都站不稳", "anaphylaxis"),
    ("被蚊子咬了，身上起包，痒得睡不着", None),
    ("奶奶滑倒以后，右脚尖朝外撇着，起不来", "trauma"),
    ("天生一条腿比另一条短一点，买什么鞋垫好", None),
    # fever with cold purple hands and feet and very weak or racing heart
    ("妈妈发烧39度，手脚冰凉，说话有气无力", "sepsis"),
    ("孩子发烧手脚冰凉，精神还挺好", None),
    ("孩子发烧打寒战，手脚冰凉，心跳有点快", None),
    ("冬天在外面冻得手发紫", None),
    # party drugs and big pupils; unknown number of pills swallowed; a gas leak with symptoms
    ("朋友在夜店嗑了摇头丸，瞳孔放大，一直发抖", "overdose"),
    ("小时候爱吃糖豆，现在还想吃", None),
    ("女儿打开了药瓶，没看到她吞了几颗", "overdose"),
    ("给孩子喂药，不知道喂进去多少，吐了一半", None),
    ("厨房天然气漏气了，我妈头痛想吐", "overdose"),
    ("闻到一点燃气泄漏的味道，已经开窗了", None),
    # pregnancy with pink discharge or something bearing down
    ("怀孕26周，内裤上有粉红色的分泌物", "pregnancy_bleeding"),
    ("备孕中，排卵期有粉红色的分泌物", None),
    # rainbow halos and a painful eye
    ("晚上看灯有光晕，眼球胀", "vision_loss"),
    ("戴隐形眼镜看灯有光圈，眼睛有点干", None),
    # back trouble and no feeling in the buttocks
    ("腰椎间盘突出犯了，屁股坐在椅子上都感觉不到", "cauda_equina"),
    ("腰酸，坐久了有点累", None),
    # a relative's arm cut in lines, done by herself
    ("儿子大腿上好几道伤口，他承认是自己拿刀划的", "self_harm"),
    ("手臂上好几道划痕，是被猫抓的", None),
    # home-remedy advice does not take back a symptom; a mother and baby both well does
    ("一个月的宝宝发烧38.5度，婆婆说睡一觉就好了", "infant_fever"),
    ("表姐生孩子时大出血，好在最后母女平安", None),
]


@pytest.mark.parametrize(("text", "flag"), ROUND_09_ZH_RULES)
def test_rules_added_after_round_09_zh(text: str, flag: str | None) -> None:
    assert_reads(text, flag)
