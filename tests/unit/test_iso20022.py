"""ISO 20022 export: pacs.008, pacs.002 and camt.053 - exact values, element order, round trips,
values the schemas forbid, and malformed XML."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from entrepot.kernel.errors import ConfigurationError, InvalidInput
from entrepot.kernel.money import CURRENCIES
from entrepot.payments.iso20022 import (
    CAMT053_SUBSET_XSD,
    CHARGES_MAX,
    MESSAGE_BYTES_MAX,
    NS_CAMT053,
    NS_PACS002,
    NS_PACS008,
    PACS002_SUBSET_XSD,
    PACS008_SUBSET_XSD,
    REASON_TEXT_LEN_MAX,
    REMITTANCE_LEN_MAX,
    Agent,
    Charge,
    CreditTransfer,
    InvalidMessageField,
    MalformedMessage,
    Party,
    SchemaViolation,
    Statement,
    StatementEntry,
    TransferStatus,
    camt053,
    fit_exchange_rate,
    pacs002,
    pacs008,
    parse_pacs002,
    parse_pacs008,
    validate,
)
from tests.iso20022_official import conforms, official_xsd

UETR = "3f2c1a9e-8b4d-4c7e-9f10-2a3b4c5d6e7f"
UETR_HEX = "3f2c1a9e8b4d4c7e9f102a3b4c5d6e7f"
OTHER_UETR = "0b6f7d2c-51aa-4e0b-8c3d-9e8f7a6b5c4d"
CREATED = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))
DE_IBAN = "DE89370400440532013000"
FR_IBAN = "FR1420041010050500013M02606"
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

KIGALI = Agent(participant_id="bank-rw-1", bic="BKIGRWRWXXX", name="Bank of Kigali")
PARIS = Agent(participant_id="bank-fr-1", bic=None, name="Banque de Paris")
AMINA = Party(
    name="Amina Uwase", alias_type="MSISDN", alias="+250788123456", iban=None, country="RW"
)
ATELIER = Party(
    name="Atelier Lumière SARL", alias_type=None, alias=None, iban=FR_IBAN, country="FR"
)
HUB = Agent(participant_id="scheme", bic=None, name="Entrepot scheme operator")
SCHEME_FEE = Charge(amount_minor=62, currency="EUR", agent=HUB)

# Official sequence orders (ISO 20022 message definitions), by the element that holds them
# ("parent/element" where a name means different types in different places).
SEQUENCES: dict[str, list[str]] = {
    "GrpHdr": [
        "MsgId", "CreDtTm", "MsgRcpt", "MsgPgntn", "OrgnlBizQry", "BtchBookg", "NbOfTxs",
        "CtrlSum", "TtlIntrBkSttlmAmt", "IntrBkSttlmDt", "SttlmInf", "PmtTpInf", "InstgAgt",
        "InstdAgt", "AddtlInf",
    ],
    "PmtId": ["InstrId", "EndToEndId", "TxId", "UETR", "ClrSysRef"],
    "CdtTrfTxInf": [
        "PmtId", "PmtTpInf", "IntrBkSttlmAmt", "IntrBkSttlmDt", "SttlmPrty", "SttlmTmIndctn",
        "SttlmTmReq", "AccptncDtTm", "PoolgAdjstmntDt", "InstdAmt", "XchgRate", "ChrgBr",
        "ChrgsInf", "PrvsInstgAgt1", "PrvsInstgAgt1Acct", "PrvsInstgAgt2", "PrvsInstgAgt2Acct",
        "PrvsInstgAgt3", "PrvsInstgAgt3Acct", "InstgAgt", "InstdAgt", "IntrmyAgt1",
        "IntrmyAgt1Acct", "IntrmyAgt2", "IntrmyAgt2Acct", "IntrmyAgt3", "IntrmyAgt3Acct",
        "UltmtDbtr", "InitgPty", "Dbtr", "DbtrAcct", "DbtrAgt", "DbtrAgtAcct", "CdtrAgt",
        "CdtrAgtAcct", "Cdtr", "CdtrAcct", "UltmtCdtr", "InstrForCdtrAgt", "InstrForNxtAgt",
        "Purp", "RgltryRptg", "Tax", "RltdRmtInf", "RmtInf", "SplmtryData",
    ],
    "ChrgsInf": ["Amt", "Agt"],
    "CdtTrfTxInf/Dbtr": ["Nm", "PstlAdr", "Id", "CtryOfRes", "CtctDtls"],
    "CdtTrfTxInf/Cdtr": ["Nm", "PstlAdr", "Id", "CtryOfRes", "CtctDtls"],
    "FinInstnId": ["BICFI", "ClrSysMmbId", "LEI", "Nm", "PstlAdr", "Othr"],
    "TxInfAndSts": [
        "StsId", "OrgnlGrpInf", "OrgnlInstrId", "OrgnlEndToEndId", "OrgnlTxId", "OrgnlUETR",
        "TxSts", "StsRsnInf", "ChrgsInf", "AccptncDtTm", "FctvIntrBkSttlmDt", "AcctSvcrRef",
        "ClrSysRef", "InstgAgt", "InstdAgt", "OrgnlTxRef", "SplmtryData",
    ],
    "StsRsnInf": ["Orgtr", "Rsn", "AddtlInf"],
    "Stmt": [
        "Id", "StmtPgntn", "ElctrncSeqNb", "RptgSeq", "LglSeqNb", "CreDtTm", "FrToDt",
        "CpyDplctInd", "RptgSrc", "Acct", "RltdAcct", "Intrst", "Bal", "TxsSummry", "Ntry",
        "AddtlStmtInf",
    ],
    "Acct": ["Id", "Tp", "Ccy", "Nm", "Prxy", "Ownr", "Svcr"],
    "Bal": ["Tp", "CdtLine", "Amt", "CdtDbtInd", "Dt", "Avlbty"],
    "TtlNtries": ["NbOfNtries", "Sum", "TtlNetNtry"],
    "Ntry": [
        "NtryRef", "Amt", "CdtDbtInd", "RvslInd", "Sts", "BookgDt", "ValDt", "AcctSvcrRef",
        "Avlbty", "BkTxCd", "ComssnWvrInd", "AddtlInfInd", "AmtDtls", "Chrgs", "TechInptChanl",
        "Intrst", "CardTx", "NtryDtls", "AddtlNtryInf",
    ],
    "TxDtls": [
        "Refs", "Amt", "CdtDbtInd", "AmtDtls", "Avlbty", "BkTxCd", "Chrgs", "Intrst",
        "RltdPties", "RltdAgts", "LclInstrm", "Purp", "RltdRmtInf", "RmtInf",
    ],
}  # fmt: skip


# Any text XML 1.0 can carry, less control characters (which the model refuses).
XML_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\ufffe\uffff"),
    max_size=140,
)


def make_ct(**changes: Any) -> CreditTransfer:
    base = CreditTransfer(
        message_id="MSG-20240501-0001",
        transfer_id=UETR,
        end_to_end_id="E2E-ORDER-42",
        created_at=CREATED,
        settlement_date=date(2024, 5, 1),
        amount_minor=1250,
        currency="EUR",
        debtor=AMINA,
        debtor_agent=KIGALI,
        creditor=ATELIER,
        creditor_agent=PARIS,
        remittance="Invoice 2024-117",
        purpose="GDDS",
    )
    return dataclasses.replace(base, **changes)


#: a same-currency transfer's instructed amount, which its charges need (ISO 20022's rule)
INSTRUCTED: dict[str, Any] = {"instructed_amount_minor": 1250, "instructed_currency": "EUR"}


def make_cross_currency() -> CreditTransfer:
    """EUR 100.00 instructed, settled as RWF 145,012 at 1450.12 RWF per EUR."""
    return make_ct(
        amount_minor=145_012,
        currency="RWF",
        instructed_amount_minor=10_000,
        instructed_currency="EUR",
        fx_rate=Decimal("1450.12"),
    )


def make_status(**changes: Any) -> TransferStatus:
    base = TransferStatus(
        message_id="STS-0001",
        original_message_id="MSG-20240501-0001",
        original_transfer_id=UETR,
        original_end_to_end_id="E2E-ORDER-42",
        status="ACSC",
        created_at=CREATED + timedelta(seconds=2),
    )
    return dataclasses.replace(base, **changes)


FROM_DT = datetime(2024, 5, 1, tzinfo=UTC)
TO_DT = datetime(2024, 5, 2, tzinfo=UTC)


def make_entries() -> list[StatementEntry]:
    return [
        StatementEntry(
            entry_ref="E1",
            booked_at=FROM_DT + timedelta(hours=9),
            amount_minor=1250,
            currency="EUR",
            credit=True,
            counterparty="Amina Uwase",
            transfer_id=UETR,
            remittance="Invoice 2024-117",
        ),
        StatementEntry(
            entry_ref="E2",
            booked_at=FROM_DT + timedelta(hours=10),
            amount_minor=300,
            currency="EUR",
            credit=False,
            counterparty="Scheme fees",
        ),
        StatementEntry(
            entry_ref="E3",
            booked_at=TO_DT - timedelta(microseconds=1),  # the period's last microsecond
            amount_minor=5000,
            currency="EUR",
            credit=True,
            transfer_id=OTHER_UETR,
        ),
    ]


def make_statement(**changes: Any) -> Statement:
    base = Statement(
        message_id="STMT-MSG-1",
        statement_id="STMT-2024-05-01",
        created_at=TO_DT + timedelta(minutes=5),
        account_id="settlement-bank-fr-1-EUR",
        account_iban=None,
        owner=Agent(participant_id="bank-fr-1", bic="BNPAFRPPXXX", name="Banque de Paris"),
        currency="EUR",
        from_dt=FROM_DT,
        to_dt=TO_DT,
        opening_balance_minor=10_000,
        closing_balance_minor=10_000 + 1250 - 300 + 5000,
        entries=make_entries(),
    )
    return dataclasses.replace(base, **changes)


def values(xml: bytes, path: str, namespace: str) -> list[str]:
    found = etree.fromstring(xml).xpath(path, namespaces={"p": namespace})
    return [str(item) for item in found]


def value(xml: bytes, path: str, namespace: str) -> str:
    found = values(xml, path, namespace)
    assert len(found) == 1, f"{path}: {found}"
    return found[0]


def element_paths(xml: bytes) -> list[str]:
    """Every element below Document, as local-name paths, in document order."""
    root = etree.fromstring(xml)
    paths = []
    for element in root.iterdescendants():
        chain = [*reversed(list(element.iterancestors())), element][1:]
        paths.append("/".join(etree.QName(item).localname for item in chain))
    return paths


def assert_sequence_order(xml: bytes) -> None:
    """Children of every element with a known sequence appear in the schema's order."""
    for element in etree.fromstring(xml).iter():
        name = etree.QName(element).localname
        parent = element.getparent()
        qualified = f"{etree.QName(parent).localname}/{name}" if parent is not None else name
        order = SEQUENCES.get(qualified, SEQUENCES.get(name))
        if order is None:
            continue
        names = [etree.QName(child).localname for child in element]
        assert all(name in order for name in names), names
        indexes = [order.index(name) for name in names]
        assert indexes == sorted(indexes), f"{etree.QName(element).localname}: {names}"


# --- pacs.008 ------------------------------------------------------------------------------

P8 = "/p:Document/p:FIToFICstmrCdtTrf"
TX = f"{P8}/p:CdtTrfTxInf"


