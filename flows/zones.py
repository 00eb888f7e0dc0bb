"""Time zones by the names people use: a city or a country, in English, Chinese or Russian.

One lookup (:func:`find`) serves every place a person types a zone — the sign-up step, the
profile and ``/meds`` — through :func:`flows.timing.parse_zone`; :func:`label` names a zone on
a button in the person's language.

A city's name in each language is the catalog message ``zone.city.<key>``
(``locales/<lang>/LC_MESSAGES/zones.po``), so what a button says is also what a person can
type; other spellings, other cities of the same zone and the countries are listed here. A
country with several zones is not guessed: the person is asked which city is nearest.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from locales import LOCALES, catalog


@dataclass(frozen=True)
class Place:
    """One IANA zone by a city everyone in it knows (its name: ``zone.city.<key>``)."""

    key: str
    zone: str
    also: tuple[str, ...] = ()  # other spellings, other cities in the zone, abbreviations


@dataclass(frozen=True)
class Country:
    """A country's names and its zones (places, west to east)."""

    names: tuple[str, ...]
    places: tuple[str, ...]


def _p(key: str, zone: str, *also: str) -> Place:
    return Place(key, zone, also)


PLACES: tuple[Place, ...] = (
    # Russia, west to east.
    _p("kaliningrad", "Europe/Kaliningrad"),
    _p("moscow", "Europe/Moscow", "msk", "мск", "московское время", "по москве", "莫斯科时间",
       "saint petersburg", "st petersburg", "санкт-петербург", "петербург", "спб", "питер",
       "圣彼得堡", "kazan", "казань", "喀山", "nizhny novgorod", "нижний новгород",
       "下诺夫哥罗德", "rostov on don", "ростов-на-дону", "顿河畔罗斯托夫", "sochi", "сочи",
       "索契", "krasnodar", "краснодар", "克拉斯诺达尔", "voronezh", "воронеж", "沃罗涅日"),
    _p("samara", "Europe/Samara", "izhevsk", "ижевск", "伊热夫斯克"),
    _p("yekaterinburg", "Asia/Yekaterinburg", "ekaterinburg", "екб", "chelyabinsk",
       "челябинск", "车里雅宾斯克", "tyumen", "тюмень", "秋明", "perm", "пермь", "彼尔姆",
       "ufa", "уфа", "乌法"),
    _p("omsk", "Asia/Omsk"),
    _p("novosibirsk", "Asia/Novosibirsk"),
    _p("krasnoyarsk", "Asia/Krasnoyarsk"),
    _p("irkutsk", "Asia/Irkutsk", "ulan ude", "улан-удэ", "乌兰乌德"),
    _p("yakutsk", "Asia/Yakutsk", "chita", "чита", "赤塔", "blagoveshchensk", "благовещенск",
       "布拉戈维申斯克"),
    _p("vladivostok", "Asia/Vladivostok", "海参崴", "khabarovsk", "хабаровск", "哈巴罗夫斯克",
       "伯力"),
    _p("magadan", "Asia/Magadan"),
    _p("kamchatka", "Asia/Kamchatka", "petropavlovsk kamchatsky", "петропавловск-камчатский",
       "堪察加彼得罗巴甫洛夫斯克"),
    # East and South-East Asia.
    _p("beijing", "Asia/Shanghai", "北京时间", "中国时间", "shanghai", "上海", "шанхай",
       "guangzhou", "广州", "гуанчжоу", "shenzhen", "深圳", "шэньчжэнь", "chengdu", "成都",
       "чэнду", "wuhan", "武汉", "ухань", "xi'an", "西安", "сиань", "nanjing", "南京",
       "нанкин", "tianjin", "天津", "тяньцзинь", "chongqing", "重庆", "чунцин", "hangzhou",
       "杭州", "ханчжоу", "harbin", "哈尔滨", "харбин", "dalian", "大连", "далянь",
       "qingdao", "青岛", "циндао", "shenyang", "沈阳", "шэньян"),
    _p("hong_kong", "Asia/Hong_Kong", "hongkong"),
    _p("macau", "Asia/Macau", "macao"),
    _p("taipei", "Asia/Taipei", "臺北", "kaohsiung", "高雄", "гаосюн"),
    _p("tokyo", "Asia/Tokyo", "osaka", "大阪", "осака", "kyoto", "京都", "киото"),
    _p("seoul", "Asia/Seoul", "busan", "釜山", "пусан"),
    _p("singapore", "Asia/Singapore"),
    _p("kuala_lumpur", "Asia/Kuala_Lumpur"),
    _p("bangkok", "Asia/Bangkok", "phuket", "普吉岛", "普吉", "пхукет", "pattaya", "芭提雅",
       "паттайя"),
    _p("ho_chi_minh", "Asia/Ho_Chi_Minh", "ho chi minh", "saigon", "西贡", "сайгон", "hanoi",
       "河内", "ханой", "nha trang", "芽庄", "нячанг", "da nang", "岘港", "дананг"),
    _p("manila", "Asia/Manila"),
    _p("jakarta", "Asia/Jakarta"),
    _p("bali", "Asia/Makassar", "denpasar", "登巴萨", "денпасар", "makassar", "望加锡",
       "макасар"),
    _p("jayapura", "Asia/Jayapura"),
    # South and West Asia, Africa.
    _p("delhi", "Asia/Kolkata", "new delhi", "德里", "нью-дели", "mumbai", "bombay", "孟买",
       "мумбаи", "bangalore", "bengaluru", "班加罗尔", "бангалор", "goa", "果阿", "гоа",
       "加尔各答", "калькутта"),
    _p("dubai", "Asia/Dubai", "abu dhabi", "阿布扎比", "абу-даби"),
    _p("istanbul", "Europe/Istanbul", "ankara", "安卡拉", "анкара", "antalya", "安塔利亚",
       "анталья"),
    _p("jerusalem", "Asia/Jerusalem", "tel aviv", "特拉维夫", "тель-авив"),
    _p("cairo", "Africa/Cairo", "hurghada", "赫尔格达", "хургада", "sharm el sheikh",
       "沙姆沙伊赫", "шарм-эль-шейх"),
    # Central Asia and the Caucasus.
    _p("almaty", "Asia/Almaty", "alma ata", "алма-ата", "astana", "阿斯塔纳", "астана"),
    _p("tashkent", "Asia/Tashkent", "samarkand", "撒马尔罕", "самарканд"),
    _p("bishkek", "Asia/Bishkek"),
    _p("dushanbe", "Asia/Dushanbe"),
    _p("tbilisi", "Asia/Tbilisi", "batumi", "巴统", "батуми"),
    _p("yerevan", "Asia/Yerevan"),
    _p("baku", "Asia/Baku"),
    # Europe.
    _p("london", "Europe/London", "manchester", "曼彻斯特", "манчестер", "edinburgh", "爱丁堡",
       "эдинбург", "glasgow", "格拉斯哥", "глазго"),
    _p("dublin", "Europe/Dublin"),
    _p("lisbon", "Europe/Lisbon", "porto", "波尔图", "порту", "madeira", "马德拉", "мадейра"),
    _p("azores", "Atlantic/Azores"),
    _p("madrid", "Europe/Madrid", "barcelona", "巴塞罗那", "барселона"),
    _p("canary", "Atlantic/Canary", "canaries", "tenerife", "特内里费", "тенерифе",
       "gran canaria", "大加那利岛", "гран-канария", "las palmas"),
    _p("paris", "Europe/Paris"),
    _p("berlin", "Europe/Berlin", "munich", "münchen", "慕尼黑", "мюнхен", "frankfurt",
       "法兰克福", "франкфурт", "hamburg", "汉堡", "гамбург"),
    _p("rome", "Europe/Rome", "roma", "milan", "milano", "米兰", "милан"),
    _p("amsterdam", "Europe/Amsterdam", "rotterdam", "鹿特丹", "роттердам"),
    _p("brussels", "Europe/Brussels"),
    _p("zurich", "Europe/Zurich", "zürich", "geneva", "genève", "日内瓦", "женева", "bern",
       "伯尔尼", "берн"),
    _p("vienna", "Europe/Vienna", "wien"),
    _p("warsaw", "Europe/Warsaw", "krakow", "kraków", "克拉科夫", "краков"),
    _p("prague", "Europe/Prague", "praha"),
    _p("budapest", "Europe/Budapest"),
    _p("stockholm", "Europe/Stockholm"),
    _p("oslo", "Europe/Oslo"),
    _p("copenhagen", "Europe/Copenhagen"),
    _p("helsinki", "Europe/Helsinki"),
    _p("athens", "Europe/Athens"),
    _p("belgrade", "Europe/Belgrade"),
    _p("riga", "Europe/Riga"),
    _p("vilnius", "Europe/Vilnius"),
    _p("tallinn", "Europe/Tallinn"),
    _p("minsk", "Europe/Minsk"),
    _p("kyiv", "Europe/Kyiv", "kiev", "київ", "odesa", "odessa", "одесса", "敖德萨",
       "kharkiv", "kharkov", "харьков", "哈尔科夫", "lviv", "львов", "利沃夫"),
    _p("chisinau", "Europe/Chisinau", "chișinău", "kishinev"),
    # The Americas. "Washington" alone is left out: it is also a state on the Pacific.
    _p("new_york", "America/New_York", "nyc", "washington dc", "华盛顿", "вашингтон",
       "boston", "波士顿", "бостон", "miami", "迈阿密", "майами", "atlanta", "亚特兰大",
       "атланта", "philadelphia", "费城", "филадельфия", "eastern time", "est", "edt"),
    _p("chicago", "America/Chicago", "houston", "休斯敦", "хьюстон", "dallas", "达拉斯",
       "даллас", "central time"),
    _p("denver", "America/Denver", "salt lake city", "盐湖城", "солт-лейк-сити",
       "mountain time"),
    _p("phoenix", "America/Phoenix", "凤凰城", "arizona", "亚利桑那", "аризона"),
    _p("los_angeles", "America/Los_Angeles", "san francisco", "旧金山", "сан-франциско",
       "seattle", "西雅图", "сиэтл", "las vegas", "拉斯维加斯", "лас-вегас", "pacific time",
       "pst", "pdt"),
    _p("anchorage", "America/Anchorage", "alaska", "阿拉斯加", "аляска"),
    _p("honolulu", "Pacific/Honolulu", "火奴鲁鲁", "hawaii", "夏威夷", "гавайи"),
    _p("st_johns", "America/St_Johns", "newfoundland", "纽芬兰", "ньюфаундленд"),
    _p("halifax", "America/Halifax", "nova scotia", "新斯科舍", "новая шотландия"),
    _p("toronto", "America/Toronto", "montreal", "montréal", "蒙特利尔", "монреаль",
       "ottawa", "渥太华", "оттава"),
    _p("winnipeg", "America/Winnipeg", "manitoba"),
    _p("regina", "America/Regina", "saskatchewan", "saskatoon"),
    _p("edmonton", "America/Edmonton", "calgary", "卡尔加里", "калгари", "alberta"),
    _p("vancouver", "America/Vancouver", "british columbia"),
    _p("tijuana", "America/Tijuana"),
    _p("mazatlan", "America/Mazatlan", "mazatlán"),
    _p("mexico_city", "America/Mexico_City", "ciudad de mexico", "ciudad de méxico", "cdmx",
       "guadalajara", "瓜达拉哈拉", "гвадалахара", "monterrey", "蒙特雷", "монтеррей"),
    _p("cancun", "America/Cancun", "cancún"),
    _p("rio_branco", "America/Rio_Branco"),
    _p("manaus", "America/Manaus"),
    _p("sao_paulo", "America/Sao_Paulo", "sao paulo", "rio de janeiro", "里约热内卢", "里约",
       "рио-де-жанейро", "brasilia", "brasília", "巴西利亚", "бразилиа"),
    _p("buenos_aires", "America/Argentina/Buenos_Aires"),
    # Australia and New Zealand.
    _p("perth", "Australia/Perth"),
    _p("darwin", "Australia/Darwin"),
    _p("adelaide", "Australia/Adelaide"),
    _p("brisbane", "Australia/Brisbane", "queensland", "gold coast", "黄金海岸"),
    _p("sydney", "Australia/Sydney", "melbourne", "墨尔本", "мельбурн", "canberra", "堪培拉",
       "канберра"),
    _p("auckland", "Pacific/Auckland", "wellington", "惠灵顿", "веллингтон", "christchurch",
       "基督城", "крайстчерч"),
)  # fmt: skip


