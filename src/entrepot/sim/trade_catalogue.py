"""The trade demo's cast: small businesses at the eHubs and the export hub with what they sell
(real-looking items, HS 2022 subheadings, prices in the hub's currency), and buyers in every
hub country paying from a wallet or bank account at one of the hub's partners.

Prices are plausible retail figures for late 2026; weights and parcel sizes are the packed
item's. Chapter 71 (silver jewellery) and 97 (hand-painted art) are sensitive HS chapters, so
those parcels take customs' red lane."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from entrepot.kernel.money import get_currency


@dataclass(frozen=True, slots=True)
class ItemSpec:
    sku: str
    title: str
    hs_code: str
    weight_g: int
    dimensions_mm: tuple[int, int, int]
    price: str  # major units of the merchant's currency
    stock: int  # units in the hub's fulfilment centre at the start

    def price_minor(self, currency: str) -> int:
        exponent = get_currency(currency).exponent
        return int(Decimal(self.price).scaleb(exponent))


@dataclass(frozen=True, slots=True)
class MerchantSpec:
    id: str
    hub: str
    legal_name: str
    registration: str  # also its BUSINESS alias at the settlement partner
    partner: str  # the bank or wallet it is paid at
    items: tuple[ItemSpec, ...]


@dataclass(frozen=True, slots=True)
class BuyerSpec:
    id: str
    hub: str
    name: str
    msisdn: str
    partner: str


def _i(
    sku: str,
    title: str,
    hs: str,
    weight_g: int,
    dims: tuple[int, int, int],
    price: str,
    stock: int = 120,
) -> ItemSpec:
    return ItemSpec(sku, title, hs, weight_g, dims, price, stock)


MERCHANTS = (
    # Kigali eHub (RWF)
    MerchantSpec(
        "m-inzozi",
        "kigali",
        "Inzozi Crafts Ltd",
        "RW-100200",
        "mtn-rw",
        (
            _i("rw-agaseke", "Agaseke woven sisal basket", "460219", 800, (300, 300, 250), "45000"),
            _i(
                "rw-imigongo",
                "Imigongo hand-painted panel",
                "970191",
                2500,
                (600, 600, 40),
                "120000",
                40,
            ),
        ),
    ),
    MerchantSpec(
        "m-huye",
        "kigali",
        "Huye Mountain Coffee Ltd",
        "RW-100311",
        "mtn-rw",
        (
            _i(
                "rw-coffee-roast",
                "Bourbon coffee, roasted, 250 g",
                "090121",
                300,
                (180, 90, 60),
                "9500",
            ),
            _i(
                "rw-coffee-green",
                "Green coffee beans, 1 kg",
                "090111",
                1050,
                (250, 150, 80),
                "14000",
            ),
        ),
    ),
    MerchantSpec(
        "m-kitenge",
        "kigali",
        "Kitenge House Kigali Ltd",
        "RW-100455",
        "mtn-rw",
        (
            _i(
                "rw-kitenge-tee",
                "Kitenge print cotton T-shirt",
                "610910",
                220,
                (300, 250, 30),
                "18000",
            ),
            _i("rw-black-tea", "Rwandan black tea, 500 g", "090230", 520, (200, 120, 80), "6500"),
        ),
    ),
    # Addis Ababa eHub (ETB)
    MerchantSpec(
        "m-yirga",
        "addis-ababa",
        "Yirgacheffe Coffee Exporters PLC",
        "ET-0451123",
        "telebirr-et",
        (
            _i(
                "et-yirga-green",
                "Yirgacheffe green coffee, 1 kg",
                "090111",
                1050,
                (250, 150, 80),
                "1450.00",
            ),
            _i(
                "et-yirga-roast",
                "Yirgacheffe coffee, roasted, 500 g",
                "090121",
                550,
                (220, 110, 70),
                "980.00",
            ),
        ),
    ),
    MerchantSpec(
        "m-mesob",
        "addis-ababa",
        "Mesob Spice House PLC",
        "ET-0451377",
        "telebirr-et",
        (
            _i("et-berbere", "Berbere spice blend, 400 g", "091091", 430, (160, 100, 60), "420.00"),
            _i("et-turmeric", "Ground turmeric, 250 g", "091030", 270, (140, 90, 50), "260.00"),
        ),
    ),
    MerchantSpec(
        "m-lalibela",
        "addis-ababa",
        "Lalibela Silver and Weaving PLC",
        "ET-0452001",
        "telebirr-et",
        (
            _i(
                "et-silver-cross",
                "Lalibela silver cross pendant",
                "711311",
                40,
                (90, 60, 30),
                "3800.00",
                40,
            ),
            _i(
                "et-netela",
                "Handwoven cotton netela shawl",
                "621490",
                250,
                (300, 200, 30),
                "1200.00",
            ),
        ),
    ),
    # Kuala Lumpur eHub (MYR)
    MerchantSpec(
        "m-batik",
        "kuala-lumpur",
        "Batik Warisan Sdn Bhd",
        "201901012345",
        "maybank-my",
        (
            _i(
                "my-batik-silk",
                "Hand-drawn batik silk scarf",
                "621410",
                120,
                (250, 200, 20),
                "189.00",
            ),
            _i("my-batik-tee", "Batik cotton T-shirt", "610910", 220, (300, 250, 30), "59.00"),
        ),
    ),
    MerchantSpec(
        "m-kopi",
        "kuala-lumpur",
        "Kopi Ipoh Trading Sdn Bhd",
        "201801054321",
        "maybank-my",
        (
            _i(
                "my-white-coffee",
                "Ipoh white coffee 3-in-1, 15 sachets",
                "210112",
                600,
                (250, 180, 80),
                "18.90",
            ),
            _i(
                "my-highland-tea",
                "Cameron Highlands black tea, 250 g",
                "090230",
                280,
                (160, 90, 60),
                "22.50",
            ),
        ),
    ),
    MerchantSpec(
        "m-pewter",
        "kuala-lumpur",
        "Selangor Pewter Works Sdn Bhd",
        "199701023456",
        "maybank-my",
        (
            _i(
                "my-pewter-mug",
                "Hammered pewter tankard",
                "800700",
                450,
                (150, 120, 120),
                "245.00",
                60,
            ),
        ),
    ),
    # Liège eHub (EUR)
    MerchantSpec(
        "m-gaufres",
        "liege",
        "Gaufres de Liege SRL",
        "BE0456789123",
        "kbc-be",
        (
            _i(
                "be-waffles",
                "Liege sugar waffles, box of 12",
                "190532",
                720,
                (260, 200, 90),
                "14.90",
            ),
            _i("be-speculoos", "Speculoos biscuits, 400 g", "190531", 420, (220, 110, 60), "6.50"),
        ),
    ),
    MerchantSpec(
        "m-pralines",
        "liege",
        "Pralines de la Meuse SRL",
        "BE0467123456",
        "kbc-be",
        (
            _i(
                "be-pralines",
                "Filled chocolate pralines, 250 g",
                "180631",
                330,
                (200, 130, 50),
                "24.00",
            ),
        ),
    ),
    MerchantSpec(
        "m-lin",
        "liege",
        "Lin de Flandre BV",
        "BE0478234567",
        "kbc-be",
        (
            _i(
                "be-linen-towel",
                "Flax linen tea towel, set of 2",
                "630299",
                240,
                (250, 180, 30),
                "16.00",
            ),
        ),
    ),
    # Yiwu export hub (CNY)
    MerchantSpec(
        "m-yiwu-toys",
        "yiwu",
        "Yiwu Happy Toys Co Ltd",
        "91330782MA2H8K5X1Q",
        "icbc-cn",
        (
            _i(
                "cn-wooden-blocks",
                "Wooden building blocks, 100 pieces",
                "950300",
                1400,
                (300, 220, 120),
                "89.00",
            ),
            _i(
                "cn-ornaments",
                "Glass Christmas ornaments, set of 12",
                "950510",
                500,
                (300, 220, 80),
                "39.00",
            ),
        ),
    ),
    MerchantSpec(
        "m-longjing",
        "yiwu",
        "West Lake Longjing Tea Co Ltd",
        "91330106MA27Y3B2X4",
        "alipay-cn",
        (
            _i("cn-longjing", "Longjing green tea, 250 g", "090210", 300, (180, 100, 80), "168.00"),
            _i("cn-star-anise", "Whole star anise, 200 g", "090961", 220, (160, 100, 60), "28.00"),
        ),
    ),
    MerchantSpec(
        "m-jingdezhen",
        "yiwu",
        "Jingdezhen Porcelain Studio Co Ltd",
        "91360200MA35R7QW2K",
        "icbc-cn",
        (
            _i(
                "cn-tea-set",
                "Blue-and-white porcelain tea set",
                "691110",
                1800,
                (300, 250, 150),
                "320.00",
                60,
            ),
        ),
    ),
)

_BUYERS = {
    "hangzhou": (
        "alipay-cn",
        "+861380055",
        ("Li Wei", "Wang Fang", "Zhang Min", "Chen Jing", "Liu Yang"),
    ),
    "kuala-lumpur": (
        "maybank-my",
        "+6012555",
        ("Aisyah binti Ali", "Tan Wei Ming", "Priya Ramasamy", "Muhammad Hafiz", "Lim Mei Ling"),
    ),
    "liege": (
        "kbc-be",
        "+3247055",
        ("Sophie Lambert", "Lucas Peeters", "Emma Janssens", "Noah Dubois", "Lea Martin"),
    ),
    "kigali": (
        "mtn-rw",
        "+25078855",
        ("Aline Uwase", "Eric Mugisha", "Grace Mukamana", "Jean Bosco Habimana", "Diane Ingabire"),
    ),
    "addis-ababa": (
        "telebirr-et",
        "+25191155",
        ("Selam Tesfaye", "Dawit Bekele", "Hanna Girma", "Yonas Alemu", "Meron Haile"),
    ),
}

#: Buyers in every hub country: Chinese buyers through the Hangzhou import hub.
BUYERS = tuple(
    BuyerSpec(f"b-{hub}-{n + 1}", hub, name, f"{prefix}{101 + n:04d}", partner)
    for hub, (partner, prefix, names) in _BUYERS.items()
    for n, name in enumerate(names)
)