def test_pacs008_fixed_example_values() -> None:
    xml = pacs008(make_ct())

    assert xml.startswith(DECLARATION)
    root = etree.fromstring(xml)
    assert root.tag == f"{{{NS_PACS008}}}Document"
    assert root.nsmap == {None: NS_PACS008}
    assert value(xml, f"{P8}/p:GrpHdr/p:MsgId/text()", NS_PACS008) == "MSG-20240501-0001"
    assert value(xml, f"{P8}/p:GrpHdr/p:CreDtTm/text()", NS_PACS008) == (
        "2024-05-01T12:30:15+00:00"
    )
    assert value(xml, f"{P8}/p:GrpHdr/p:NbOfTxs/text()", NS_PACS008) == "1"
    assert value(xml, f"{P8}/p:GrpHdr/p:SttlmInf/p:SttlmMtd/text()", NS_PACS008) == "CLRG"
    assert value(xml, f"{TX}/p:PmtId/p:InstrId/text()", NS_PACS008) == UETR_HEX
    assert value(xml, f"{TX}/p:PmtId/p:EndToEndId/text()", NS_PACS008) == "E2E-ORDER-42"
    assert value(xml, f"{TX}/p:PmtId/p:TxId/text()", NS_PACS008) == UETR_HEX
    assert value(xml, f"{TX}/p:PmtId/p:UETR/text()", NS_PACS008) == UETR
    assert value(xml, f"{TX}/p:IntrBkSttlmAmt/text()", NS_PACS008) == "12.50"
    assert value(xml, f"{TX}/p:IntrBkSttlmAmt/@Ccy", NS_PACS008) == "EUR"
    assert value(xml, f"{TX}/p:IntrBkSttlmDt/text()", NS_PACS008) == "2024-05-01"
    assert value(xml, f"{TX}/p:ChrgBr/text()", NS_PACS008) == "SLEV"
    assert value(xml, f"{TX}/p:Dbtr/p:Nm/text()", NS_PACS008) == "Amina Uwase"
    assert value(xml, f"{TX}/p:Dbtr/p:Id/p:PrvtId/p:Othr/p:Id/text()", NS_PACS008) == (
        "+250788123456"
    )
    assert value(xml, f"{TX}/p:Dbtr/p:Id/p:PrvtId/p:Othr/p:SchmeNm/p:Prtry/text()", NS_PACS008) == (
        "MSISDN"
    )
    assert value(xml, f"{TX}/p:Dbtr/p:CtryOfRes/text()", NS_PACS008) == "RW"
    assert value(xml, f"{TX}/p:DbtrAgt/p:FinInstnId/p:BICFI/text()", NS_PACS008) == ("BKIGRWRWXXX")
    assert value(xml, f"{TX}/p:DbtrAgt/p:FinInstnId/p:Othr/p:Id/text()", NS_PACS008) == (
        "bank-rw-1"
    )
    assert values(xml, f"{TX}/p:CdtrAgt/p:FinInstnId/p:BICFI", NS_PACS008) == []
    assert value(xml, f"{TX}/p:CdtrAgt/p:FinInstnId/p:Othr/p:Id/text()", NS_PACS008) == (
        "bank-fr-1"
    )
    assert value(xml, f"{TX}/p:Cdtr/p:Nm/text()", NS_PACS008) == "Atelier Lumière SARL"
    assert value(xml, f"{TX}/p:CdtrAcct/p:Id/p:IBAN/text()", NS_PACS008) == FR_IBAN
    assert values(xml, f"{TX}/p:DbtrAcct", NS_PACS008) == []
    assert value(xml, f"{TX}/p:Purp/p:Cd/text()", NS_PACS008) == "GDDS"
    assert value(xml, f"{TX}/p:RmtInf/p:Ustrd/text()", NS_PACS008) == "Invoice 2024-117"
    assert values(xml, f"{TX}/p:InstdAmt", NS_PACS008) == []
    assert values(xml, f"{TX}/p:XchgRate", NS_PACS008) == []
    assert "Atelier Lumière SARL".encode() in xml  # UTF-8, not character references


def test_pacs008_element_order_is_the_schema_sequence() -> None:
    tx = "FIToFICstmrCdtTrf/CdtTrfTxInf"
    party = f"{tx}/Dbtr/Id/PrvtId/Othr"
    expected = [
        "FIToFICstmrCdtTrf",
        "FIToFICstmrCdtTrf/GrpHdr",
        "FIToFICstmrCdtTrf/GrpHdr/MsgId",
        "FIToFICstmrCdtTrf/GrpHdr/CreDtTm",
        "FIToFICstmrCdtTrf/GrpHdr/NbOfTxs",
        "FIToFICstmrCdtTrf/GrpHdr/SttlmInf",
        "FIToFICstmrCdtTrf/GrpHdr/SttlmInf/SttlmMtd",
        tx,
        f"{tx}/PmtId",
        f"{tx}/PmtId/InstrId",
        f"{tx}/PmtId/EndToEndId",
        f"{tx}/PmtId/TxId",
        f"{tx}/PmtId/UETR",
        f"{tx}/IntrBkSttlmAmt",
        f"{tx}/IntrBkSttlmDt",
        f"{tx}/ChrgBr",
        f"{tx}/Dbtr",
        f"{tx}/Dbtr/Nm",
        f"{tx}/Dbtr/Id",
        f"{tx}/Dbtr/Id/PrvtId",
        party,
        f"{party}/Id",
        f"{party}/SchmeNm",
        f"{party}/SchmeNm/Prtry",
        f"{tx}/Dbtr/CtryOfRes",
        f"{tx}/DbtrAgt",
        f"{tx}/DbtrAgt/FinInstnId",
        f"{tx}/DbtrAgt/FinInstnId/BICFI",
        f"{tx}/DbtrAgt/FinInstnId/Nm",
        f"{tx}/DbtrAgt/FinInstnId/Othr",
        f"{tx}/DbtrAgt/FinInstnId/Othr/Id",
        f"{tx}/CdtrAgt",
        f"{tx}/CdtrAgt/FinInstnId",
        f"{tx}/CdtrAgt/FinInstnId/Nm",
        f"{tx}/CdtrAgt/FinInstnId/Othr",
        f"{tx}/CdtrAgt/FinInstnId/Othr/Id",
        f"{tx}/Cdtr",
        f"{tx}/Cdtr/Nm",
        f"{tx}/Cdtr/CtryOfRes",
        f"{tx}/CdtrAcct",
        f"{tx}/CdtrAcct/Id",
        f"{tx}/CdtrAcct/Id/IBAN",
        f"{tx}/Purp",
        f"{tx}/Purp/Cd",
        f"{tx}/RmtInf",
        f"{tx}/RmtInf/Ustrd",
    ]
    xml = pacs008(make_ct())

    assert element_paths(xml) == expected
    assert_sequence_order(xml)


@pytest.mark.parametrize(
    ("amount_minor", "currency", "text"),
    [
        (1250, "EUR", "12.50"),
        (1250, "RWF", "1250"),
        (1250, "BHD", "1.250"),
        (5, "EUR", "0.05"),
        (7, "JPY", "7"),
        (1, "CLF", "0.0001"),
        (10**17 + 1, "EUR", "1000000000000000.01"),  # past float's 53 bits: exact
        (10**18 - 1, "RWF", "999999999999999999"),
    ],
)
def test_pacs008_amount_text_uses_the_currency_exponent(
    amount_minor: int, currency: str, text: str
) -> None:
    xml = pacs008(make_ct(amount_minor=amount_minor, currency=currency))

    assert value(xml, f"{TX}/p:IntrBkSttlmAmt/text()", NS_PACS008) == text
    assert value(xml, f"{TX}/p:IntrBkSttlmAmt/@Ccy", NS_PACS008) == currency
    conforms(xml, PACS008_SUBSET_XSD)


def test_pacs008_cross_currency_carries_instructed_amount_and_rate() -> None:
    xml = pacs008(make_cross_currency())

    assert value(xml, f"{TX}/p:IntrBkSttlmAmt/text()", NS_PACS008) == "145012"
    assert value(xml, f"{TX}/p:IntrBkSttlmAmt/@Ccy", NS_PACS008) == "RWF"
    assert value(xml, f"{TX}/p:InstdAmt/text()", NS_PACS008) == "100.00"
    assert value(xml, f"{TX}/p:InstdAmt/@Ccy", NS_PACS008) == "EUR"
    assert value(xml, f"{TX}/p:XchgRate/text()", NS_PACS008) == "1450.12"
    children = [etree.QName(child).localname for child in etree.fromstring(xml)[0][1]]
    assert children[:6] == [
        "PmtId",
        "IntrBkSttlmAmt",
        "IntrBkSttlmDt",
        "InstdAmt",
        "XchgRate",
        "ChrgBr",
    ]
    assert_sequence_order(xml)
    conforms(xml, PACS008_SUBSET_XSD)


def test_pacs008_same_currency_instructed_amount_has_no_rate() -> None:
    ct = make_ct(amount_minor=1200, instructed_amount_minor=1250, instructed_currency="EUR")
    xml = pacs008(ct)

    assert value(xml, f"{TX}/p:InstdAmt/text()", NS_PACS008) == "12.50"
    assert values(xml, f"{TX}/p:XchgRate", NS_PACS008) == []
    assert parse_pacs008(xml) == ct


def test_pacs008_proprietary_purpose_and_debtor_iban() -> None:
    debtor = dataclasses.replace(AMINA, iban=DE_IBAN, alias_type=None, alias=None, country=None)
    xml = pacs008(make_ct(purpose="marketplace-order", debtor=debtor, remittance=None))

    assert value(xml, f"{TX}/p:Purp/p:Prtry/text()", NS_PACS008) == "marketplace-order"
    assert value(xml, f"{TX}/p:DbtrAcct/p:Id/p:IBAN/text()", NS_PACS008) == DE_IBAN
    assert values(xml, f"{TX}/p:Dbtr/p:Id", NS_PACS008) == []
    assert values(xml, f"{TX}/p:RmtInf", NS_PACS008) == []
    assert_sequence_order(xml)
    conforms(xml, PACS008_SUBSET_XSD)


def test_pacs008_carries_the_fee_as_a_charge_borne_by_the_debtor() -> None:
    """The scheme's fee was not in pacs.008 at all (ChrgBr SLEV, no ChrgsInf): a receiving
    agent could not tell what the payer paid. It is a ``ChrgsInf`` (amount, and the hub as
    the agent taking it) after ``ChrgBr``, and reads back."""
    ct = make_ct(charge_bearer="DEBT", **INSTRUCTED, charges=[SCHEME_FEE])
    xml = pacs008(ct)

    assert value(xml, f"{TX}/p:ChrgBr/text()", NS_PACS008) == "DEBT"
    assert value(xml, f"{TX}/p:ChrgsInf/p:Amt/text()", NS_PACS008) == "0.62"
    assert value(xml, f"{TX}/p:ChrgsInf/p:Amt/@Ccy", NS_PACS008) == "EUR"
    agent = f"{TX}/p:ChrgsInf/p:Agt/p:FinInstnId"
    assert value(xml, f"{agent}/p:Othr/p:Id/text()", NS_PACS008) == "scheme"
    assert value(xml, f"{agent}/p:Nm/text()", NS_PACS008) == "Entrepot scheme operator"
    children = [etree.QName(child).localname for child in etree.fromstring(xml)[0][1]]
    assert children[children.index("ChrgBr") + 1] == "ChrgsInf"
    assert_sequence_order(xml)
    conforms(xml, PACS008_SUBSET_XSD)
    parsed = parse_pacs008(xml)
    assert parsed == ct
    assert parsed.charges == (SCHEME_FEE,)


