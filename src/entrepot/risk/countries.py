"""Country names as OFAC writes them -> ISO 3166-1 alpha-2, so a party's ``--country DE`` can be
compared with a list entry's "nationality Germany". Regions OFAC names (Crimea, Gaza) map to the
code of the territory's usual ISO entry; "undetermined" maps to nothing."""

from __future__ import annotations

_PAIRS = """
AF Afghanistan|AL Albania|DZ Algeria|AO Angola|AR Argentina|AM Armenia|AW Aruba|AU Australia
AT Austria|AZ Azerbaijan|BS Bahamas, The|BS Bahamas|BH Bahrain|BD Bangladesh|BB Barbados
BY Belarus|BE Belgium|BZ Belize|BJ Benin|BO Bolivia|BA Bosnia and Herzegovina|BR Brazil
BN Brunei|BG Bulgaria|BF Burkina Faso|MM Burma|MM Myanmar|BI Burundi|CV Cabo Verde
KH Cambodia|CM Cameroon|CA Canada|KY Cayman Islands|CF Central African Republic|TD Chad
CL Chile|CN China|CO Colombia|KM Comoros|CD Congo, Democratic Republic of the
CG Congo, Republic of the|CR Costa Rica|CI Cote d Ivoire|HR Croatia|CU Cuba|CY Cyprus
CZ Czech Republic|DK Denmark|DM Dominica|DO Dominican Republic|EC Ecuador|EG Egypt
SV El Salvador|GQ Equatorial Guinea|ER Eritrea|ET Ethiopia|FI Finland|FR France|GE Georgia
DE Germany|GH Ghana|GI Gibraltar|GR Greece|GT Guatemala|GN Guinea|GW Guinea-Bissau|GY Guyana
HT Haiti|HN Honduras|HK Hong Kong|IN India|ID Indonesia|IR Iran|IQ Iraq|IE Ireland|IL Israel
IT Italy|JM Jamaica|JP Japan|JE Jersey|JO Jordan|KZ Kazakhstan|KE Kenya|KP Korea, North
KR Korea, South|XK Kosovo|KW Kuwait|KG Kyrgyzstan|LA Laos|LV Latvia|LB Lebanon|LR Liberia
LY Libya|LI Liechtenstein|LU Luxembourg|MO Macau|MK Macedonia, The Former Yugoslav Republic of
MK North Macedonia|MY Malaysia|MV Maldives|ML Mali|MT Malta|MH Marshall Islands|MR Mauritania
MX Mexico|MD Moldova|MN Mongolia|ME Montenegro|MA Morocco|MZ Mozambique|NA Namibia
NL Netherlands|CW Netherlands Antilles|NZ New Zealand|NI Nicaragua|NE Niger|NG Nigeria
NO Norway|OM Oman|PK Pakistan|PW Palau|PS Palestinian|PS possibly Palestinian|PS West Bank
PS Region: Gaza|UA Region: Crimea|SD Region: Kafia Kingi|ML Region: Northern Mali|PA Panama
PY Paraguay|PE Peru|PH Philippines|PL Poland|PT Portugal|QA Qatar|RO Romania|RU Russia
RW Rwanda|KN Saint Kitts and Nevis|VC Saint Vincent and the Grenadines|WS Samoa
SA Saudi Arabia|SN Senegal|RS Serbia|SC Seychelles|SL Sierra Leone|SG Singapore|SK Slovakia
SI Slovenia|SO Somalia|ZA South Africa|SS South Sudan|ES Spain|LK Sri Lanka|SD Sudan
SE Sweden|CH Switzerland|SY Syria|TW Taiwan|TJ Tajikistan|TZ Tanzania|TH Thailand
GM The Gambia|GM Gambia|TT Trinidad and Tobago|TN Tunisia|TR Turkey|TM Turkmenistan
UG Uganda|UA Ukraine|AE United Arab Emirates|GB United Kingdom|US United States|UY Uruguay
UZ Uzbekistan|VU Vanuatu|VE Venezuela|VN Vietnam|VG Virgin Islands, British|YE Yemen
ZW Zimbabwe
"""

#: Every ISO 3166-1 alpha-2 code: a party may be from a country the list names nowhere
#: (Hungary, Zambia...), and its code must be accepted all the same.
_ISO_CODES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
ZW
"""
ISO_CODES = frozenset(_ISO_CODES.split())

NAME_TO_CODE: dict[str, str] = {}
CODE_TO_NAME: dict[str, str] = {}
for _item in _PAIRS.replace("\n", "|").split("|"):
    if _item.strip():
        _code, _name = _item.strip().split(" ", 1)
        NAME_TO_CODE[_name.lower()] = _code
        CODE_TO_NAME.setdefault(_code, _name)


def country_code(text: str) -> str | None:
    """An alpha-2 code from a code (any ISO 3166-1 one, or Kosovo's XK as OFAC writes it) or
    an OFAC country name; None when unknown."""
    value = text.strip()
    if len(value) == 2 and (value.upper() in ISO_CODES or value.upper() in CODE_TO_NAME):
        return value.upper()
    return NAME_TO_CODE.get(value.lower())