def _c(names: str, *places: str) -> Country:
    return Country(tuple(n.strip() for n in names.split("|")), places)


# Names in English, Chinese and Russian (with the usual short forms), then the places.
# "Georgia" in English is left out: it is also a state of the USA.
COUNTRIES: tuple[Country, ...] = (
    _c("Russia|Russian Federation|俄罗斯|俄国|Россия|РФ|Российская Федерация",
       "kaliningrad", "moscow", "samara", "yekaterinburg", "omsk", "novosibirsk",
       "krasnoyarsk", "irkutsk", "yakutsk", "vladivostok", "magadan", "kamchatka"),
    _c("China|PRC|中国|中华人民共和国|Китай|КНР", "beijing"),
    _c("Taiwan|台湾|臺灣|Тайвань", "taipei"),
    _c("Japan|日本|Япония", "tokyo"),
    _c("South Korea|Korea|韩国|南韩|Южная Корея|Корея", "seoul"),
    _c("Malaysia|马来西亚|Малайзия", "kuala_lumpur"),
    _c("Thailand|泰国|Таиланд|Тайланд", "bangkok"),
    _c("Vietnam|Viet Nam|越南|Вьетнам", "ho_chi_minh"),
    _c("Philippines|菲律宾|Филиппины", "manila"),
    _c("Indonesia|印度尼西亚|印尼|Индонезия", "jakarta", "bali", "jayapura"),
    _c("India|印度|Индия", "delhi"),
    _c("UAE|United Arab Emirates|Emirates|阿联酋|阿拉伯联合酋长国|ОАЭ|Эмираты|"
       "Объединённые Арабские Эмираты", "dubai"),
    _c("Turkey|Türkiye|Turkiye|土耳其|Турция", "istanbul"),
    _c("Israel|以色列|Израиль", "jerusalem"),
    _c("Egypt|埃及|Египет", "cairo"),
    _c("Kazakhstan|哈萨克斯坦|Казахстан", "almaty"),
    _c("Uzbekistan|乌兹别克斯坦|Узбекистан", "tashkent"),
    _c("Kyrgyzstan|Kirghizia|吉尔吉斯斯坦|Киргизия|Кыргызстан", "bishkek"),
    _c("Tajikistan|塔吉克斯坦|Таджикистан", "dushanbe"),
    _c("Sakartvelo|格鲁吉亚|Грузия", "tbilisi"),
    _c("Armenia|亚美尼亚|Армения", "yerevan"),
    _c("Azerbaijan|阿塞拜疆|Азербайджан", "baku"),
    _c("UK|United Kingdom|Great Britain|Britain|England|Scotland|Wales|Northern Ireland|英国|"
       "英格兰|苏格兰|Великобритания|Британия|Англия|Шотландия", "london"),
    _c("Ireland|爱尔兰|Ирландия", "dublin"),
    _c("Portugal|葡萄牙|Португалия", "lisbon", "azores"),
    _c("Spain|España|西班牙|Испания", "canary", "madrid"),
    _c("France|法国|Франция", "paris"),
    _c("Germany|Deutschland|德国|Германия", "berlin"),
    _c("Italy|Italia|意大利|Италия", "rome"),
    _c("Netherlands|The Netherlands|Holland|荷兰|Нидерланды|Голландия", "amsterdam"),
    _c("Belgium|比利时|Бельгия", "brussels"),
    _c("Switzerland|瑞士|Швейцария", "zurich"),
    _c("Austria|奥地利|Австрия", "vienna"),
    _c("Poland|波兰|Польша", "warsaw"),
    _c("Czechia|Czech Republic|捷克|Чехия", "prague"),
    _c("Hungary|匈牙利|Венгрия", "budapest"),
    _c("Sweden|瑞典|Швеция", "stockholm"),
    _c("Norway|挪威|Норвегия", "oslo"),
    _c("Denmark|丹麦|Дания", "copenhagen"),
    _c("Finland|芬兰|Финляндия", "helsinki"),
    _c("Greece|希腊|Греция", "athens"),
    _c("Serbia|塞尔维亚|Сербия", "belgrade"),
    _c("Latvia|拉脱维亚|Латвия", "riga"),
    _c("Lithuania|立陶宛|Литва", "vilnius"),
    _c("Estonia|爱沙尼亚|Эстония", "tallinn"),
    _c("Belarus|白俄罗斯|Беларусь|Белоруссия", "minsk"),
    _c("Ukraine|乌克兰|Украина", "kyiv"),
    _c("Moldova|摩尔多瓦|Молдова|Молдавия", "chisinau"),
    _c("USA|US|United States|United States of America|America|美国|美利坚合众国|США|"
       "Соединённые Штаты|Соединённые Штаты Америки|Америка|Штаты",
       "honolulu", "anchorage", "los_angeles", "phoenix", "denver", "chicago", "new_york"),
    _c("Canada|加拿大|Канада",
       "vancouver", "edmonton", "regina", "winnipeg", "toronto", "halifax", "st_johns"),
    _c("Mexico|México|墨西哥|Мексика", "tijuana", "mazatlan", "mexico_city", "cancun"),
    _c("Brazil|Brasil|巴西|Бразилия", "rio_branco", "manaus", "sao_paulo"),
    _c("Argentina|阿根廷|Аргентина", "buenos_aires"),
    _c("Australia|澳大利亚|澳洲|Австралия", "perth", "darwin", "adelaide", "brisbane", "sydney"),
    _c("New Zealand|新西兰|Новая Зеландия", "auckland"),
)  # fmt: skip