def test_a_fee_in_the_instructed_currency_of_a_cross_currency_transfer_reads_back() -> None:
    fee = Charge(amount_minor=50, currency="EUR", agent=HUB)
    ct = dataclasses.replace(make_cross_currency(), charge_bearer="DEBT", charges=(fee,))
    xml = pacs008(ct)

    assert value(xml, f"{TX}/p:ChrgsInf/p:Amt/@Ccy", NS_PACS008) == "EUR"
    assert value(xml, f"{TX}/p:IntrBkSttlmAmt/@Ccy", NS_PACS008) == "RWF"
    conforms(xml, PACS008_SUBSET_XSD)
    assert parse_pacs008(xml) == ct


FX_PROVIDER = Agent(participant_id="fx-sg-1", bic="FXSGSGSGXXX", name="FX Co Singapore")


def test_pacs008_names_the_fx_provider_as_the_first_intermediary_agent() -> None:
    """A cross-currency transfer goes through an FX provider: the debtor agent pays it the
    instructed amount, it pays the creditor agent the amount settled, at the rate. pacs.008
    named no FX provider at all. It is ``IntrmyAgt1`` (as BIS Nexus names the FX provider's
    side of the chain), identified as the other agents are, after the charges and before the
    debtor, and reads back."""
    ct = dataclasses.replace(
        make_cross_currency(),
        charge_bearer="DEBT",
        charges=(SCHEME_FEE,),
        intermediary_agent=FX_PROVIDER,
    )
    xml = pacs008(ct)

    agent = f"{TX}/p:IntrmyAgt1/p:FinInstnId"
    assert value(xml, f"{agent}/p:BICFI/text()", NS_PACS008) == "FXSGSGSGXXX"
    assert value(xml, f"{agent}/p:Nm/text()", NS_PACS008) == "FX Co Singapore"
    assert value(xml, f"{agent}/p:Othr/p:Id/text()", NS_PACS008) == "fx-sg-1"
    children = [etree.QName(child).localname for child in etree.fromstring(xml)[0][1]]
    assert children[children.index("ChrgsInf") + 1 :][:2] == ["IntrmyAgt1", "Dbtr"]
    assert_sequence_order(xml)
    conforms(xml, PACS008_SUBSET_XSD)
    parsed = parse_pacs008(xml)
    assert parsed == ct
    assert parsed.intermediary_agent == FX_PROVIDER
    # a transfer without one has none, and reads back without one
    direct = pacs008(make_ct())
    assert values(direct, f"{TX}/p:IntrmyAgt1", NS_PACS008) == []
    assert parse_pacs008(direct).intermediary_agent is None


def test_an_intermediary_agent_must_be_an_agent() -> None:
    with pytest.raises(InvalidMessageField) as caught:
        make_ct(intermediary_agent=AMINA)
    assert caught.value.field == "intermediary_agent"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount_minor": -1}, "amount_minor"),
        ({"amount_minor": 10**18}, "amount_minor"),
        ({"currency": "XYZ"}, "currency"),
        ({"agent": "scheme"}, "agent"),
    ],
)
def test_charge_refuses_values_the_schema_forbids(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidMessageField) as caught:
        dataclasses.replace(SCHEME_FEE, **changes)
    assert caught.value.field == field


def test_credit_transfer_charges_are_charges() -> None:
    with pytest.raises(InvalidMessageField) as caught:
        make_ct(charges=["62 EUR"])
    assert caught.value.field == "charges[0]"
    assert make_ct(**INSTRUCTED, charges=[SCHEME_FEE]).charges == (SCHEME_FEE,)  # a tuple


def test_charges_need_an_instructed_amount() -> None:
    """Found by a review: a same-currency pacs.008 with a fee carried ``ChrgsInf`` and no
    ``InstdAmt``, which ISO 20022's ChargesInformationAndInstructedAmountRule forbids (the
    schema cannot say it; an agent that checks the rules refuses the message)."""
    with pytest.raises(
        InvalidMessageField, match="ChargesInformationAndInstructedAmountRule"
    ) as caught:
        make_ct(charge_bearer="DEBT", charges=[SCHEME_FEE])
    assert caught.value.field == "instructed_amount_minor"


@pytest.mark.parametrize("where", ["debtor", "creditor"])
def test_an_organisation_without_an_id_reads_back_as_an_organisation(where: str) -> None:
    """pacs.008 tells an organisation from a person only by ``Id/OrgId`` vs ``Id/PrvtId``:
    an organisation written without an identifier had no ``Id`` and read back as a person.
    It now has an empty ``Id/OrgId`` (every child of it is optional in the schema)."""
    org = Party(name="Kigali Trading Co", alias_type=None, alias=None, iban=None,
                country="RW", organisation=True)  # fmt: skip
    ct = make_ct(**{where: org})
    xml = pacs008(ct)
    tag = "Dbtr" if where == "debtor" else "Cdtr"

    assert len(values(xml, f"{TX}/p:{tag}/p:Id/p:OrgId", NS_PACS008)) == 1
    assert values(xml, f"{TX}/p:{tag}/p:Id/p:OrgId/*", NS_PACS008) == []
    assert_sequence_order(xml)
    conforms(xml, PACS008_SUBSET_XSD)
    parsed = parse_pacs008(xml)
    assert getattr(parsed, where).organisation is True
    assert parsed == ct
    # a person without an identifier has no Id, and reads back as a person
    person = dataclasses.replace(org, organisation=False)
    xml = pacs008(make_ct(**{where: person}))
    assert values(xml, f"{TX}/p:{tag}/p:Id", NS_PACS008) == []
    assert getattr(parse_pacs008(xml), where) == person


@pytest.mark.parametrize(
    "ct",
    [
        make_ct(),
        make_cross_currency(),
        make_ct(currency="RWF", purpose=None, remittance=None, charge_bearer="SHAR"),
        make_ct(created_at=datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=PLUS_TWO)),
        make_ct(fx_rate=None, instructed_amount_minor=None, instructed_currency=None, purpose="ab"),
        make_ct(settlement_date=None),
        make_ct(charge_bearer="DEBT", **INSTRUCTED,
                charges=[SCHEME_FEE, dataclasses.replace(SCHEME_FEE, agent=PARIS)]),
        make_ct(creditor=Party(name="Kedai Kopi KL", alias_type="MERCHANT", alias="KL-TILL-42",
                               iban=None, country="MY", organisation=True)),
        dataclasses.replace(make_cross_currency(), intermediary_agent=FX_PROVIDER),
        dataclasses.replace(make_cross_currency(), intermediary_agent=PARIS),
    ],
    ids=["eur", "cross-currency", "rwf-minimal", "offset-and-microseconds", "short-prtry",
         "not-settled-yet", "two-charges", "organisation", "fx-provider", "fx-provider-no-bic"],
)  # fmt: skip
def test_pacs008_round_trip(ct: CreditTransfer) -> None:
    conforms(pacs008(ct), PACS008_SUBSET_XSD)
    parsed = parse_pacs008(pacs008(ct))

    assert parsed == ct
    assert parsed.created_at.utcoffset() == timedelta(0)
    assert pacs008(parsed) == pacs008(ct)


@given(
    amount_minor=st.integers(min_value=1, max_value=10**18 - 1),
    currency=st.sampled_from(sorted(CURRENCIES)),
    text=XML_TEXT,
)  # fmt: skip
def test_pacs008_round_trip_any_amount_currency_and_text(
    amount_minor: int, currency: str, text: str
) -> None:
    ct = make_ct(amount_minor=amount_minor, currency=currency, remittance=text or None)

    assert parse_pacs008(pacs008(ct)) == ct
    conforms(pacs008(ct), PACS008_SUBSET_XSD)


@pytest.mark.parametrize("length", [140, 141, 200, 280, REMITTANCE_LEN_MAX])
def test_pacs008_remittance_longer_than_one_ustrd_is_split_not_refused(length: int) -> None:
    """A transfer's note holds up to 200 characters, Ustrd (Max140Text) 140: a note of 141 or
    more refused the transfer's whole pacs.008. Ustrd repeats: the text is written across
    consecutive lines of at most 140 characters, and read back whole."""
    text = "".join(chr(ord("a") + n % 26) for n in range(length - 2)) + "&<"
    ct = make_ct(remittance=text)
    xml = pacs008(ct)

    conforms(xml, PACS008_SUBSET_XSD)
    lines = values(xml, f"{TX}/p:RmtInf/p:Ustrd/text()", NS_PACS008)
    assert "".join(lines) == text
    assert all(1 <= len(line) <= 140 for line in lines)
    assert len(lines) == -(-length // 140)
    assert parse_pacs008(xml) == ct


def test_too_long_message_id_is_refused_at_35_plus_one() -> None:
    make_ct(message_id="M" * 35)

    with pytest.raises(InvalidMessageField, match="message_id is 36 characters") as caught:
        make_ct(message_id="M" * 36)
    assert caught.value.field == "message_id"
    assert caught.value.code == "iso20022_invalid_field"
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"end_to_end_id": "E" * 36}, "end_to_end_id"),
        ({"message_id": ""}, "message_id"),
        ({"remittance": "r" * (REMITTANCE_LEN_MAX + 1)}, "remittance"),
        ({"remittance": "line one\nline two"}, "remittance"),
        ({"purpose": "p" * 36}, "purpose"),
        ({"transfer_id": UETR.upper()}, "transfer_id"),
        ({"transfer_id": UETR_HEX}, "transfer_id"),
        ({"transfer_id": "3f2c1a9e-8b4d-1c7e-9f10-2a3b4c5d6e7f"}, "transfer_id"),  # version 1
        ({"created_at": datetime(2024, 5, 1, 12, 30)}, "created_at"),  # naive
        ({"settlement_date": CREATED}, "settlement_date"),
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": -1}, "amount_minor"),
        ({"amount_minor": 12.5}, "amount_minor"),
        ({"amount_minor": True}, "amount_minor"),
        ({"amount_minor": 10**18}, "amount_minor"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"charge_bearer": "BOTH"}, "charge_bearer"),
        ({"debtor": KIGALI}, "debtor"),
        ({"instructed_amount_minor": 100}, "instructed_amount_minor"),
        ({"fx_rate": Decimal("1.1")}, "fx_rate"),
        ({"instructed_amount_minor": 100, "instructed_currency": "USD"}, "fx_rate"),
        (
            {"instructed_amount_minor": 100, "instructed_currency": "EUR", "fx_rate": Decimal(1)},
            "fx_rate",
        ),
        (
            {
                "instructed_amount_minor": 100,
                "instructed_currency": "USD",
                "fx_rate": Decimal("0.92123456789"),  # 11 fraction digits
            },
            "fx_rate",
        ),
        (
            {"instructed_amount_minor": 100, "instructed_currency": "USD", "fx_rate": Decimal(0)},
            "fx_rate",
        ),
    ],
)
def test_credit_transfer_refuses_values_the_schema_forbids(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessageField) as caught:
        make_ct(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"bic": "BKIGRWR"}, "bic"),
        ({"bic": "BKIGRWRWXX"}, "bic"),
        ({"bic": "bkigrwrwxxx"}, "bic"),
        ({"bic": "BKIG1WRWXXX"}, "bic"),
        ({"bic": "BKIGRW1WXXX"}, "bic"),  # location code's 1st character: [A-Z2-9]
        ({"bic": "BKIGRWROXXX"}, "bic"),  # location code's 2nd character: not the letter O
        ({"participant_id": "p" * 36}, "participant_id"),
        ({"name": "n" * 141}, "name"),
    ],
)
def test_agent_checks_bic_and_lengths(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidMessageField) as caught:
        dataclasses.replace(KIGALI, **changes)
    assert caught.value.field == field


def test_agent_accepts_eight_and_eleven_character_bics() -> None:
    assert dataclasses.replace(KIGALI, bic="BKIGRWRW").bic == "BKIGRWRW"
    assert dataclasses.replace(KIGALI, bic="BKIGRW2WXXX").bic == "BKIGRW2WXXX"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"iban": "DE89370400440532013001"}, "iban"),  # check digits fail
        ({"iban": "de89370400440532013000"}, "iban"),
        ({"country": "rw"}, "country"),
        ({"country": "RWA"}, "country"),
        ({"alias": None}, "alias"),  # an alias type needs an alias
        ({"alias": "a" * 36}, "alias"),
        ({"name": "\x00"}, "name"),
    ],
)
def test_party_checks_iban_country_and_alias(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidMessageField) as caught:
        dataclasses.replace(AMINA, **changes)
    assert caught.value.field == field


def test_pacs008_takes_only_a_credit_transfer() -> None:
    with pytest.raises(TypeError):
        pacs008(make_status())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "rounding", "fitted"),
    [
        (Decimal("1450.123456789"), ROUND_DOWN, Decimal("1450.1234567")),
        (Decimal("1450.123456789"), "ROUND_HALF_EVEN", Decimal("1450.1234568")),
        (Decimal("0.000123456789123"), "ROUND_HALF_EVEN", Decimal("0.0001234568")),
        (Decimal("1.08"), "ROUND_HALF_EVEN", Decimal("1.08")),
        (Decimal("12345678901"), "ROUND_HALF_EVEN", Decimal("12345678901")),
    ],
)
def test_fit_exchange_rate_rounds_once_to_base_one_rate(
    rate: Decimal, rounding: str, fitted: Decimal
) -> None:
    result = fit_exchange_rate(rate, rounding)

    assert result == fitted
    ct = make_ct(instructed_amount_minor=100, instructed_currency="USD", fx_rate=result)
    conforms(pacs008(ct), PACS008_SUBSET_XSD)


@pytest.mark.parametrize(
    "rate", [Decimal("123456789012"), Decimal("99999999999.6"), Decimal("0.00000000001")]
)
def test_fit_exchange_rate_refuses_rates_it_cannot_express(rate: Decimal) -> None:
    with pytest.raises(InvalidMessageField):
        fit_exchange_rate(rate)


# --- parsing malformed input ---------------------------------------------------------------


def test_parse_refuses_malformed_xml() -> None:
    with pytest.raises(MalformedMessage, match="not well-formed XML") as caught:
        parse_pacs008(b"<Document><FIToFICstmrCdtTrf>")
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == "iso20022_malformed_message"
    with pytest.raises(MalformedMessage, match="not well-formed XML"):
        parse_pacs008(b"")


def test_parse_takes_bytes_only() -> None:
    with pytest.raises(TypeError):
        parse_pacs008(pacs008(make_ct()).decode())  # type: ignore[arg-type]


def test_parse_refuses_a_doctype_and_does_not_expand_entities() -> None:
    xml = pacs008(make_ct()).replace(
        DECLARATION,
        DECLARATION + b'<!DOCTYPE Document [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;">]>\n',
    )
    xml = xml.replace(b"<MsgId>MSG-20240501-0001</MsgId>", b"<MsgId>&y;</MsgId>")

    with pytest.raises(MalformedMessage, match="DOCTYPE"):
        parse_pacs008(xml)


def test_parse_refuses_oversized_input() -> None:
    xml = pacs008(make_ct())
    padded = xml + b" " * (MESSAGE_BYTES_MAX - len(xml) + 1)

    with pytest.raises(MalformedMessage, match="bytes, more than"):
        parse_pacs008(padded)


def _mutated(old: bytes, new: bytes, ct: CreditTransfer | None = None) -> bytes:
    xml = pacs008(ct or make_ct())
    assert xml.count(old) == 1, old
    return xml.replace(old, new)


@pytest.mark.parametrize(
    ("xml", "match"),
    [
        (_mutated(NS_PACS008.encode(), b"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.09"),
         "expected {urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08}Document"),
        (pacs002(make_status()), "expected"),
        (_mutated(b"<MsgId>MSG-20240501-0001</MsgId>", b""), "GrpHdr/MsgId is missing"),
        (_mutated(b"<MsgId>MSG-20240501-0001</MsgId>", b"<MsgId></MsgId>"), "MsgId is empty"),
        (_mutated(b"MSG-20240501-0001", b"M" * 36), "message_id is 36 characters"),
        (_mutated(b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>2</NbOfTxs>"), "single-transaction"),
        (_mutated(b">12.50<", b">12.505<"), "at most 2 fractional digits"),
        (_mutated(b">12.50<", b">1.25e1<"), "IntrBkSttlmAmt"),
        (_mutated(b">12.50<", b">-12.50<"), "amount_minor must be > 0"),
        (_mutated(b'Ccy="EUR"', b'Ccy="XYZ"'), "unknown currency"),
        (_mutated(b' Ccy="EUR"', b""), "IntrBkSttlmAmt"),
        (_mutated(b"2024-05-01T12:30:15+00:00", b"2024-05-01T12:30:15"), "timezone"),
        (_mutated(b"2024-05-01T12:30:15+00:00", b"2024-05-32T12:30:15Z"), "not a valid date"),
        (_mutated(b"<IntrBkSttlmDt>2024-05-01<", b"<IntrBkSttlmDt>2024-13-01<"), "ISO date"),
        (_mutated(UETR.encode(), UETR.upper().encode()), "not a UETR"),
        (_mutated(b"<ChrgBr>SLEV</ChrgBr>", b"<ChrgBr>XXXX</ChrgBr>"), "charge_bearer"),
        (_mutated(b"<XchgRate>1450.12</XchgRate>", b"<XchgRate>1.45E3</XchgRate>",
                  make_cross_currency()), "plain decimal"),
        (_mutated(b"<Nm>Bank of Kigali</Nm>", b""), "DbtrAgt/FinInstnId/Nm is missing"),
        (_mutated(b"<Nm>FX Co Singapore</Nm>", b"",
                  dataclasses.replace(make_cross_currency(), intermediary_agent=FX_PROVIDER)),
         "IntrmyAgt1/FinInstnId/Nm is missing"),
    ],
    ids=[
        "other-version", "other-message", "missing-msgid", "empty-msgid", "long-msgid",
        "two-declared", "too-many-decimals", "exponent-amount", "negative-amount",
        "unknown-currency", "missing-ccy", "naive-time", "bad-day", "bad-month", "upper-uetr",
        "bad-charge-bearer", "exponent-rate", "missing-agent-name",
        "missing-intermediary-name",
    ],
)  # fmt: skip
def test_parse_pacs008_refuses_malformed_messages(xml: bytes, match: str) -> None:
    with pytest.raises(MalformedMessage, match=match):
        parse_pacs008(xml)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b">0.62<", b">0.625<", "ChrgsInf/Amt"),
        (b'<Amt Ccy="EUR">0.62</Amt>', b"", "ChrgsInf/Amt"),
        (b"<Nm>Entrepot scheme operator</Nm>", b"", "ChrgsInf/Agt/FinInstnId/Nm"),
    ],
    ids=["bad-amount", "missing-amount", "missing-agent-name"],
)
def test_a_bad_charge_is_reported_at_its_full_path(old: bytes, new: bytes, field: str) -> None:
    """A charge was read from its ``ChrgsInf`` element, and a bad amount reported at ``Amt``
    (an agent's name at ``Agt/FinInstnId/Nm``): a path that names no element of the
    transaction, where every other error names its full path (``IntrBkSttlmAmt``)."""
    xml = _mutated(old, new, make_ct(charge_bearer="DEBT", **INSTRUCTED, charges=[SCHEME_FEE]))

    with pytest.raises(MalformedMessage) as caught:
        parse_pacs008(xml)
    assert caught.value.field == field
    assert caught.value.detail.startswith(f"pacs.008: {field}")


def test_a_bad_charge_among_several_is_reported_at_its_position() -> None:
    second = dataclasses.replace(SCHEME_FEE, amount_minor=7, agent=PARIS)
    xml = _mutated(
        b">0.07<",
        b">0.075<",
        make_ct(charge_bearer="DEBT", **INSTRUCTED, charges=[SCHEME_FEE, second]),
    )

    with pytest.raises(MalformedMessage, match="at most 2 fractional digits") as caught:
        parse_pacs008(xml)
    assert caught.value.field == "ChrgsInf[2]/Amt"
    assert caught.value.detail.startswith("pacs.008: ChrgsInf[2]/Amt")


def _charged(count: int) -> CreditTransfer:
    """A transfer with ``count`` charges, each of its own agent and amount."""
    charges = [
        Charge(
            amount_minor=position,
            currency="EUR",
            agent=Agent(participant_id=f"agent-{position}", bic=None, name=f"Agent {position}"),
        )
        for position in range(1, count + 1)
    ]
    return make_ct(charge_bearer="DEBT", **INSTRUCTED, charges=charges)


def test_a_transfer_carries_at_most_charges_max_charges_and_reads_them_back() -> None:
    ct = _charged(CHARGES_MAX)
    assert parse_pacs008(pacs008(ct)) == ct

    with pytest.raises(InvalidMessageField, match=f"at most {CHARGES_MAX}") as caught:
        _charged(CHARGES_MAX + 1)
    assert caught.value.field == "charges"


@pytest.mark.parametrize("extra", [1, 2_000])
def test_parse_pacs008_refuses_more_charges_than_it_reads_before_reading_them(extra: int) -> None:
    """Found by a review: each charge was looked up by its position (``ChrgsInf[k]/Amt``, and
    three paths of its agent), which lxml's ElementPath resolves by listing every sibling of
    every candidate: cubic in the number of charges (200 took 4.6 s; one message within the
    1 MiB accepted, some 9,000 charges, kept a CPU busy for hours). ``ChrgsInf`` repeats
    without bound in the schema; the reader takes at most :data:`CHARGES_MAX` (each agent of
    a chain states its charges, and the scheme's own messages carry one), counted before any
    is read, and refuses more, naming them."""
    one = (
        b'<ChrgsInf><Amt Ccy="EUR">0.01</Amt><Agt><FinInstnId><Nm>Agent</Nm>'
        b"<Othr><Id>agent</Id></Othr></FinInstnId></Agt></ChrgsInf>"
    )
    xml = pacs008(_charged(CHARGES_MAX))
    at = xml.index(b"<ChrgsInf>")
    xml = xml[:at] + one * extra + xml[at:]

    with pytest.raises(MalformedMessage) as caught:
        parse_pacs008(xml)
    assert caught.value.field == "ChrgsInf"
    assert caught.value.detail == (
        f"pacs.008: ChrgsInf appears {CHARGES_MAX + extra} times; "
        f"at most {CHARGES_MAX} charges are read"
    )


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b"+250788123456", b"+" + b"2" * 35, "Dbtr/Id/PrvtId/Othr/Id"),
        (b"<CtryOfRes>FR<", b"<CtryOfRes>fr<", "Cdtr/CtryOfRes"),
        (FR_IBAN.encode(), b"FR00" + FR_IBAN[4:].encode(), "CdtrAcct/Id/IBAN"),
        (b">BKIGRWRWXXX<", b">BKIGRW1WXXX<", "DbtrAgt/FinInstnId/BICFI"),
        (b">bank-fr-1<", b">" + b"p" * 36 + b"<", "CdtrAgt/FinInstnId/Othr/Id"),
        (b">FXSGSGSGXXX<", b">fxsgsgsgxxx<", "IntrmyAgt1/FinInstnId/BICFI"),
        (b"<Nm>Entrepot scheme operator<", b"<Nm>" + b"n" * 141 + b"<",
         "ChrgsInf/Agt/FinInstnId/Nm"),
        (b"MSG-20240501-0001", b"M" * 36, "GrpHdr/MsgId"),
        (b"<ChrgBr>DEBT<", b"<ChrgBr>BOTH<", "ChrgBr"),
        (b"<XchgRate>1450.12<", b"<XchgRate>0.00000000001<", "XchgRate"),
    ],
    ids=["debtor-alias", "creditor-country", "creditor-iban", "debtor-agent-bic",
         "creditor-agent-id", "intermediary-bic", "charge-agent-name", "msgid", "charge-bearer",
         "rate"],
)  # fmt: skip
def test_a_value_the_model_refuses_is_reported_at_its_path(
    old: bytes, new: bytes, field: str
) -> None:
    """What the model refuses in a message read (an alias too long, a BIC out of pattern)
    was reported at the model's field name (``alias``, ``bic``), which did not say which of
    the two parties or four agents it was. It is reported at its element's path, as the
    reader's own errors are."""
    ct = dataclasses.replace(
        make_cross_currency(),
        charge_bearer="DEBT",
        charges=(SCHEME_FEE,),
        intermediary_agent=FX_PROVIDER,
    )
    with pytest.raises(MalformedMessage) as caught:
        parse_pacs008(_mutated(old, new, ct))
    assert caught.value.field == field
    assert caught.value.detail.startswith(f"pacs.008: {field}: ")