_DROP = str.maketrans("", "", ".'’`\"«»“”„()")
_SPACE = re.compile(r"[\s\-‐‑–—_,]+")
# Words around a name that do not change it: "г. Москва", "город Москва", "北京市",
# "city of London", "Moscow time".
_PREFIXES = ("город ", "г ", "city of ")
_SUFFIXES = ("市", "时间", " time", " city")


def normalize(text: str) -> str:
    """The form names are compared in: NFKC, case-folded, ё as е, without dots and quotes,
    hyphens, underscores and commas as single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    return _SPACE.sub(" ", text.translate(_DROP)).strip()


def city_msgid(place: Place) -> str:
    """The catalog message with the city's name."""
    return f"zone.city.{place.key}"


@cache
def _by_key() -> dict[str, Place]:
    return {p.key: p for p in PLACES}


@cache
def _by_zone() -> dict[str, Place]:
    out: dict[str, Place] = {}
    for place in PLACES:
        out.setdefault(place.zone, place)
    return out


@cache
def _index() -> dict[str, tuple[str, ...]]:
    """Every name (normalised) -> the zones it means; a word that would mean two different
    things is an error in the table, caught by the tests."""
    out: dict[str, tuple[str, ...]] = {}

    def add(word: str, zones: tuple[str, ...]) -> None:
        key = normalize(word)
        if not key:
            raise ValueError(f"an empty zone name ({word!r})")
        if out.get(key, zones) != zones:
            raise ValueError(f"{word!r} names both {out[key]} and {zones}")
        out[key] = zones

    for place in PLACES:
        for locale in LOCALES:
            name = catalog(locale).get(city_msgid(place))
            if name:
                add(name, (place.zone,))
        for word in place.also:
            add(word, (place.zone,))
    for country in COUNTRIES:
        zones = tuple(dict.fromkeys(_by_key()[key].zone for key in country.places))
        for name in country.names:
            add(name, zones)
    return out