@pytest.mark.parametrize(
    ("old", "new", "field", "says"),
    [
        (b"</Cdtr>", b"</Cdtr><Cdtr><Id><OrgId/></Id></Cdtr>", "Cdtr", "appears 2 times"),
        (b"<PmtId>", b"<PmtId><ClrSysRef>R</ClrSysRef></PmtId><PmtId>", "PmtId",
         "appears 2 times"),
        (b"</CdtrAcct>", b"</CdtrAcct><CdtrAcct><Id><Othr><Id>X</Id></Othr></Id></CdtrAcct>",
         "CdtrAcct", "appears 2 times"),
        (b"<Purp>", b"<Purp><Prtry>OTHER</Prtry></Purp><Purp>", "Purp", "appears 2 times"),
        (b"</RmtInf>", b"</RmtInf><RmtInf><Ustrd>more</Ustrd></RmtInf>", "RmtInf",
         "appears 2 times"),
        (b"<PrvtId>", b"<OrgId/><PrvtId>", "Dbtr/Id", "both OrgId and PrvtId"),
        (b"<Cd>GDDS</Cd>", b"<Cd>GDDS</Cd><Prtry>OTHER</Prtry>", "Purp", "both Cd and Prtry"),
        (b"</IBAN>", b"</IBAN><Othr><Id>X</Id></Othr>", "CdtrAcct/Id", "both IBAN and Othr"),
    ],
    ids=["two-creditors", "two-payment-ids", "two-creditor-accounts", "two-purposes",
         "two-remittances", "organisation-and-person", "code-and-proprietary",
         "iban-and-other"],
)  # fmt: skip
def test_parse_pacs008_refuses_an_element_twice_or_both_of_a_choice(
    old: bytes, new: bytes, field: str, says: str
) -> None:
    """Found by a review: only the whole path of a value was checked for a second element,
    so a repeated element above it went unseen, and the two were read as one: a second
    ``Cdtr`` holding only ``Id/OrgId`` made the creditor an organisation (120,000 empty
    ``Cdtr`` were taken too), two ``RmtInf`` were joined into one remittance, a second
    ``Purp``, ``PmtId`` or ``CdtrAcct`` was passed over. And both branches of a choice were
    read as one of them: a party with both ``OrgId`` and ``PrvtId`` was an organisation and
    lost its alias, a purpose with both ``Cd`` and ``Prtry`` was its code. Each is refused,
    naming the element."""
    with pytest.raises(MalformedMessage, match=says) as caught:
        parse_pacs008(_mutated(old, new))
    assert caught.value.field == field
    assert caught.value.detail.startswith(f"pacs.008: {field} ")


@pytest.mark.parametrize(
    ("lines", "field", "says"),
    [
        ([b"x" * 141], "RmtInf/Ustrd", "141 characters; Max140Text allows at most 140"),
        ([b"x" * 140, b"y" * 141], "RmtInf/Ustrd[2]", "141 characters"),
        ([b"x", b""], "RmtInf/Ustrd[2]", "is empty"),
    ],
    ids=["one-long-line", "second-long-line", "empty-line"],
)
def test_parse_pacs008_refuses_a_remittance_line_longer_than_its_type(
    lines: list[bytes], field: str, says: str
) -> None:
    """Found by a review: each ``Ustrd`` is Max140Text, and a line of any length was taken
    (only the joined text was bounded, at 1,400), where every other text longer than its type
    is refused; an empty line was refused without saying which."""
    block = b"".join(b"<Ustrd>" + line + b"</Ustrd>" for line in lines)
    xml = _mutated(b"<Ustrd>Invoice 2024-117</Ustrd>", block)

    with pytest.raises(MalformedMessage, match=says) as caught:
        parse_pacs008(xml)
    assert caught.value.field == field
    assert caught.value.detail.startswith(f"pacs.008: {field} ")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b'<IntrBkSttlmAmt Ccy="EUR">', b"<IntrBkSttlmAmt>", "IntrBkSttlmAmt"),
        (b'<Amt Ccy="EUR">', b"<Amt>", "ChrgsInf/Amt"),
    ],
)
def test_an_amount_without_its_currency_says_so(old: bytes, new: bytes, field: str) -> None:
    """Found by a review: an amount without its ``Ccy`` attribute was refused as "malformed
    currency code 'None'", a value the message does not hold."""
    ct = make_ct(charge_bearer="DEBT", **INSTRUCTED, charges=[SCHEME_FEE])
    with pytest.raises(MalformedMessage) as caught:
        parse_pacs008(_mutated(old, new, ct))
    assert caught.value.field == field
    assert caught.value.detail == f"pacs.008: {field} has no Ccy attribute (its currency)"


def test_parse_pacs008_reads_a_transaction_count_with_leading_zeros() -> None:
    """Found by a review: ``NbOfTxs`` is Max15NumericText, so "01" is one transaction, and it
    was refused as "carries 1 transactions (NbOfTxs '01'); only single-transaction messages
    are supported"."""
    assert parse_pacs008(_mutated(b"<NbOfTxs>1<", b"<NbOfTxs>001<")) == make_ct()


@pytest.mark.parametrize("count", [b"one", b"1.0", b"+1", "\uff11".encode(), b"1" * 16])
def test_parse_pacs008_refuses_a_transaction_count_that_is_no_number(count: bytes) -> None:
    """... and a count that is no number was told it "carries 1 transactions"."""
    with pytest.raises(MalformedMessage, match="is not a number of 1 to 15 digits") as caught:
        parse_pacs008(_mutated(b"<NbOfTxs>1<", b"<NbOfTxs>" + count + b"<"))
    assert caught.value.field == "GrpHdr/NbOfTxs"


@pytest.mark.parametrize("markup", [b"<!-- generated by a bank's system -->", b"<?trace 42?>"])
def test_a_comment_beside_the_message_is_no_second_message(markup: bytes) -> None:
    """Found by a review: the document's children were counted with its comments and
    processing instructions, so a well-formed, valid message with a comment beside its one
    message element was refused as not holding exactly one. Another element is refused."""
    xml = _mutated(b"<FIToFICstmrCdtTrf>", markup + b"<FIToFICstmrCdtTrf>")
    assert parse_pacs008(xml) == make_ct()
    status = pacs002(make_status()).replace(b"<FIToFIPmtStsRpt>", markup + b"<FIToFIPmtStsRpt>")
    assert parse_pacs002(status) == make_status()

    with pytest.raises(MalformedMessage, match="must hold exactly one") as caught:
        parse_pacs008(_mutated(b"<FIToFICstmrCdtTrf>", b"<Other/><FIToFICstmrCdtTrf>"))
    assert caught.value.field == "FIToFICstmrCdtTrf"


@pytest.mark.parametrize("offset", ["+00:60", "+14:01", "-23:59", "+99:00"])
def test_parse_refuses_a_timezone_offset_the_schema_does_not_allow(offset: str) -> None:
    """Found by a review: an ISO date-time's offset is -14:00 to +14:00 and its minutes
    00-59 (XML Schema's dateTime); any two digits were taken and read as Python reads them:
    ``+00:60`` as an hour, ``-23:59`` a day's length away from what the schema allows."""
    old = b"2024-05-01T12:30:15+00:00"
    with pytest.raises(MalformedMessage, match="an offset from -14:00 to \\+14:00") as caught:
        parse_pacs008(_mutated(old, f"2024-05-01T12:30:15{offset}".encode()))
    assert caught.value.field == "GrpHdr/CreDtTm"

    for edge, hours in (("+14:00", -14), ("-14:00", 14), ("-00:30", 0.5)):
        read = parse_pacs008(_mutated(old, f"2024-05-01T12:30:15{edge}".encode()))
        assert read.created_at == CREATED + timedelta(hours=hours)


def test_parse_pacs008_refuses_two_transactions() -> None:
    root = etree.fromstring(pacs008(make_ct()))
    message = root[0]
    message.append(etree.fromstring(etree.tostring(message[1])))
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    with pytest.raises(MalformedMessage, match="carries 2 transactions"):
        parse_pacs008(xml)


def test_parse_pacs008_ignores_elements_it_does_not_model() -> None:
    xml = _mutated(
        b"<ChrgBr>SLEV</ChrgBr>",
        b"<ChrgBr>SLEV</ChrgBr><InstgAgt><FinInstnId><BICFI>BKIGRWRWXXX</BICFI>"
        b"</FinInstnId></InstgAgt>",
    )

    assert parse_pacs008(xml) == make_ct()


# --- pacs.002 ------------------------------------------------------------------------------

P2 = "/p:Document/p:FIToFIPmtStsRpt"
TS = f"{P2}/p:TxInfAndSts"


def test_pacs002_accepted() -> None:
    xml = pacs002(make_status())

    assert xml.startswith(DECLARATION)
    assert etree.fromstring(xml).nsmap == {None: NS_PACS002}
    assert value(xml, f"{P2}/p:GrpHdr/p:MsgId/text()", NS_PACS002) == "STS-0001"
    assert value(xml, f"{P2}/p:GrpHdr/p:CreDtTm/text()", NS_PACS002) == (
        "2024-05-01T12:30:17+00:00"
    )
    assert value(xml, f"{TS}/p:OrgnlGrpInf/p:OrgnlMsgId/text()", NS_PACS002) == (
        "MSG-20240501-0001"
    )
    assert value(xml, f"{TS}/p:OrgnlGrpInf/p:OrgnlMsgNmId/text()", NS_PACS002) == (
        "pacs.008.001.08"
    )
    assert value(xml, f"{TS}/p:OrgnlInstrId/text()", NS_PACS002) == UETR_HEX
    assert value(xml, f"{TS}/p:OrgnlEndToEndId/text()", NS_PACS002) == "E2E-ORDER-42"
    assert value(xml, f"{TS}/p:OrgnlTxId/text()", NS_PACS002) == UETR_HEX
    assert value(xml, f"{TS}/p:OrgnlUETR/text()", NS_PACS002) == UETR
    assert value(xml, f"{TS}/p:TxSts/text()", NS_PACS002) == "ACSC"
    assert values(xml, f"{TS}/p:StsRsnInf", NS_PACS002) == []
    assert element_paths(xml) == [
        "FIToFIPmtStsRpt",
        "FIToFIPmtStsRpt/GrpHdr",
        "FIToFIPmtStsRpt/GrpHdr/MsgId",
        "FIToFIPmtStsRpt/GrpHdr/CreDtTm",
        "FIToFIPmtStsRpt/TxInfAndSts",
        "FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf",
        "FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgId",
        "FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgNmId",
        "FIToFIPmtStsRpt/TxInfAndSts/OrgnlInstrId",
        "FIToFIPmtStsRpt/TxInfAndSts/OrgnlEndToEndId",
        "FIToFIPmtStsRpt/TxInfAndSts/OrgnlTxId",
        "FIToFIPmtStsRpt/TxInfAndSts/OrgnlUETR",
        "FIToFIPmtStsRpt/TxInfAndSts/TxSts",
    ]
    conforms(xml, PACS002_SUBSET_XSD)


def test_pacs002_rejected_with_reason() -> None:
    status = make_status(status="RJCT", reason_code="AM04", reason_text="Insufficient funds")
    xml = pacs002(status)

    assert value(xml, f"{TS}/p:TxSts/text()", NS_PACS002) == "RJCT"
    assert value(xml, f"{TS}/p:StsRsnInf/p:Rsn/p:Cd/text()", NS_PACS002) == "AM04"
    assert value(xml, f"{TS}/p:StsRsnInf/p:AddtlInf/text()", NS_PACS002) == ("Insufficient funds")
    assert element_paths(xml)[-5:] == [
        "FIToFIPmtStsRpt/TxInfAndSts/TxSts",
        "FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf",
        "FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn",
        "FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd",
        "FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/AddtlInf",
    ]
    assert_sequence_order(xml)
    conforms(xml, PACS002_SUBSET_XSD)


def test_pacs002_splits_a_long_reason_text_into_105_character_lines() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(250))
    status = make_status(status="RJCT", reason_code="AC04", reason_text=text)
    xml = pacs002(status)

    lines = values(xml, f"{TS}/p:StsRsnInf/p:AddtlInf/text()", NS_PACS002)
    assert [len(line) for line in lines] == [105, 105, 40]
    assert "".join(lines) == text
    assert parse_pacs002(xml) == status
    conforms(xml, PACS002_SUBSET_XSD)


@pytest.mark.parametrize(
    "status",
    [
        make_status(),
        make_status(status="ACSP"),
        make_status(status="PDNG", reason_text="held for sanctions review "),
        make_status(status="RJCT", reason_code="AM04", reason_text="Insufficient funds"),
        make_status(status="RJCT", reason_code="FF01"),
    ],
    ids=["acsc", "acsp", "pdng-text-only", "rjct-am04", "rjct-ff01"],
)
def test_pacs002_round_trip(status: TransferStatus) -> None:
    xml = pacs002(status)

    assert parse_pacs002(xml) == status
    conforms(xml, PACS002_SUBSET_XSD)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"status": "RJCT"}, "reason_code"),  # a rejection needs a reason
        ({"status": "DONE"}, "status"),
        ({"reason_code": "am04"}, "reason_code"),
        ({"reason_code": "AM4"}, "reason_code"),
        ({"reason_text": "x" * (REASON_TEXT_LEN_MAX + 1)}, "reason_text"),
        ({"original_transfer_id": "not-a-uuid"}, "original_transfer_id"),
        ({"original_end_to_end_id": "E" * 36}, "original_end_to_end_id"),
        ({"message_id": "M" * 36}, "message_id"),
    ],
)
def test_transfer_status_refuses_values_the_schema_forbids(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessageField) as caught:
        make_status(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        (b"<TxSts>ACSC</TxSts>", b"<TxSts>DONE</TxSts>", "status must be one of"),
        (b"<TxSts>ACSC</TxSts>", b"", "TxSts is missing"),
        (UETR.encode(), b"nope", "not a UETR"),
        (NS_PACS002.encode(), NS_PACS008.encode(), "root element"),
    ],
)
def test_parse_pacs002_refuses_malformed_messages(old: bytes, new: bytes, match: str) -> None:
    xml = pacs002(make_status())
    assert xml.count(old) == 1
    with pytest.raises(MalformedMessage, match=match):
        parse_pacs002(xml.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b">ACSC<", b">DONE<", "TxSts"),
        (b">STS-0001<", b">" + b"S" * 36 + b"<", "GrpHdr/MsgId"),
        (UETR.encode(), UETR.upper().encode(), "OrgnlUETR"),
    ],
    ids=["status", "msgid", "uetr"],
)
def test_a_status_value_the_model_refuses_is_reported_at_its_path(
    old: bytes, new: bytes, field: str
) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_pacs002(_pacs002_mutated(old, new))
    assert caught.value.field == field
    assert caught.value.detail.startswith(f"pacs.002: {field}: ")


def test_parse_pacs002_refuses_two_status_reasons() -> None:
    """Found by a review: a second ``StsRsnInf`` (the schema lets it repeat; the reader takes
    one reason) had its ``AddtlInf`` joined to the first reason's text."""
    rejected = make_status(status="RJCT", reason_code="AM04", reason_text="limit")
    xml = _pacs002_mutated(
        b"</StsRsnInf>", b"</StsRsnInf><StsRsnInf><AddtlInf>more</AddtlInf></StsRsnInf>", rejected
    )

    with pytest.raises(MalformedMessage, match="StsRsnInf appears 2 times") as caught:
        parse_pacs002(xml)
    assert caught.value.field == "StsRsnInf"


@pytest.mark.parametrize(
    ("line", "field", "says"),
    [
        (b"<AddtlInf>" + b"y" * 106 + b"</AddtlInf>", "StsRsnInf/AddtlInf[2]",
         "106 characters; Max105Text allows at most 105"),
        (b"<AddtlInf/>", "StsRsnInf/AddtlInf[2]", "is empty"),
    ],
    ids=["long-line", "empty-line"],
)  # fmt: skip
def test_parse_pacs002_refuses_a_reason_line_longer_than_its_type(
    line: bytes, field: str, says: str
) -> None:
    """Found by a review: each ``AddtlInf`` is Max105Text (1-105 characters); a line of any
    length, or none, was taken and joined into the reason."""
    rejected = make_status(status="RJCT", reason_code="AM04", reason_text="limit")
    xml = _pacs002_mutated(b"</StsRsnInf>", line + b"</StsRsnInf>", rejected)

    with pytest.raises(MalformedMessage, match=says) as caught:
        parse_pacs002(xml)
    assert caught.value.field == field
    assert caught.value.detail.startswith(f"pacs.002: {field} ")


@pytest.mark.parametrize("name", ["camt.056.001.08", "pacs.004.001.09", "pacs.0080"])
def test_parse_pacs002_refuses_a_status_of_another_message(name: str) -> None:
    """Found by a review: a status report names the message it reports on (``OrgnlMsgNmId``)
    and the reader did not look: a rejected cancellation request (camt.056) or return
    (pacs.004) of the same UETR was read as the credit transfer's rejection, and written
    back as a status of a pacs.008."""
    old = b"<OrgnlMsgNmId>pacs.008.001.08<"
    with pytest.raises(MalformedMessage, match="reports on") as caught:
        parse_pacs002(_pacs002_mutated(old, f"<OrgnlMsgNmId>{name}<".encode()))
    assert caught.value.field == "OrgnlGrpInf/OrgnlMsgNmId"

    other_version = _pacs002_mutated(old, b"<OrgnlMsgNmId>pacs.008.001.09<")
    assert parse_pacs002(other_version) == make_status()


def test_parse_pacs002_refuses_two_statuses() -> None:
    root = etree.fromstring(pacs002(make_status()))
    root[0].append(etree.fromstring(etree.tostring(root[0][1])))

    with pytest.raises(MalformedMessage, match="exactly one transaction"):
        parse_pacs002(etree.tostring(root))


# --- camt.053 ------------------------------------------------------------------------------

ST = "/p:Document/p:BkToCstmrStmt/p:Stmt"


def test_camt053_balances_entries_and_sums() -> None:
    xml = camt053(make_statement())

    assert xml.startswith(DECLARATION)
    assert etree.fromstring(xml).nsmap == {None: NS_CAMT053}
    grp = "/p:Document/p:BkToCstmrStmt/p:GrpHdr"
    assert value(xml, f"{grp}/p:MsgId/text()", NS_CAMT053) == "STMT-MSG-1"
    assert value(xml, f"{ST}/p:Id/text()", NS_CAMT053) == "STMT-2024-05-01"
    assert value(xml, f"{ST}/p:FrToDt/p:FrDtTm/text()", NS_CAMT053) == ("2024-05-01T00:00:00+00:00")
    assert value(xml, f"{ST}/p:FrToDt/p:ToDtTm/text()", NS_CAMT053) == ("2024-05-02T00:00:00+00:00")
    assert value(xml, f"{ST}/p:Acct/p:Id/p:Othr/p:Id/text()", NS_CAMT053) == (
        "settlement-bank-fr-1-EUR"
    )
    assert value(xml, f"{ST}/p:Acct/p:Ccy/text()", NS_CAMT053) == "EUR"
    owner = f"{ST}/p:Acct/p:Ownr"
    assert value(xml, f"{owner}/p:Nm/text()", NS_CAMT053) == "Banque de Paris"
    assert value(xml, f"{owner}/p:Id/p:OrgId/p:AnyBIC/text()", NS_CAMT053) == "BNPAFRPPXXX"
    assert value(xml, f"{owner}/p:Id/p:OrgId/p:Othr/p:Id/text()", NS_CAMT053) == "bank-fr-1"

    opening = f"{ST}/p:Bal[p:Tp/p:CdOrPrtry/p:Cd='OPBD']"
    closing = f"{ST}/p:Bal[p:Tp/p:CdOrPrtry/p:Cd='CLBD']"
    assert value(xml, f"{opening}/p:Amt/text()", NS_CAMT053) == "100.00"
    assert value(xml, f"{opening}/p:Amt/@Ccy", NS_CAMT053) == "EUR"
    assert value(xml, f"{opening}/p:CdtDbtInd/text()", NS_CAMT053) == "CRDT"
    assert value(xml, f"{opening}/p:Dt/p:DtTm/text()", NS_CAMT053) == "2024-05-01T00:00:00+00:00"
    assert value(xml, f"{closing}/p:Amt/text()", NS_CAMT053) == "159.50"
    assert value(xml, f"{closing}/p:CdtDbtInd/text()", NS_CAMT053) == "CRDT"
    assert value(xml, f"{closing}/p:Dt/p:DtTm/text()", NS_CAMT053) == "2024-05-02T00:00:00+00:00"

    summary = f"{ST}/p:TxsSummry"
    assert value(xml, f"{summary}/p:TtlNtries/p:NbOfNtries/text()", NS_CAMT053) == "3"
    assert value(xml, f"{summary}/p:TtlNtries/p:Sum/text()", NS_CAMT053) == "65.50"
    assert value(xml, f"{summary}/p:TtlNtries/p:TtlNetNtry/p:Amt/text()", NS_CAMT053) == "59.50"
    assert value(xml, f"{summary}/p:TtlNtries/p:TtlNetNtry/p:CdtDbtInd/text()", NS_CAMT053) == (
        "CRDT"
    )
    assert value(xml, f"{summary}/p:TtlCdtNtries/p:NbOfNtries/text()", NS_CAMT053) == "2"
    assert value(xml, f"{summary}/p:TtlCdtNtries/p:Sum/text()", NS_CAMT053) == "62.50"
    assert value(xml, f"{summary}/p:TtlDbtNtries/p:NbOfNtries/text()", NS_CAMT053) == "1"
    assert value(xml, f"{summary}/p:TtlDbtNtries/p:Sum/text()", NS_CAMT053) == "3.00"

    assert values(xml, f"{ST}/p:Ntry/p:NtryRef/text()", NS_CAMT053) == ["E1", "E2", "E3"]
    assert values(xml, f"{ST}/p:Ntry/p:Amt/text()", NS_CAMT053) == ["12.50", "3.00", "50.00"]
    assert values(xml, f"{ST}/p:Ntry/p:CdtDbtInd/text()", NS_CAMT053) == ["CRDT", "DBIT", "CRDT"]
    assert values(xml, f"{ST}/p:Ntry/p:Sts/p:Cd/text()", NS_CAMT053) == ["BOOK"] * 3
    assert values(xml, f"{ST}/p:Ntry/p:BookgDt/p:DtTm/text()", NS_CAMT053) == [
        "2024-05-01T09:00:00+00:00",
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T23:59:59.999999+00:00",
    ]
    families = f"{ST}/p:Ntry/p:BkTxCd/p:Domn/p:Fmly/p:Cd/text()"
    assert values(xml, families, NS_CAMT053) == ["RCDT", "ICDT", "RCDT"]
    tx = f"{ST}/p:Ntry/p:NtryDtls/p:TxDtls"
    assert values(xml, f"{tx}/p:Refs/p:UETR/text()", NS_CAMT053) == [UETR, OTHER_UETR]
    assert values(xml, f"{tx}/p:RltdPties/p:Dbtr/p:Pty/p:Nm/text()", NS_CAMT053) == ["Amina Uwase"]
    assert values(xml, f"{tx}/p:RltdPties/p:Cdtr/p:Pty/p:Nm/text()", NS_CAMT053) == ["Scheme fees"]
    assert values(xml, f"{tx}/p:RmtInf/p:Ustrd/text()", NS_CAMT053) == ["Invoice 2024-117"]