def _candidates(text: str) -> list[str]:
    """The text as a whole, then each comma-separated part ("Moscow, Russia"), each also
    without the words around a name."""
    parts = [text, *text.split(",")] if "," in text else [text]
    out: list[str] = []
    for part in parts:
        norm = normalize(part)
        out.append(norm)
        out += [norm[len(p) :] for p in _PREFIXES if norm.startswith(p)]
        out += [norm[: -len(s)] for s in _SUFFIXES if norm.endswith(s)]
    return [c.strip() for c in out if c.strip()]


def find(text: str) -> tuple[str, ...]:
    """The IANA zones a typed city or country names: none (unknown), one, or several (a
    country that spans several zones — ask which city is nearest)."""
    index = _index()
    for candidate in _candidates(text):
        zones = index.get(candidate)
        if zones:
            return zones
    return ()


_FIXED = re.compile(r"^Etc/GMT(?P<sign>[+-])(?P<hours>\d{1,2})$")


def label(locale: str, zone: str) -> str:
    """A zone's name on a button in ``locale``: its city ("Москва", "北京"), "UTC+3" for a
    fixed offset, else the last part of its IANA name ("Tallinn")."""
    place = _by_zone().get(zone)
    if place is not None:
        name = catalog(locale).get(city_msgid(place)) if locale in LOCALES else None
        if name:
            return name
    fixed = _FIXED.match(zone)
    if fixed and int(fixed["hours"]):
        # POSIX signs are inverted: Etc/GMT-3 is three hours ahead of UTC.
        return f"UTC{'-' if fixed['sign'] == '+' else '+'}{int(fixed['hours'])}"
    if fixed or zone in ("UTC", "Etc/UTC", "Etc/GMT", "GMT"):
        return "UTC"
    return zone.rsplit("/", 1)[-1].replace("_", " ")