def test_camt053_sums_are_consistent_with_the_balances() -> None:
    xml = camt053(make_statement())

    def minor(text: str) -> int:
        return int(Decimal(text) * 100)

    amounts = [minor(t) for t in values(xml, f"{ST}/p:Ntry/p:Amt/text()", NS_CAMT053)]
    signs = [
        1 if d == "CRDT" else -1 for d in values(xml, f"{ST}/p:Ntry/p:CdtDbtInd/text()", NS_CAMT053)
    ]
    opening = minor(value(xml, f"{ST}/p:Bal[1]/p:Amt/text()", NS_CAMT053))
    closing = minor(value(xml, f"{ST}/p:Bal[2]/p:Amt/text()", NS_CAMT053))
    assert opening + sum(a * s for a, s in zip(amounts, signs, strict=True)) == closing
    assert minor(value(xml, f"{ST}/p:TxsSummry/p:TtlNtries/p:Sum/text()", NS_CAMT053)) == sum(
        amounts
    )


def test_camt053_element_order_is_the_schema_sequence() -> None:
    xml = camt053(make_statement())
    stmt = "BkToCstmrStmt/Stmt"
    paths = element_paths(xml)

    assert paths[:13] == [
        "BkToCstmrStmt",
        "BkToCstmrStmt/GrpHdr",
        "BkToCstmrStmt/GrpHdr/MsgId",
        "BkToCstmrStmt/GrpHdr/CreDtTm",
        stmt,
        f"{stmt}/Id",
        f"{stmt}/CreDtTm",
        f"{stmt}/FrToDt",
        f"{stmt}/FrToDt/FrDtTm",
        f"{stmt}/FrToDt/ToDtTm",
        f"{stmt}/Acct",
        f"{stmt}/Acct/Id",
        f"{stmt}/Acct/Id/Othr",
    ]
    children = [etree.QName(c).localname for c in etree.fromstring(xml)[0][1]]
    assert children == ["Id", "CreDtTm", "FrToDt", "Acct", "Bal", "Bal", "TxsSummry"] + ["Ntry"] * 3
    first_entry = [p for p in paths if p.startswith(f"{stmt}/Ntry")][:22]
    assert [p.removeprefix(f"{stmt}/") for p in first_entry] == [
        "Ntry",
        "Ntry/NtryRef",
        "Ntry/Amt",
        "Ntry/CdtDbtInd",
        "Ntry/Sts",
        "Ntry/Sts/Cd",
        "Ntry/BookgDt",
        "Ntry/BookgDt/DtTm",
        "Ntry/BkTxCd",
        "Ntry/BkTxCd/Domn",
        "Ntry/BkTxCd/Domn/Cd",
        "Ntry/BkTxCd/Domn/Fmly",
        "Ntry/BkTxCd/Domn/Fmly/Cd",
        "Ntry/BkTxCd/Domn/Fmly/SubFmlyCd",
        "Ntry/NtryDtls",
        "Ntry/NtryDtls/TxDtls",
        "Ntry/NtryDtls/TxDtls/Refs",
        "Ntry/NtryDtls/TxDtls/Refs/UETR",
        "Ntry/NtryDtls/TxDtls/Amt",
        "Ntry/NtryDtls/TxDtls/CdtDbtInd",
        "Ntry/NtryDtls/TxDtls/RltdPties",
        "Ntry/NtryDtls/TxDtls/RltdPties/Dbtr",
    ]
    assert_sequence_order(xml)
    conforms(xml, CAMT053_SUBSET_XSD)


def test_camt053_negative_balances_are_debits_and_rwf_has_no_decimals() -> None:
    entries = [
        StatementEntry(
            entry_ref="R1", booked_at=FROM_DT, amount_minor=2500, currency="RWF", credit=False
        )
    ]
    statement = make_statement(
        currency="RWF",
        account_iban=DE_IBAN,
        owner=KIGALI,
        opening_balance_minor=-1000,
        closing_balance_minor=-3500,
        entries=entries,
    )
    xml = camt053(statement)

    assert values(xml, f"{ST}/p:Bal/p:Amt/text()", NS_CAMT053) == ["1000", "3500"]
    assert values(xml, f"{ST}/p:Bal/p:CdtDbtInd/text()", NS_CAMT053) == ["DBIT", "DBIT"]
    assert value(xml, f"{ST}/p:Acct/p:Id/p:IBAN/text()", NS_CAMT053) == DE_IBAN
    assert value(xml, f"{ST}/p:Ntry/p:Amt/text()", NS_CAMT053) == "2500"
    assert values(xml, f"{ST}/p:Ntry/p:NtryDtls", NS_CAMT053) == []
    net = f"{ST}/p:TxsSummry/p:TtlNtries/p:TtlNetNtry"
    assert value(xml, f"{net}/p:Amt/text()", NS_CAMT053) == "2500"
    assert value(xml, f"{net}/p:CdtDbtInd/text()", NS_CAMT053) == "DBIT"
    assert value(xml, f"{ST}/p:TxsSummry/p:TtlCdtNtries/p:Sum/text()", NS_CAMT053) == "0"
    conforms(xml, CAMT053_SUBSET_XSD)


def test_camt053_without_entries() -> None:
    xml = camt053(make_statement(closing_balance_minor=10_000, entries=[]))

    assert values(xml, f"{ST}/p:Ntry", NS_CAMT053) == []
    assert value(xml, f"{ST}/p:TxsSummry/p:TtlNtries/p:NbOfNtries/text()", NS_CAMT053) == "0"
    conforms(xml, CAMT053_SUBSET_XSD)


def test_a_statements_period_is_half_open() -> None:
    """``[from_dt, to_dt)``: an entry booked at ``from_dt`` is in it, one booked at ``to_dt``
    the next period's (refused above); a period may be empty (``from_dt == to_dt``)."""
    at_start = _entry(booked_at=FROM_DT)
    statement = make_statement(entries=[at_start], closing_balance_minor=10_000 - 300)
    assert statement.entries == (at_start,)
    empty = make_statement(to_dt=FROM_DT, entries=[], closing_balance_minor=10_000)
    conforms(camt053(empty), CAMT053_SUBSET_XSD)
    with pytest.raises(InvalidMessageField, match=r"outside the statement period \[2024-05-01"):
        make_statement(to_dt=FROM_DT, entries=[at_start], closing_balance_minor=10_000 - 300)


def test_camt053_entry_bank_transaction_codes_say_what_it_books() -> None:
    """A credit transfer is PMNT/RCDT or ICDT, sub-family OTHR; a charge (the scheme's
    fee) the generic sub-family CHRG; a movement that is no payment PMNT/MCOP or MDOP."""
    kinds = [("transfer", True), ("transfer", False), ("charge", True), ("charge", False),
             ("other", True), ("other", False)]  # fmt: skip
    entries = [
        StatementEntry(
            entry_ref=f"E{n}",
            booked_at=FROM_DT,
            amount_minor=100,
            currency="EUR",
            credit=credit,
            kind=kind,
        )
        for n, (kind, credit) in enumerate(kinds)
    ]
    xml = camt053(make_statement(entries=entries, closing_balance_minor=10_000))
    code = f"{ST}/p:Ntry/p:BkTxCd/p:Domn"

    assert values(xml, f"{code}/p:Cd/text()", NS_CAMT053) == ["PMNT"] * 6
    assert values(xml, f"{code}/p:Fmly/p:Cd/text()", NS_CAMT053) == [
        "RCDT", "ICDT", "RCDT", "ICDT", "MCOP", "MDOP"
    ]  # fmt: skip
    assert values(xml, f"{code}/p:Fmly/p:SubFmlyCd/text()", NS_CAMT053) == [
        "OTHR", "OTHR", "CHRG", "CHRG", "OTHR", "OTHR"
    ]  # fmt: skip
    assert_sequence_order(xml)
    conforms(xml, CAMT053_SUBSET_XSD)


def test_statement_stores_entries_as_a_tuple() -> None:
    statement = make_statement()

    assert isinstance(statement.entries, tuple)
    assert statement == make_statement(entries=tuple(make_entries()))


def _entry(**changes: Any) -> StatementEntry:
    return dataclasses.replace(make_entries()[1], **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"closing_balance_minor": 15_951}, "closing_balance_minor"),
        ({"entries": [*make_entries(), _entry(entry_ref="E4", currency="RWF")]}, "entries[3]"),
        (
            {"entries": [*make_entries(), _entry(entry_ref="E4", booked_at=TO_DT + timedelta(1))]},
            "entries[3]",
        ),
        # the period is half-open: an entry booked at its end is the next period's
        ({"entries": [*make_entries(), _entry(entry_ref="E4", booked_at=TO_DT)]}, "entries[3]"),
        (
            {
                "entries": [
                    *make_entries(),
                    _entry(entry_ref="E4", booked_at=FROM_DT - timedelta(microseconds=1)),
                ]
            },
            "entries[3]",
        ),
        ({"entries": [*make_entries(), _entry()]}, "entries[3]"),  # E2 twice
        ({"from_dt": TO_DT + timedelta(seconds=1)}, "from_dt"),
        ({"account_id": "a" * 35}, "account_id"),
        ({"account_iban": "FR1420041010050500013M02607"}, "account_iban"),
        ({"opening_balance_minor": -(10**18)}, "opening_balance_minor"),
        ({"to_dt": datetime(2024, 5, 2)}, "to_dt"),
        ({"entries": "E1"}, "entries"),
    ],
)
def test_statement_refuses_inconsistent_or_inexpressible_values(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessageField) as caught:
        make_statement(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"status": "PDNG"}, "status"),
        ({"amount_minor": -1}, "amount_minor"),
        ({"credit": 1}, "credit"),
        ({"transfer_id": "x"}, "transfer_id"),
        ({"counterparty": "c" * 141}, "counterparty"),
        ({"entry_ref": "r" * 36}, "entry_ref"),
        ({"kind": "fee"}, "kind"),
    ],
)
def test_statement_entry_refuses_values_the_schema_forbids(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidMessageField) as caught:
        _entry(**changes)
    assert caught.value.field == field


# --- schema validation ---------------------------------------------------------------------


def test_validate_catches_an_element_out_of_sequence() -> None:
    root = etree.fromstring(pacs008(make_ct()))
    tx = root[0][1]
    charge_bearer = tx.find(f"{{{NS_PACS008}}}ChrgBr")
    tx.remove(charge_bearer)
    tx.insert(1, charge_bearer)  # before IntrBkSttlmAmt
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    with pytest.raises(SchemaViolation, match="ChrgBr") as caught:
        validate(xml, PACS008_SUBSET_XSD)
    assert isinstance(caught.value, InvalidInput)


def test_validate_catches_a_value_outside_its_type() -> None:
    xml = pacs002(make_status()).replace(b"<TxSts>ACSC</TxSts>", b"<TxSts>ACSCX</TxSts>")

    with pytest.raises(SchemaViolation, match="TxSts"):
        validate(xml, PACS002_SUBSET_XSD)


@pytest.mark.parametrize(
    ("message", "make", "good", "bad", "element"),
    [
        # an identifier longer than Max35Text, which the builders refuse before writing
        ("pacs.008.001.08", lambda: pacs008(make_ct()), b"<MsgId>MSG-20240501-0001<",
         b"<MsgId>" + b"M" * 36 + b"<", "MsgId"),
        # a currency the ActiveCurrencyCode pattern ([A-Z]{3}) does not match
        ("camt.053.001.08", lambda: camt053(make_statement()), b'Ccy="EUR"', b'Ccy="eur"', "Ccy"),
    ],
)  # fmt: skip
def test_the_official_schema_refuses_what_the_message_definition_forbids(
    message: str, make: Any, good: bytes, bad: bytes, element: str
) -> None:
    """The official XSDs (tests/iso20022_official.py) are read and enforced: a value the
    message definition forbids is a SchemaViolation naming it."""
    xml = make()
    assert good in xml
    validate(xml, official_xsd(message))
    with pytest.raises(SchemaViolation, match=element):
        validate(xml.replace(good, bad, 1), official_xsd(message))


def test_a_statement_of_the_schemes_own_larger_than_a_received_message_may_be_validates() -> None:
    """Found by a review: ``validate`` parsed with the bound on messages received (1 MiB),
    so a statement of 1,400 entries of the scheme's own making (camt.053 goes to 50,000) was
    refused as malformed, and the tests could never check one of a real size."""
    entries = [
        dataclasses.replace(e, entry_ref=f"E{i}-{e.entry_ref}", amount_minor=1)
        for i in range(500)
        for e in make_entries()
    ]
    credits = sum(1 for e in entries if e.credit)
    statement = make_statement(
        entries=entries, closing_balance_minor=10_000 + credits - (len(entries) - credits)
    )
    xml = camt053(statement)
    assert len(xml) > MESSAGE_BYTES_MAX
    validate(xml, CAMT053_SUBSET_XSD)
    validate(xml, official_xsd("camt.053.001.08"))
    with pytest.raises(InvalidInput, match="more than the 1048576 accepted"):
        validate(xml, CAMT053_SUBSET_XSD, size_max=MESSAGE_BYTES_MAX)  # one from outside


def test_validate_needs_a_readable_schema(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError):
        validate(pacs002(make_status()), tmp_path / "missing.xsd")


def test_camt053_entry_carries_the_servicers_reference_after_its_booking_date() -> None:
    entry = dataclasses.replace(make_entries()[1], servicer_ref="0f" * 16)
    xml = camt053(make_statement(entries=[entry], closing_balance_minor=9_700))

    assert value(xml, f"{ST}/p:Ntry/p:AcctSvcrRef/text()", NS_CAMT053) == "0f" * 16
    children = [etree.QName(c).localname for c in etree.fromstring(xml)[0][1][-1]]
    assert children[children.index("BookgDt") + 1] == "AcctSvcrRef"
    conforms(xml, CAMT053_SUBSET_XSD)
    with pytest.raises(InvalidMessageField, match="servicer_ref"):
        dataclasses.replace(entry, servicer_ref="x" * 36)


def test_pacs008_without_a_settlement_date_has_no_intrbksttlmdt() -> None:
    """IntrBkSttlmDt is optional ([0..1]); a transfer whose settlement day is not known yet
    leaves it out rather than guess one."""
    xml = pacs008(make_ct(settlement_date=None))

    assert values(xml, f"{TX}/p:IntrBkSttlmDt", NS_PACS008) == []
    assert_sequence_order(xml)
    conforms(xml, PACS008_SUBSET_XSD)


# --- hostile input the parsers met (found by a review; no route parses one yet) ------------


@pytest.mark.parametrize(
    ("good", "bad", "detail"),
    [
        # a date-time out of range once in UTC: OverflowError, not a refusal
        (b"<CreDtTm>2024-05-01T12:30:15+00:00<", b"<CreDtTm>9999-12-31T23:59:59-01:00<",
         "CreDtTm"),
        # text split by a comment: the schema read 1250.00, the parser .text "1" (EUR 1.00)
        (b">12.50<", b">1<!-- x -->2.50<", "markup"),
        (b">E2E-ORDER-42<", b">E2E<!---->-ORDER-42<", "markup"),
        # a second settlement amount: the first was used, silently
        (b"</IntrBkSttlmAmt>", b'</IntrBkSttlmAmt><IntrBkSttlmAmt Ccy="EUR">9.00</IntrBkSttlmAmt>',
         "2 times"),
    ],
    ids=["datetime-overflow", "amount-split", "id-split", "duplicate"],
)  # fmt: skip
def test_hostile_pacs008_is_malformed_not_misread(good: bytes, bad: bytes, detail: str) -> None:
    xml = pacs008(make_ct())
    assert good in xml
    with pytest.raises(MalformedMessage, match=detail):
        parse_pacs008(xml.replace(good, bad, 1))


def test_a_rate_too_large_for_xchgrate_is_refused_not_a_decimal_error() -> None:
    with pytest.raises(InvalidMessageField, match="digits before the point"):
        fit_exchange_rate(Decimal("1E+29"))


# --- error details quote received input at a bounded length --------------------------------

#: A hostile value: up to a MiB of it fits a message parse_* accepts
LONG = "A" * 500_000
#: The most an error detail may run to: the message's own words plus a bounded quote
DETAIL_BOUND = 400


def _pacs002_mutated(old: bytes, new: bytes, status: TransferStatus | None = None) -> bytes:
    xml = pacs002(status or make_status())
    assert xml.count(old) == 1, old
    return xml.replace(old, new)


@pytest.mark.parametrize(
    ("parse", "xml", "says"),
    [
        (parse_pacs008, _mutated(UETR.encode(), LONG.encode()), "is not a UETR"),
        (parse_pacs008, _mutated(b">SLEV<", f">{LONG}<".encode()), "charge_bearer must be one of"),
        (parse_pacs008, _mutated(b">2024-05-01T12:30:15+00:00<", f">{LONG}<".encode()),
         "GrpHdr/CreDtTm"),
        (parse_pacs008, _mutated(b">2024-05-01<", f">{LONG}<".encode()), "is not an ISO date"),
        (parse_pacs008, _mutated(b">1450.12<", f">{LONG}<".encode(), make_cross_currency()),
         "is not a plain decimal number"),
        (parse_pacs008, _mutated(b">12.50<", f">{'1' * 3_000}<".encode()),
         "IntrBkSttlmAmt: amount_minor"),
        (parse_pacs008, _mutated(b'Ccy="EUR"', f'Ccy="{LONG}"'.encode()), "currency code"),
        (parse_pacs008, _mutated(b"<NbOfTxs>1<", f"<NbOfTxs>{LONG}<".encode()),
         "is not a number of 1 to 15 digits"),
        (parse_pacs008, _mutated(NS_PACS008.encode(), f"urn:{LONG}".encode()), "root element"),
        (parse_pacs008, _mutated(b">BKIGRWRWXXX<", f">{LONG}<".encode()), "does not match"),
        (parse_pacs008, _mutated(b"<CtryOfRes>RW<", f"<CtryOfRes>{LONG}<".encode()),
         "does not match"),
        (parse_pacs008, _mutated(FR_IBAN.encode(), LONG.encode()), "does not match"),
        (parse_pacs008, f"<{LONG[:40_000]}><x></{LONG[:40_000]}>".encode(),
         "not well-formed XML: Opening and ending tag mismatch: x line 1 and AAA"),
        (parse_pacs002, _pacs002_mutated(b">ACSC<", f">{LONG}<".encode()), "status must be one of"),
        (parse_pacs002, _pacs002_mutated(b">AM04<", f">{LONG}<".encode(),
                                         make_status(status="RJCT", reason_code="AM04")),
         "reason_code must be"),
    ],
    ids=["uetr", "charge-bearer", "datetime", "date", "rate", "amount", "currency",
         "nb-of-txs", "namespace", "bic", "country", "iban", "syntax", "status", "reason"],
)  # fmt: skip
def test_an_error_quotes_received_input_at_a_bounded_length(
    parse: Any, xml: bytes, says: str
) -> None:
    """The readers' errors quoted what they refused whole: a value up to the MiB a message
    may hold, echoed into a problem+json detail and every log line that records it. A quote
    is now its first 64 characters, '...' and how long it is; the detail still says what is
    wrong and where."""
    assert len(xml) <= MESSAGE_BYTES_MAX
    with pytest.raises(MalformedMessage) as caught:
        parse(xml)
    detail = caught.value.detail
    assert says in detail
    assert len(detail) <= DETAIL_BOUND, detail[:DETAIL_BOUND]
    assert "A" * 65 not in detail and "1" * 65 not in detail


def test_a_quoted_value_says_how_long_it_was() -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_pacs008(_mutated(b">SLEV<", f">{LONG}<".encode()))
    assert f"'{'A' * 64}'... (500000 characters)" in caught.value.detail
    # a short value is quoted whole, as before
    with pytest.raises(MalformedMessage, match=r"got 'XXXX'$"):
        parse_pacs008(_mutated(b">SLEV<", b">XXXX<"))


def test_a_schema_violation_quotes_the_value_at_a_bounded_length() -> None:
    """libxml2 quotes a value a pattern refuses whole."""
    xml = _pacs002_mutated(f">{UETR}<".encode(), f">{LONG}<".encode())
    with pytest.raises(SchemaViolation, match=r"OrgnlUETR.*pattern.*The value 'A+\.\.\.") as caught:
        validate(xml, PACS002_SUBSET_XSD)
    assert len(caught.value.detail) <= DETAIL_BOUND
    assert "A" * 65 not in caught.value.detail


def test_an_errors_detail_is_bounded_whatever_it_quotes() -> None:
    """A backstop under the quotes: no detail of this module's errors runs past 1,000
    characters (and '...')."""
    assert len(MalformedMessage("x" * 10_000).detail) == 1_003
    assert MalformedMessage("short", field="f").detail == "short"
