"""Every ``entrepot`` command, driven with bad input: unknown ids, malformed amounts, unknown
currencies, bad dates, empty and blank text, missing, non-UTF-8 and malformed files, options out
of range. Each command of the Typer app has an entry in ``CASES`` (a command added without one
fails ``test_every_command_has_bad_input_cases``); each bad invocation must exit non-zero (2
for bad input, 1 for what is not found or refused), say what is wrong in one line on stderr
(``error: ...``, or Click's ``Error: ...`` for what it refuses while parsing), print no
traceback, and leave every table and the decision log as they were.

The world they run against is built once (the seed's network with a merchant, a buyer, an
order in dispute, a payment, an escrow, a closed window, a credential, a loan, ledger accounts
and a pending transfer), so an id that exists reaches the checks behind the lookup."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from entrepot.entrypoints.cli.main import app
from entrepot.entrypoints.cli.output import open_app
from entrepot.ledger import Account, Transfer, TransferFlags
from entrepot.payments import SCHEME, qr
from entrepot.payments.credentials import issue_credential
from entrepot.risk.decisions import JsonlSink
from entrepot.risk.lending import CreditPolicy, Lending, MerchantHistory
from entrepot.sim.trade_network import build_trade_network
from tests.conftest import (
    POSTGRES_URL,
    create_postgres_schema,
    drop_postgres_schema,
    postgres_schema_url,
)
from tests.risk.test_lending_cli import HISTORY, POLICY
from tests.trade.network import Net

M = "merchant:m-inzozi"
B = "buyer:b-aisyah"
HUGE = "9" * 40
#: Refused before anything else runs (a long simulation, a server, a benchmark)
NO_DATABASE = object()


@dataclass(frozen=True)
class Bad:
    """One bad invocation: ``args`` (``{name}`` is a file of ``FILES``), the words its error
    line must hold (any case), and its exit code."""

    args: str
    says: tuple[str, ...]
    code: int = 2
    #: tables a refusal writes by design
    writes: tuple[str, ...] = ()


#: A QR whose tag 62 asks the payer for its bill number
_PROMPTING = qr.build_merchant_qr(
    merchant_alias="KL-TILL-42", mcc="5812", currency="MYR", country="MY",
    merchant_name="Kedai", city="KL", amount_minor=1000, bill_number="***",
).text  # fmt: skip


def bad(args: str, *says: str) -> Bad:
    return Bad(args, says, 2)


def refused(args: str, *says: str) -> Bad:
    """Well-formed, but naming what does not exist or may not be done: exit 1."""
    return Bad(args, says, 1)


def ledger_result(args: str, *says: str) -> Bad:
    """A ledger result other than ok (exit 1): the batch took a timestamp (``ledger_meta``)
    and a failed transfer's id is remembered, so a retry answers ``id_already_failed``
    (docs/ledger.md, TigerBeetle's rule), by design."""
    return Bad(args, says, 1, ("ledger_failed_transfers", "ledger_meta"))


#: Files the invocations name as ``{name}``: text, or None for a path that does not exist
FILES: dict[str, str | bytes | None] = {
    "missing": None,
    "latin1": b"name,dob\n\xe9t\xe9,1970-01-01\n",
    "empty": "",
    "wrong_columns": "foo,bar\n1,2\n",
    "accounts_bad_code": "id,currency,code\n100,EUR,x\n",
    "accounts_bad_currency": "id,currency,code\n100,XYZ,1\n",
    "transfers_bad_amount": "id,debit_account_id,credit_account_id,amount,currency,code\n"
    "20,2,1,1e3,EUR,1\n",
    "transfers_negative": "id,debit_account_id,credit_account_id,amount,currency,code\n"
    "20,2,1,-5,EUR,1\n",
    "bulk_short": "t-b1,MSISDN\n",
    "bulk_bad_amount": "t-b1,MSISDN,+60123456789,12.345\n",
    "bulk_negative": "t-b1,MSISDN,+60123456789,-5\n",
    "not_json": "{",
    "json_list": "[]",
    "policy_types": json.dumps({**POLICY, "fee_bps": "lots"}),
    "policy_good": json.dumps(POLICY),
    "policy_empty": "{}",
    "history_types": json.dumps({**HISTORY, "merchant_id": "m-kigali-1", "tenure_days": "x"}),
    "history_bad_date": '{"merchant_id": "m-kigali-1", "currency": "RWF", "as_of": "yesterday"}',
    "credit_no_target": "a,b\n1,2\n3,4\n",
    "parties_no_name": "who,dob\nAlice,1970-01-01\n",
    "parties_bad_dob": "name,dob\nAlice,1970-13-45\n",
    "npz_garbage": "not an npz",
}

CASES: dict[str, tuple[Bad, ...]] = {
    # ------------------------------------------------------------------ top level
    "serve": (
        bad("serve --scheduling fifo", "--scheduling", "fifo"),
        bad("serve --port abc", "--port", "integer"),
        bad("serve --workers 0", "--workers"),
        bad("serve --deadlines-every -1", "--deadlines-every"),
        bad("serve --deadlines-every inf", "--deadlines-every"),
        bad("serve --deadlines-every nan", "--deadlines-every"),
    ),
    "demo": (
        bad("demo --transfers -1", "--transfers"),
        bad("demo --batch-size 1", "--batch-size"),
        bad("demo --payments x", "--payments"),
        bad("demo --trade-orders-per-day 0", "--trade-orders-per-day"),
    ),
    "bench ledger": (
        bad("bench ledger --accounts 1", "--accounts"),
        bad("bench ledger --batch-size 0", "--batch-size"),
        bad("bench ledger --batch-size 9000", "--batch-size"),
        bad("bench ledger --clients 0", "--clients"),
    ),
    "bench payments": (
        bad("bench payments --payments 1", "--payments"),
        bad("bench payments --bulk-size 8001", "--bulk-size"),
        bad("bench payments --workers 0", "--workers"),
    ),
    "bench trade": (
        bad("bench trade --orders 0", "--orders"),
        bad("bench trade --rounds x", "--rounds"),
    ),
    "bench risk": (
        bad("bench risk --listed 1", "--listed"),
        bad("bench risk --seed x", "--seed"),
    ),
    # ------------------------------------------------------------------ db
    "db upgrade": (bad("db upgrade --check", "--check"),),
    "db status": (bad("db status extra", "extra"),),
    # ------------------------------------------------------------------ ledger
    "ledger define": (
        bad("ledger define --currency XYZ", "XYZ"),
        bad("ledger define --currency ''", "currency"),
        bad("ledger define --currency EUR --ledger 0", "ledger"),
        bad("ledger define --currency EUR --ledger -1", "ledger"),
        bad(f"ledger define --currency EUR --ledger {HUGE}", "ledger"),
        bad("ledger define --currency USD --ledger 978", "978"),
    ),
    "ledger ledgers": (bad("ledger ledgers extra", "extra"),),
    "ledger create-account": (
        bad("ledger create-account --code 1", "--currency"),
        bad("ledger create-account --code 1 --currency XYZ", "XYZ"),
        bad("ledger create-account --code 0 --currency EUR", "--code"),
        bad("ledger create-account --code 70000 --currency EUR", "--code"),
        bad("ledger create-account --code 1 --currency EUR --id abc", "--id", "abc"),
        bad("ledger create-account --code 1 --currency EUR --id ''", "--id"),
        bad("ledger create-account --code 1 --currency EUR --id -5", "--id"),
        bad(f"ledger create-account --code 1 --currency EUR --id {HUGE}", "--id"),
        bad("ledger create-account --code 1 --currency EUR --flags nope", "--flags", "nope"),
        bad("ledger create-account --code 1 --currency EUR --user-data-64 -1", "--user-data-64"),
        bad(f"ledger create-account --code 1 --currency EUR --user-data-32 {HUGE}", "32"),
        ledger_result("ledger create-account --code 1 --ledger 4242", "ledger_not_found"),
        ledger_result(
            "ledger create-account --code 10 --currency EUR --id 1 --flags history",
            "exists_with_different_flags",
        ),
    ),
    "ledger create-accounts": (
        bad("ledger create-accounts --file {missing}", "missing"),
        bad("ledger create-accounts --file {latin1}", "latin1"),
        bad("ledger create-accounts --file {empty}", "empty"),
        bad("ledger create-accounts --file {wrong_columns}", "code"),
        bad("ledger create-accounts --file {accounts_bad_code}", "code", "x"),
        bad("ledger create-accounts --file {accounts_bad_currency}", "XYZ"),
        refused("ledger create-accounts --file {dir}", "directory"),
    ),
    "ledger transfer": (
        bad("ledger transfer --from 2 --to 1 --code 1 --amount 1e3", "scientific"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount -5", "amount"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount 12.345", "fractional"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount NaN", "finite"),
        bad(f"ledger transfer --from 2 --to 1 --code 1 --amount {HUGE}", "amount"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount ''", "empty"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount ' '", "--amount", "empty"),
        bad("ledger transfer --from 2 --to 1 --code 1", "--amount"),
        bad("ledger transfer --from abc --to 1 --code 1 --amount 1", "--from"),
        bad("ledger transfer --from 2 --to '' --code 1 --amount 1", "--to"),
        bad("ledger transfer --from 2 --to 1 --code 0 --amount 1", "--code"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount 1 --currency XYZ", "XYZ"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount 1 --ledger 4242", "4242"),
        bad("ledger transfer --from 2 --to 1 --code 1 --amount 1 --timeout 5", "--timeout"),
        bad(
            "ledger transfer --from 2 --to 1 --code 1 --amount 1 --pending --timeout -1", "timeout"
        ),
        refused("ledger transfer --from 98 --to 99 --code 1 --amount 1", "not_found"),
        ledger_result("ledger transfer --from 2 --to 1 --code 1 --amount 1 --id 10", "exists_with"),
    ),
    "ledger transfers": (
        bad("ledger transfers --file {missing}", "missing"),
        bad("ledger transfers --file {latin1}", "latin1"),
        bad("ledger transfers --file {empty}", "empty"),
        bad("ledger transfers --file {wrong_columns}", "debit_account_id"),
        bad("ledger transfers --file {transfers_bad_amount}", "scientific"),
        bad("ledger transfers --file {transfers_negative}", "amount"),
    ),
    "ledger post": (
        bad("ledger post abc", "abc"),
        bad("ledger post ''", "PENDING_ID"),
        bad("ledger post 11 --amount 1e3", "scientific"),
        bad("ledger post 11 --amount 12.345", "fractional"),
        bad("ledger post 11 --amount -5", "amount"),
        ledger_result("ledger post 999", "pending_transfer_not_found"),
        refused("ledger post 999 --amount 1", "pending_transfer_not_found"),
    ),
    "ledger void": (
        bad("ledger void abc", "abc"),
        bad("ledger void 11 --id xyz", "--id"),
        ledger_result("ledger void 999", "pending_transfer_not_found"),
    ),
    "ledger expire": (bad("ledger expire now", "now"),),
    "ledger balance": (
        bad("ledger balance abc", "abc"),
        bad("ledger balance ''", "ACCOUNT_ID"),
        bad(f"ledger balance {HUGE}", "ACCOUNT_ID"),
        refused("ledger balance 999", "999"),
    ),
    "ledger lookup-transfer": (
        bad("ledger lookup-transfer abc", "abc"),
        refused("ledger lookup-transfer 999", "999"),
    ),
    "ledger statement": (
        bad("ledger statement 1 --since 2024-13-45", "--since"),
        bad("ledger statement 1 --until yesterday", "--until"),
        bad("ledger statement 1 --since 2025-01-02 --until 2025-01-01", "--since"),
        bad("ledger statement 1 --limit 0", "--limit"),
        bad("ledger statement abc", "abc"),
        refused("ledger statement 999", "999"),
    ),
    "ledger history": (
        bad("ledger history 1 --since 2024-02-30", "--since"),
        bad("ledger history 1 --limit -1", "--limit"),
        bad("ledger history 1 --since ''", "--since"),
        refused("ledger history 999", "999"),
    ),
    "ledger check": (bad("ledger check all", "all"),),
    # ------------------------------------------------------------------ payments
    "payments enable-currency": (
        bad("payments enable-currency XYZ", "XYZ"),
        bad("payments enable-currency ''", "currency"),
        bad("payments enable-currency eur", "eur"),
    ),
    "payments participant-add": (
        bad("payments participant-add p-x --name X --kind nope --country RW", "kind"),
        bad("payments participant-add p-x --name X --kind bank --country ZZZ", "country"),
        bad("payments participant-add p-x --name X --kind bank --country RW --currency XYZ", "XYZ"),
        bad("payments participant-add '' --name X --kind bank --country RW", "participant"),
        bad("payments participant-add ' ' --name X --kind bank --country RW", "participant"),
        bad("payments participant-add p-x --name '' --kind bank --country RW", "name"),
        bad("payments participant-add p-x --name X --kind bank --country RW --bic 1", "bic"),
    ),
    "payments participants": (bad("payments participants extra", "extra"),),
    "payments participant": (
        refused("payments participant nope", "nope"),
        refused("payments participant ''", "participant ''"),
    ),
    "payments currency-add": (
        bad("payments currency-add mtn-rw XYZ", "XYZ"),
        refused("payments currency-add nope EUR", "nope"),
    ),
    "payments suspend": (
        bad("payments suspend mtn-rw", "--reason"),
        bad("payments suspend mtn-rw --reason ' '", "reason"),
        refused("payments suspend nope --reason audit", "nope"),
    ),
    "payments status-history": (
        refused("payments status-history nope", "nope"),
        refused("payments status-history mtn-rw --as maybank-my", "own"),
    ),
    "payments resume": (refused("payments resume nope", "nope"),),
    "payments deposit": (
        bad("payments deposit mtn-rw 1e3 RWF d-x", "scientific"),
        bad("payments deposit mtn-rw -- -5 RWF d-x", "amount"),
        bad("payments deposit mtn-rw 12.5 RWF d-x", "fractional"),
        bad("payments deposit maybank-my 12.345 MYR d-x", "fractional"),
        bad("payments deposit mtn-rw NaN RWF d-x", "finite"),
        bad(f"payments deposit mtn-rw {HUGE} RWF d-x", "amount"),
        bad("payments deposit mtn-rw 0 RWF d-x", "amount"),
        bad("payments deposit mtn-rw 5 XYZ d-x", "XYZ"),
        bad("payments deposit mtn-rw 5 RWF ''", "deposit"),
        refused("payments deposit nope 5 RWF d-x", "nope"),
        refused("payments deposit mtn-rw 5 EUR d-x", "EUR"),
    ),
    "payments cap": (
        bad("payments cap mtn-rw 1e3 RWF", "scientific"),
        bad("payments cap mtn-rw -- -5 RWF", "cap"),
        refused(f"payments cap mtn-rw {HUGE} RWF", "cap"),
        bad("payments cap mtn-rw 5 XYZ", "XYZ"),
        refused("payments cap nope 5 RWF", "nope"),
    ),
    "payments liquidity": (
        bad("payments liquidity mtn-rw XYZ", "XYZ"),
        refused("payments liquidity nope RWF", "nope"),
        refused("payments liquidity mtn-rw EUR", "EUR"),
    ),
    "payments metrics": (bad("payments metrics extra", "extra"),),
    "payments fees": (
        bad("payments fees --currency usd", "malformed currency code 'usd'"),
        bad("payments fees --currency XYZ", "XYZ"),
        bad("payments fees extra", "extra"),
    ),
    "payments credentials": (
        refused("payments credentials nope", "nope"),
        bad("payments credentials mtn-rw --public-key notbase64!", "key"),
    ),
    "payments credentials-list": (refused("payments credentials-list nope", "nope"),),
    "payments credentials-revoke": (
        refused("payments credentials-revoke knope", "knope"),
        refused("payments credentials-revoke ''", "credential ''"),
    ),
    "payments alias-add": (
        bad("payments alias-add --as mtn-rw NOPE x --name X --currency RWF", "NOPE"),
        bad("payments alias-add --as mtn-rw MSISDN abc --name X --currency RWF", "abc"),
        refused(
            "payments alias-add --as mtn-rw MSISDN +250788000001 --name X --currency XYZ", "XYZ"
        ),
        bad("payments alias-add --as mtn-rw MSISDN +250788000001 --name '' --currency RWF", "name"),
        refused(
            "payments alias-add --as nope MSISDN +250788000001 --name X --currency RWF", "nope"
        ),
    ),
    "payments alias-remove": (
        bad("payments alias-remove --as mtn-rw NOPE x", "NOPE"),
        refused("payments alias-remove --as mtn-rw MSISDN +250788000009", "250788000009"),
    ),
    "payments lookup": (
        bad("payments lookup NOPE x", "NOPE"),
        refused("payments lookup MERCHANT NOPE-1", "NOPE-1"),
        bad("payments lookup MERCHANT ''", "malformed"),
    ),
    "payments fx-rate": (
        bad("payments fx-rate --as fx-global RWF MYR abc", "abc"),
        bad("payments fx-rate --as fx-global RWF MYR 1_0", "1_0"),
        bad("payments fx-rate --as fx-global RWF MYR 5e-3", "5e-3"),
        bad("payments fx-rate --as fx-global RWF MYR NaN", "rate"),
        bad("payments fx-rate --as fx-global RWF MYR 0", "rate"),
        bad("payments fx-rate --as fx-global RWF MYR -- -1", "rate"),
        bad("payments fx-rate --as fx-global RWF MYR Infinity", "rate"),
        bad(f"payments fx-rate --as fx-global RWF MYR 1e{HUGE}", "rate"),
        refused("payments fx-rate --as fx-global RWF XYZ 1", "XYZ"),
        bad("payments fx-rate --as fx-global RWF MYR 1 --spread-bps -1", "spread"),
        bad("payments fx-rate --as fx-global RWF MYR 1 --valid-s 0", "valid"),
        refused("payments fx-rate --as nope RWF MYR 1", "nope"),
    ),
    "payments quote": (
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 1e3 MYR RWF", "scientific"),
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 12.345 MYR RWF", "fractional"),
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 -- -5 MYR RWF", "amount"),
        bad(f"payments quote --as mtn-rw pq-x MERCHANT KL-003 {HUGE} MYR RWF", "amount"),
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 5 XYZ RWF", "XYZ"),
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 5 MYR XYZ", "unknown_currency", "XYZ"),
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 5 MYR RWF --type BOTH", "type"),
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 5 MYR RWF --expiry 0", "expir"),
        bad("payments quote --as mtn-rw pq-x MERCHANT KL-003 5 MYR RWF --payer x", "payer"),
        bad("payments quote --as mtn-rw '' MERCHANT KL-003 5 MYR RWF", "quote"),
        refused("payments quote --as mtn-rw pq-x MERCHANT NOPE-1 5 MYR RWF", "NOPE-1"),
    ),
    "payments prepare": (
        refused("payments prepare --as mtn-rw pt-x nope", "nope"),
        bad("payments prepare --as mtn-rw pt-x pq-1 --expiry 0", "expiry"),
        bad("payments prepare --as mtn-rw pt-x pq-1 --expiry 86401", "expiry"),
        bad("payments prepare --as mtn-rw '' pq-1", "transfer"),
        bad(f"payments prepare --as mtn-rw pt-x pq-1 --note {'n' * 201}", "note"),
    ),
    "payments commit": (
        refused("payments commit --as maybank-my nope", "nope"),
        refused("payments commit --as mtn-rw pt-1", "payee"),
    ),
    "payments reject": (refused("payments reject --as maybank-my nope", "nope"),),
    "payments transfer": (refused("payments transfer --as mtn-rw nope", "nope"),),
    "payments transfers": (
        bad("payments transfers --as mtn-rw --limit 0", "--limit"),
        refused("payments transfers --as nope", "nope"),
    ),
    "payments review": (
        refused("payments review nope --approve --reason ok", "nope"),
        bad("payments review pt-1 --approve --reason ''", "reason"),
        bad("payments review pt-1 --approve --reason ok --reviewer-id 'ops amina'", "reviewer"),
    ),
    "payments rate-limit": (
        bad("payments rate-limit mtn-rw --per-second 0", "0.01"),
        bad("payments rate-limit mtn-rw --per-second 2000000", "1,000,000"),
        bad("payments rate-limit mtn-rw --per-second abc", "--per-second"),
        bad("payments rate-limit mtn-rw --per-second 5 --burst 0", "burst"),
        bad("payments rate-limit mtn-rw --burst 5", "--per-second"),
        bad("payments rate-limit mtn-rw --clear --per-second 5", "--clear"),
        refused("payments rate-limit nope --per-second 5", "nope"),
        refused("payments rate-limit nope", "nope"),
    ),
    "payments quote-show": (refused("payments quote-show --as mtn-rw nope", "nope"),),
    "payments quote-accept": (refused("payments quote-accept --as mtn-rw nope", "nope"),),
    "payments bulk": (
        bad("payments bulk --as maybank-my bk-1 MYR --file {missing}", "missing"),
        bad("payments bulk --as maybank-my bk-1 MYR --file {latin1}", "latin1"),
        bad("payments bulk --as maybank-my bk-1 MYR --file {bulk_short}", "line 1", "fields"),
        bad("payments bulk --as maybank-my bk-1 MYR --file {bulk_bad_amount}", "line 1"),
        bad("payments bulk --as maybank-my bk-1 MYR --file {bulk_negative}", "line 1"),
        bad("payments bulk --as maybank-my bk-1 XYZ --file {bulk_short}", "XYZ"),
        bad("payments bulk --as maybank-my bk-1 MYR --file {empty}", "1..8000"),
        bad("payments bulk --as maybank-my bk-1 MYR --file {dir}", "directory"),
    ),
    "payments deadlines": (bad("payments deadlines now", "now"),),
    "payments qr-encode": (
        bad("payments qr-encode KL-003 Kedai KL MY XYZ", "XYZ"),
        bad("payments qr-encode KL-003 Kedai KL MY MYR --amount 1e3", "scientific"),
        bad("payments qr-encode KL-003 Kedai KL MY MYR --amount 12.345", "fractional"),
        bad("payments qr-encode KL-003 Kedai KL MY MYR --amount -5", "amount"),
        bad("payments qr-encode KL-003 Kedai KL ZZ9 MYR", "country"),
        bad("payments qr-encode KL-003 '' KL MY MYR", "name"),
        bad("payments qr-encode KL-003 Kedai KL MY MYR --mcc abc", "merchant category code"),
        bad("payments qr-encode '' Kedai KL MY MYR", "malformed"),
        refused("payments qr-encode KL-003 Kedai KL MY MYR --png {missing}/x.png", "x.png"),
    ),
    "payments qr-decode": (
        bad("payments qr-decode garbage", "qr_bad_tag"),
        bad("payments qr-decode ''", "qr_missing_tag"),
    ),
    "payments qr-pay": (
        bad("payments qr-pay --as mtn-rw garbage q-x t-x RWF", "qr_bad_tag"),
        bad("payments qr-pay --as mtn-rw '' q-x t-x RWF", "qr_missing_tag"),
        # a QR asking the payer for its bill number (***), paid without one, or with a
        # value the QR does not ask for
        bad(f"payments qr-pay --as mtn-rw '{_PROMPTING}' q-x t-x RWF", "bill number"),
        bad(
            f"payments qr-pay --as mtn-rw '{_PROMPTING}' q-x t-x RWF --bill-number B "
            "--terminal-label T",
            "does not ask the payer for its terminal label",
        ),
    ),
    "payments escrow-create": (
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 1e3 RWF p 3600", "scientific"),
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 0 RWF p 3600", "amount"),
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 5 XYZ p 3600", "XYZ"),
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 5 RWF p 0", "deadline"),
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 5 RWF p -- -1", "deadline"),
        bad(f"payments escrow-create --as mtn-rw e-x hub-kigali 5 RWF p {HUGE}", "deadline"),
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 5 RWF p x", "deadline"),
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 5 RWF '' 3600", "purpose"),
        bad("payments escrow-create --as mtn-rw e-x hub-kigali 5 RWF p 3600 --on-deadline x", "on"),
        refused("payments escrow-create --as mtn-rw e-x nope 5 RWF p 3600", "nope"),
    ),
    "payments escrow-release": (
        bad("payments escrow-release --as mtn-rw e-1 1e3 RWF", "scientific"),
        bad("payments escrow-release --as mtn-rw e-1 -- -5 RWF", "amount"),
        bad("payments escrow-release --as mtn-rw e-1 5 XYZ", "XYZ"),
        bad("payments escrow-release --as mtn-rw e-1 5 EUR", "EUR"),
        refused("payments escrow-release --as mtn-rw e-1 5000 RWF", "5000"),
        refused("payments escrow-release --as mtn-rw nope 5 RWF", "nope"),
    ),
    "payments escrow-refund": (
        bad("payments escrow-refund --as hub-kigali e-1 12.5 RWF", "fractional"),
        bad("payments escrow-refund --as hub-kigali e-1 0 RWF", "amount"),
        refused("payments escrow-refund --as hub-kigali nope 5 RWF", "nope"),
    ),
    "payments escrow-split": (
        bad("payments escrow-split --as mtn-rw e-1 1e3 5 RWF", "scientific"),
        bad("payments escrow-split --as mtn-rw e-1 5 NaN RWF", "finite"),
        bad("payments escrow-split --as mtn-rw e-1 5 5 EUR", "EUR"),
        refused("payments escrow-split --as mtn-rw e-1 900 900 RWF", "1800"),
        refused("payments escrow-split --as mtn-rw nope 5 5 RWF", "nope"),
    ),
    "payments escrow": (refused("payments escrow --as mtn-rw nope", "nope"),),
    "payments window-close": (bad("payments window-close 1", "1"),),
    "payments window-settle": (
        bad("payments window-settle 0", "window"),
        bad(f"payments window-settle {HUGE}", "window"),
        bad("payments window-settle x", "window", "digits"),
        # read as a plain int these named window 1 (closed in the world), and settled it
        bad("payments window-settle 1.0", "window", "1.0"),
        bad("payments window-settle +1", "window", "+1"),
        bad("payments window-settle 01", "window", "01"),
        refused("payments window-settle 99", "99"),
    ),
    "payments windows": (
        bad("payments windows 1", "1"),
        bad("payments windows --limit 0", "limit"),
        bad("payments windows --after -1", "after"),
    ),
    "payments window": (
        bad("payments window -- -1", "window"),
        bad("payments window 01", "window", "digits"),
        refused("payments window 99", "99"),
    ),
    "payments iso20022": (
        bad("payments iso20022 pacs009 pt-1", "pacs009"),
        refused("payments iso20022 pacs008 nope", "nope"),
        bad("payments iso20022 camt053 mtn-rw", "PARTICIPANT:CURRENCY"),
        bad("payments iso20022 camt053 mtn-rw:XYZ", "XYZ"),
        bad("payments iso20022 camt053 mtn-rw:RWF --since 2024-13-01", "--since"),
        bad("payments iso20022 camt053 mtn-rw:RWF --to never", "--to"),
        bad("payments iso20022 camt053 mtn-rw:RWF --since 2025-02-01 --to 2025-01-01", "--since"),
        bad("payments iso20022 camt053 mtn-rw:RWF --account savings", "savings"),
        bad("payments iso20022 camt053 mtn-rw:RWF --account ''", "account"),
        refused("payments iso20022 camt053 nope:RWF", "nope"),
        # found by a review: a statement's options on a transfer's message were dropped
        bad("payments iso20022 pacs008 pt-1 --account savings", "--account"),
        bad("payments iso20022 pacs002 pt-1 --since 2020-01-01 --to 2020-01-02", "--since"),
        bad("payments iso20022 pacs008 pt-1 --account position", "camt053"),
    ),
    "payments endpoint": (
        bad("payments endpoint --as mtn-rw notaurl", "url"),
        bad("payments endpoint --as mtn-rw ''", "url"),
        bad("payments endpoint --as mtn-rw ftp://example.org/x", "url"),
        refused("payments endpoint --as nope http://127.0.0.1:9/x", "nope"),
    ),
    "payments scheme-public-key": (bad("payments scheme-public-key x", "x"),),
    "payments notifications": (
        bad("payments notifications --as mtn-rw --limit 0", "--limit"),
        bad("payments notifications --as mtn-rw --after -1", "--after"),
        refused("payments notifications --as nope", "nope"),
    ),
    "payments deliver": (bad("payments deliver --interval 0", "--interval"),),
    # ------------------------------------------------------------------ risk
    "risk train-credit": (
        bad("risk train-credit --data {missing} --target y", "missing"),
        bad("risk train-credit --data {latin1} --target y", "latin1"),
        bad("risk train-credit --data {empty} --target y", "empty"),
        bad("risk train-credit --data {credit_no_target} --target y", "y"),
        bad("risk train-credit --data {credit_no_target} --target a --folds 1", "--folds"),
    ),
    "risk score-credit": (
        bad("risk score-credit --model nope --data {wrong_columns}", "nope"),
        bad("risk score-credit --model nope --data {missing}", "nope"),
    ),
    "risk screen": (
        bad("risk screen", "--name"),
        bad("risk screen --name Alice --file {wrong_columns}", "--name"),
        bad("risk screen --name ''", "name"),
        bad("risk screen --name '   '", "name"),
        bad("risk screen --name Alice --dob 1970-13-45", "date of birth"),
        bad("risk screen --name Alice --country ZZZ", "country"),
        bad("risk screen --name Alice --type robot", "type"),
        bad("risk screen --file {missing}", "missing"),
        bad("risk screen --file {latin1}", "latin1"),
        bad("risk screen --file {parties_no_name}", "name"),
        bad("risk screen --file {parties_bad_dob}", "row 1"),
        bad("risk screen --name Alice --lists {dir}", "ofac"),
    ),
    "risk explain": (
        bad("risk explain --id nope", "nope"),
        bad("risk explain --id ''", "id"),
    ),
    "risk verify-log": (
        bad("risk verify-log --anchor 12", "OFFSET:HASH", "'12'"),
        bad("risk verify-log --anchor 12:abc", "64 hex digits"),
        bad("risk verify-log --anchor ''", "OFFSET:HASH"),
    ),
    "risk train-fraud": (
        bad("risk train-fraud --days 1", "--days"),
        bad("risk train-fraud --customers 0", "--customers"),
        bad("risk train-fraud --terminals x", "--terminals"),
    ),
    "risk lending policy-set": (
        bad("risk lending policy-set --as mtn-rw --file {missing}", "missing"),
        bad("risk lending policy-set --as mtn-rw --file {latin1}", "latin1"),
        bad("risk lending policy-set --as mtn-rw --file {not_json}", "JSON"),
        bad("risk lending policy-set --as mtn-rw --file {json_list}", "object"),
        bad("risk lending policy-set --as mtn-rw --file {policy_types}", "fee_bps"),
        bad("risk lending policy-set --as mtn-rw --file {policy_empty}", "missing", "currency"),
        refused("risk lending policy-set --as nope --file {policy_good}", "nope"),
    ),
    "risk lending policy-show": (
        refused("risk lending policy-show nope RWF", "nope"),
        refused("risk lending policy-show mtn-rw XYZ", "XYZ"),
        bad("risk lending policy-show mtn-rw RWF --version 0", "--version"),
        refused("risk lending policy-show mtn-rw RWF --version 99", "99"),
    ),
    "risk lending offer": (
        bad(
            "risk lending offer o-x --as m-kigali-1 --lender mtn-rw --history {missing}", "missing"
        ),
        bad("risk lending offer o-x --as m-kigali-1 --lender mtn-rw --history {not_json}", "JSON"),
        bad(
            "risk lending offer o-x --as m-kigali-1 --lender mtn-rw --history {history_types}",
            "tenure_days",
        ),
        bad(
            "risk lending offer o-x --as m-kigali-1 --lender mtn-rw --history {history_bad_date}",
            "as_of",
            "yesterday",
        ),
        # the bank's policy names the months, not the merchant
        bad("risk lending offer o-x --as m-kigali-1 --lender mtn-rw --months 3", "--months"),
        refused("risk lending offer o-x --as nope --lender mtn-rw", "nope"),
        bad("risk lending offer o-x --as m-kigali-1 --lender maybank-my", "maybank-my"),
        bad("risk lending offer '' --as m-kigali-1 --lender mtn-rw", "offer"),
    ),
    "risk lending show": (refused("risk lending show --as mtn-rw nope", "nope"),),
    "risk lending offers": (bad("risk lending offers --as mtn-rw --state nope", "nope"),),
    "risk lending accept": (
        refused("risk lending accept --as m-kigali-1 nope", "nope"),
        bad("risk lending accept --as m-kigali-1 off-1 --amount 1e3", "scientific"),
    ),
    "risk lending loans": (bad("risk lending loans --as mtn-rw --state nope", "nope"),),
    "risk lending loan": (refused("risk lending loan --as mtn-rw nope", "nope"),),
    "risk lending repay": (
        bad("risk lending repay --as mtn-rw off-1 1e3 --reference r-x", "scientific"),
        bad("risk lending repay --as mtn-rw off-1 12.5 --reference r-x", "fractional"),
        bad("risk lending repay --as mtn-rw --reference r-x off-1 -- -5", "amount"),
        bad("risk lending repay --as mtn-rw off-1 0 --reference r-x", "amount"),
        bad(f"risk lending repay --as mtn-rw off-1 {HUGE} --reference r-x", "amount"),
        bad("risk lending repay --as mtn-rw off-1 5 --reference ''", "reference"),
        refused("risk lending repay --as mtn-rw nope 5 --reference r-x", "nope"),
    ),
    "risk lending withhold": (
        bad("risk lending withhold m-kigali-1 RWF 1e3 --reference w-x", "scientific"),
        bad("risk lending withhold m-kigali-1 XYZ 5 --reference w-x", "XYZ"),
        bad("risk lending withhold --reference w-x m-kigali-1 RWF -- -5", "payout_minor"),
        bad("risk lending withhold m-kigali-1 RWF 5 --reference ''", "reference"),
    ),
    "risk lending process-deadlines": (bad("risk lending process-deadlines now", "now"),),
    "risk lending book": (
        bad("risk lending book --as mtn-rw XYZ", "XYZ"),
        refused("risk lending book --as nope RWF", "nope"),
    ),
    "risk lending contest": (
        refused("risk lending contest --as m-kigali-1 nope --statement why", "nope"),
        bad("risk lending contest --as m-kigali-1 off-1 --statement ''", "statement"),
    ),
    "risk lending contests": (bad("risk lending contests --as mtn-rw --status nope", "nope"),),
    "risk lending review": (
        refused(
            "risk lending review --as mtn-rw nope --reviewer r --outcome upheld --reason x", "nope"
        ),
        bad(
            "risk lending review --as mtn-rw off-1 --reviewer r --outcome maybe --reason x", "maybe"
        ),
        bad(
            "risk lending review --as mtn-rw off-1 --reviewer r --outcome overturned --reason x"
            " --amount 1e3",
            "scientific",
        ),
    ),
    # ------------------------------------------------------------------ city (validation only)
    "city run": (
        bad("city run --controller nope", "nope"),
        bad("city run --scenario nope", "nope"),
        bad("city run --scenario {missing}", "missing"),
        bad("city run --end 10", "--end"),
        bad("city run --rate 5", "--rate"),
        bad("city run --decisions -1", "--decisions"),
    ),
    "city bench": (
        bad("city bench --scenario nope", "nope"),
        bad("city bench --controllers nope", "nope"),
        bad("city bench --controllers ,", "controller"),
        bad("city bench --workers 0", "--workers"),
    ),
    "city forecast": (
        bad("city forecast --model nope", "nope"),
        bad("city forecast --days 1", "--days"),
        bad("city forecast --days 3 --train-days 3", "training"),
        bad("city forecast --window 0", "--window"),
        bad("city forecast --splits 21", "--splits"),
        bad("city forecast --load {missing}", "missing"),
        bad("city forecast --load {npz_garbage}", "npz_garbage"),
    ),
    # ------------------------------------------------------------------ trade
    "trade network init": (bad("trade network init now", "now"),),
    "trade network rates": (bad("trade network rates now", "now"),),
    "trade hubs list": (bad("trade hubs list x", "x"),),
    "trade hubs show": (refused("trade hubs show nope", "nope"),),
    "trade hubs warehouses": (refused("trade hubs warehouses nope", "nope"),),
    "trade hubs add-warehouse": (
        bad("trade hubs add-warehouse --as hub-kigali '' --name W", "warehouse"),
        bad("trade hubs add-warehouse --as hub-kigali w-x --name ''", "name"),
        refused("trade hubs add-warehouse --as mtn-rw w-x --name W", "mtn-rw"),
    ),
    "trade hubs create": (
        bad(
            "trade hubs create --as scheme h-x --name H --kind ehub --country RW --currency RWF"
            " --operator mtn-rw --arbitrator a1 --arbitrator a2 --customs customs-rw"
            " --freight 1,2,3",
            "--freight",
        ),
        bad(
            "trade hubs create --as scheme h-x --name H --kind nope --country RW --currency RWF"
            " --operator mtn-rw --arbitrator a1 --arbitrator a2 --customs customs-rw"
            " --freight 1,2,3,4",
            "kind",
        ),
        bad(
            "trade hubs create --as scheme h-x --name H --kind ehub --country RW --currency XYZ"
            " --operator mtn-rw --arbitrator a1 --arbitrator a2 --customs customs-rw"
            " --freight 1,2,3,4",
            "XYZ",
        ),
        bad(
            "trade hubs create --as scheme h-x --name H --kind ehub --country RW --currency RWF"
            " --operator mtn-rw --arbitrator a1 --arbitrator a2 --customs customs-rw"
            " --freight 1,2,3,4 --commission-bps -1",
            "commission",
        ),
        bad(
            "trade hubs create --as scheme h-x --name H --kind ehub --country RW --currency RWF"
            " --operator mtn-rw --arbitrator a1 --arbitrator a2 --customs customs-rw"
            f" --freight 1,2,3,{HUGE}",
            "freight",
        ),
        bad(
            "trade hubs create --as scheme h-x --name H --kind ehub --country RW --currency RWF"
            " --operator mtn-rw --arbitrator a1 --arbitrator a2 --customs customs-rw"
            " --freight 1,2,3,4 --insurance-bps -5",
            "insurance",
        ),
        bad(
            "trade hubs create --as scheme h-x --name H --kind ehub --country ZZZ --currency RWF"
            " --operator mtn-rw --arbitrator a1 --arbitrator a2 --customs customs-rw"
            " --freight 1,2,3,4",
            "country",
        ),
    ),
    "trade merchant onboard": (
        bad(
            "trade merchant onboard --as hub-kigali m-x --name '' --registration R"
            " --alias-type BUSINESS --alias RW-100200",
            "name",
        ),
        bad(
            "trade merchant onboard --as hub-kigali m-x --name X --registration R"
            " --alias-type NOPE --alias RW-1",
            "NOPE",
        ),
        bad(
            "trade merchant onboard --as hub-kigali m-x --name X --registration R"
            " --alias-type BUSINESS --alias RW-100200 --currency XYZ",
            "XYZ",
        ),
    ),
    "trade merchant show": (refused(f"trade merchant show --as {M} nope", "nope"),),
    "trade merchant review": (
        refused("trade merchant review --as hub-kigali nope --reason r", "nope"),
        bad("trade merchant review --as hub-kigali m-inzozi --reason ''", "reason"),
    ),
    "trade merchant history": (
        bad(f"trade merchant history --as {M} m-inzozi --months 0", "--months"),
        refused(f"trade merchant history --as {M} nope", "nope"),
    ),
    "trade buyer register": (
        bad(
            "trade buyer register --as hub-kuala-lumpur '' --name X --alias-type MSISDN"
            " --alias +60123456780",
            "buyer",
        ),
        bad(
            "trade buyer register --as hub-kuala-lumpur b-x --name X --alias-type MSISDN"
            " --alias abc",
            "abc",
        ),
    ),
    "trade buyer show": (refused(f"trade buyer show --as {B} nope", "nope"),),
    "trade buyer list": (
        bad("trade buyer list --as maybank-my --wallet-consent maybe", "maybe"),
        bad("trade buyer list --as maybank-my --limit 0", "--limit"),
    ),
    "trade buyer consent": (refused("trade buyer consent --as maybank-my nope", "nope"),),
    "trade item add": (
        bad(
            f"trade item add --as {M} sku-x --title T --hs-code 460219 --origin RW --weight-g 800"
            " --dims 300x300 --price-minor 1 --currency RWF",
            "--dims",
        ),
        bad(
            f"trade item add --as {M} sku-x --title T --hs-code 12 --origin RW --weight-g 800"
            " --dims 1x1x1 --price-minor 1 --currency RWF",
            "hs",
        ),
        bad(
            f"trade item add --as {M} sku-x --title T --hs-code 460219 --origin RW --weight-g 0"
            " --dims 1x1x1 --price-minor 1 --currency RWF",
            "weight",
        ),
        bad(
            f"trade item add --as {M} sku-x --title T --hs-code 460219 --origin RW --weight-g 8"
            " --dims 1x1x1 --price-minor -1 --currency RWF",
            "price",
        ),
        bad(
            f"trade item add --as {M} sku-x --title T --hs-code 460219 --origin RW --weight-g 8"
            f" --dims 1x1x1 --price-minor {HUGE} --currency RWF",
            "price",
        ),
        bad(
            f"trade item add --as {M} sku-x --title T --hs-code 460219 --origin RW --weight-g 8"
            " --dims 1x1x1 --price-minor 1 --currency XYZ",
            "XYZ",
        ),
        bad(
            f"trade item add --as {M} sku-x --title '' --hs-code 460219 --origin RW --weight-g 8"
            " --dims 1x1x1 --price-minor 1 --currency RWF",
            "title",
        ),
        bad(
            f"trade item add --as {M} sku-x --title T --hs-code 460219 --origin RW --weight-g 8"
            " --dims 1x1x1 --price-minor 1 --currency RWF --customs-unit l"
            " --customs-per-piece NaN",
            "customs",
        ),
    ),
    "trade item update": (
        refused(f"trade item update --as {M} nope --price-minor 1", "nope"),
        bad(f"trade item update --as {M} sku-basket --price-minor -1", "price"),
        bad(f"trade item update --as {M} sku-basket --customs-per-piece 1e3", "customs"),
    ),
    "trade item list": (bad("trade item list --limit 0", "--limit"),),
    "trade stock set": (
        bad(f"trade stock set --as {M} sku-basket kigali-fc1 -- -1", "hand"),
        bad(f"trade stock set --as {M} sku-basket kigali-fc1 x", "on_hand", "integer"),
        bad(f"trade stock set --as {M} sku-basket kigali-fc1 {HUGE}", "hand"),
        refused(f"trade stock set --as {M} sku-basket nope 1", "nope"),
        refused(f"trade stock set --as {M} nope kigali-fc1 1", "nope"),
    ),
    # an unknown sku shows no stock, as GET /v1/trade/items/{sku}/stock answers (left alone)
    "trade stock show": (bad("trade stock show", "sku"), refused("trade stock show nope", "nope")),
    "trade quote": (
        bad(f"trade quote --as {B} tq-x sku-basket", "SKU=QUANTITY"),
        bad(f"trade quote --as {B} tq-x sku-basket=x", "SKU=QUANTITY"),
        bad(f"trade quote --as {B} tq-x sku-basket=0", "quantity"),
        bad(f"trade quote --as {B} tq-x sku-basket={HUGE}", "quantity"),
        bad(f"trade quote --as {B} tq-x sku-basket=1 --ttl-s 1", "expiry"),
        refused(f"trade quote --as {B} tq-x nope=1", "nope"),
    ),
    "trade quote-show": (refused(f"trade quote-show --as {B} nope", "nope"),),
    "trade checkout": (refused(f"trade checkout --as {B} o-x nope", "nope"),),
    "trade orders list": (
        bad(f"trade orders list --as {B} --state NOPE", "NOPE"),
        bad(f"trade orders list --as {B} --limit 0", "--limit"),
    ),
    "trade orders show": (refused(f"trade orders show --as {B} nope", "nope"),),
    "trade orders events": (refused(f"trade orders events --as {B} nope", "nope"),),
    "trade orders tracking": (refused(f"trade orders tracking --as {B} nope", "nope"),),
    "trade orders payouts": (refused(f"trade orders payouts --as {B} nope", "nope"),),
    "trade track": (
        refused("trade track --as hub-kigali nope EMA", "nope"),
        bad("trade track --as hub-kigali o-1 XYZ", "unknown tracking event", "XYZ"),
        bad("trade track --as hub-kigali o-2 EMA XYZ", "unknown tracking event", "XYZ"),
    ),
    "trade consolidate": (
        bad("trade consolidate --as hub-kigali c-x o-1 --code NOPE", "EXD, EMC or EMD"),
        refused("trade consolidate --as hub-kigali c-x nope", "nope"),
    ),
    "trade cancel": (
        refused(f"trade cancel --as {B} nope --reason r", "nope"),
        bad(f"trade cancel --as {B} o-1 --reason ''", "reason"),
    ),
    "trade confirm": (refused(f"trade confirm --as {B} nope", "nope"),),
    "trade return request": (refused(f"trade return request --as {B} nope --reason r", "nope"),),
    "trade return answer": (refused(f"trade return answer --as {M} nope --accept", "nope"),),
    "trade dispute open": (
        bad(f"trade dispute open --as {B} d-x o-1 --reason nope --claim c", "reason"),
        bad(f"trade dispute open --as {B} d-x o-1 --reason not_received --claim ''", "claim"),
        refused(f"trade dispute open --as {B} d-x nope --reason not_received --claim c", "nope"),
    ),
    "trade dispute evidence": (
        refused(f"trade dispute evidence --as {B} nope text", "nope"),
        bad(f"trade dispute evidence --as {B} d-1 ''", "evidence"),
    ),
    "trade dispute offer": (
        bad(f"trade dispute offer --as {M} d-1 --refund-minor -1", "refund"),
        bad(f"trade dispute offer --as {M} d-1 --refund-minor {HUGE}", "refund"),
        refused(f"trade dispute offer --as {M} nope --refund-minor 1", "nope"),
    ),
    "trade dispute accept": (refused(f"trade dispute accept --as {B} nope", "nope"),),
    "trade dispute escalate": (refused(f"trade dispute escalate --as {B} nope", "nope"),),
    "trade dispute rule": (
        refused("trade dispute rule --as arbitrator:x nope --outcome refund --reason r", "nope"),
        refused(f"trade dispute rule --as {B} d-1 --outcome maybe --reason r", "d-1"),
    ),
    "trade dispute appeal": (refused(f"trade dispute appeal --as {B} nope --grounds g", "nope"),),
    "trade dispute show": (refused(f"trade dispute show --as {B} nope", "nope"),),
    "trade dispute list": (
        bad("trade dispute list", "--as"),
        bad(f"trade dispute list --as {B} --state NOPE", "NOPE"),
    ),
    "trade dispute events": (refused(f"trade dispute events --as {B} nope", "nope"),),
    "trade deadlines": (bad("trade deadlines now", "now"),),
    "trade credentials issue": (
        bad("trade credentials issue", "--merchant"),
        bad("trade credentials issue --merchant m-inzozi --buyer b-aisyah", "--merchant"),
        refused("trade credentials issue --merchant nope", "nope"),
        bad("trade credentials issue --merchant m-inzozi --public-key x!", "key"),
    ),
    "trade credentials list": (
        bad("trade credentials list", "--merchant"),
        refused("trade credentials list --merchant nope", "nope"),
    ),
    "trade credentials revoke": (refused("trade credentials revoke knope", "knope"),),
}


def _commands() -> list[str]:
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[str]:
        subs = getattr(command, "commands", None)
        if subs is None:
            yield " ".join(path)
            return
        for name, sub in subs.items():
            yield from walk(sub, (*path, name))

    return sorted(walk(typer.main.get_command(app), ()))


def test_every_command_has_bad_input_cases() -> None:
    commands = _commands()
    assert len(commands) >= 139
    assert sorted(c for c in commands if not CASES.get(c)) == []
    assert sorted(set(CASES) - set(commands)) == []


# ---------------------------------------------------------------------------------- world
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("bad-input")
    env = {
        "ENTREPOT_HOME": str(home),
        "ENTREPOT_DATABASE_URL": "",
        "ENTREPOT_SQLITE_SYNCHRONOUS": "OFF",
        "ENTREPOT_SCREENING": "off",
        "COLUMNS": "200",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _build_world()
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _build_world() -> None:
    with open_app() as a:
        build_trade_network(a.payments, a.trade)
        net = Net(a.engine, a.clock, a.payments, a.trade)  # type: ignore[arg-type]
        merchant = net.merchant()
        net.merchant("m-kigali-1", reg="RW-100201", name="Kigali One Ltd")
        buyer = net.buyer()
        sku = net.basket(merchant)
        net.order(buyer, sku, 1, "o-1")
        net.ship("o-1")
        net.order(buyer, sku, 1, "o-2")  # paid, not yet handed over
        a.trade.open_dispute(buyer, "d-1", "o-1", "not_as_described", "broken")
        scheme = a.payments
        scheme.create_quote(
            "mtn-rw", "pq-1", "MERCHANT", "KL-003", 1000, "RECEIVE", "RWF", amount_currency="MYR"
        )
        scheme.prepare_transfer("mtn-rw", "pt-1", "pq-1")
        scheme.create_escrow("mtn-rw", "e-1", "hub-kigali", "RWF", 1000, "deposit", 3600)
        scheme.close_window(SCHEME)
        issue_credential(a.engine, "mtn-rw")
        lending = Lending(
            a.engine, a.ledger, a.clock, sink=JsonlSink(a.settings.home / "decisions")
        )
        lending.set_policy("mtn-rw", CreditPolicy.from_dict({**POLICY, "lender_id": "mtn-rw"}))
        history = MerchantHistory.from_dict({**HISTORY, "as_of_ns": a.clock.now_ns()})
        lending.offer("m-kigali-1", "off-1", "mtn-rw", history)
        lending.accept("m-kigali-1", "off-1", None)
        a.ledger.create_accounts(
            [Account(id=1, ledger=978, code=10), Account(id=2, ledger=978, code=20)]
        )
        moved = Transfer(id=10, debit_account_id=2, credit_account_id=1, amount=10_000)
        held = moved._replace(id=11, amount=500, flags=int(TransferFlags.PENDING))
        a.ledger.create_transfers([t._replace(ledger=978, code=1) for t in (moved, held)])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("files")
    paths = {"dir": str(folder)}
    for name, content in FILES.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content, encoding="utf-8")
        paths[name] = str(path)
    return paths


def snapshot(home: Path) -> dict[str, Any]:
    """Every row of every table, and the decision log."""
    with sqlite3.connect(home / "entrepot.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {t: sorted(map(repr, db.execute(f'SELECT * FROM "{t}"'))) for t in tables}
    log = home / "decisions" / "decisions.jsonl"
    return {"tables": rows, "decisions": log.read_bytes() if log.exists() else b""}


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changed = [t for t in before["tables"] if before["tables"][t] != after["tables"].get(t)]
    changed += [t for t in after["tables"] if t not in before["tables"]]
    return changed + (["decisions.jsonl"] if before["decisions"] != after["decisions"] else [])


CASE_IDS = [(command, case) for command, cases in CASES.items() for case in cases]


@pytest.mark.parametrize(
    ("command", "case"), CASE_IDS, ids=[f"{c}: {b.args}"[:90] for c, b in CASE_IDS]
)
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    world: dict[str, str], files: dict[str, str], command: str, case: Bad
) -> None:
    home = Path(world["ENTREPOT_HOME"])
    args = [arg.format(**files) for arg in shlex.split(case.args)]
    before = snapshot(home)
    result = CliRunner().invoke(app, args, env=world)
    after = snapshot(home)
    failure = (args, result.exit_code, result.stdout[-500:], result.stderr[-2000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        failure,
        result.exc_info,
    )
    assert result.exit_code == case.code, failure
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("error: ", "Error: "))]
    assert len(said) == 1, failure
    assert "Traceback" not in result.stderr, failure
    message = said[0].lower()
    assert all(word.lower() in message for word in case.says), failure
    assert [t for t in _diff(before, after) if t not in case.writes] == [], failure


# ---------------------------------------------------------------------------------- settings
#: A bad setting: the environment it adds, and the words the error line holds
SETTINGS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "url without a port number": (
        {"ENTREPOT_DATABASE_URL": "postgresql://u@localhost:notaport/x"},
        ("ENTREPOT_DATABASE_URL", "malformed", "notaport"),
    ),
    "url that does not parse": (
        {"ENTREPOT_DATABASE_URL": "sqlite:"},
        ("ENTREPOT_DATABASE_URL", "malformed"),
    ),
    "url of an unknown driver": (
        {"ENTREPOT_DATABASE_URL": "sqlitex:///x.db"},
        ("ENTREPOT_DATABASE_URL", "sqlitex"),
    ),
    "url of another database": (
        {"ENTREPOT_DATABASE_URL": "mysql://root@localhost/x"},
        ("unsupported database URL", "mysql"),
    ),
    "sqlite in memory": (
        {"ENTREPOT_DATABASE_URL": "sqlite://"},
        ("ENTREPOT_DATABASE_URL", "in-memory"),
    ),
    "sqlite :memory:": (
        {"ENTREPOT_DATABASE_URL": "sqlite:///:memory:"},
        ("ENTREPOT_DATABASE_URL", "in-memory"),
    ),
    "not migrated, no automatic upgrade": (
        {"ENTREPOT_AUTO_UPGRADE": "0"},
        ("entrepot db upgrade",),
    ),
    "sqlite synchronous mode": (
        {"ENTREPOT_SQLITE_SYNCHRONOUS": "sometimes"},
        ("ENTREPOT_SQLITE_SYNCHRONOUS", "SOMETIMES"),
    ),
    "screening mode": ({"ENTREPOT_SCREENING": "maybe"}, ("ENTREPOT_SCREENING", "maybe")),
}


@pytest.mark.parametrize("name", SETTINGS)
def test_bad_settings_are_refused_in_one_line_and_create_nothing(tmp_path: Path, name: str) -> None:
    """On a fresh ENTREPOT_HOME (a database not yet made or migrated) a command that writes
    refuses the setting: exit 2, the setting in the line, no table made. (Opening an unmigrated
    database with ENTREPOT_AUTO_UPGRADE=0 leaves SQLite's empty file behind.)"""
    extra, says = SETTINGS[name]
    home = tmp_path / "home"
    env = {"ENTREPOT_HOME": str(home), "ENTREPOT_DATABASE_URL": "", **extra}
    result = CliRunner().invoke(app, ["payments", "deposit", "mtn-rw", "5", "RWF", "d-x"], env=env)
    failure = (name, result.exit_code, result.stdout, result.stderr, result.exc_info)
    assert result.exception is None or isinstance(result.exception, SystemExit), failure
    assert result.exit_code == 2, failure
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: configuration_error: "), failure
    assert all(word in line for word in says), failure
    database = home / "entrepot.db"
    if database.exists():
        with sqlite3.connect(database) as db:
            assert db.execute("SELECT name FROM sqlite_master").fetchall() == [], failure
    else:
        assert not home.exists() or list(home.iterdir()) == [], failure


def test_a_file_that_is_not_a_database_is_named_and_left_alone(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 20
    (tmp_path / "entrepot.db").write_bytes(garbage)
    env = {"ENTREPOT_HOME": str(tmp_path), "ENTREPOT_DATABASE_URL": ""}
    result = CliRunner().invoke(app, ["payments", "participants"], env=env)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    where = (tmp_path / "entrepot.db").resolve()
    assert result.stderr == f"error: database sqlite:///{where}: file is not a database\n"
    assert (tmp_path / "entrepot.db").read_bytes() == garbage


# ---------------------------------------------------------------------------------- programs
@pytest.mark.parametrize(
    "args",
    [
        "payments deposit mtn-rw 1e3 RWF d-x",
        "ledger balance abc",
        "trade orders list --as buyer:b-aisyah --state paid",
        "payments window-settle x",
    ],
)
def test_as_a_program_bad_input_exits_2_without_a_traceback(
    world: dict[str, str], args: str
) -> None:
    """What only a real process shows: the exit status the shell sees, and no traceback
    printed while the command's modules are imported or at exit."""
    home = Path(world["ENTREPOT_HOME"])
    before = snapshot(home)
    env = {**os.environ, **world}
    command = [sys.executable, "-m", "entrepot", *shlex.split(args)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr
    assert len([x for x in proc.stderr.splitlines() if x.startswith(("error: ", "Error: "))]) == 1
    assert _diff(before, snapshot(home)) == []


def test_as_a_program_a_malformed_database_url_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "ENTREPOT_HOME": str(tmp_path), "ENTREPOT_DATABASE_URL": "sqlite://"}
    command = [sys.executable, "-m", "entrepot", "payments", "participants"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: configuration_error: ENTREPOT_DATABASE_URL")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_database_server_that_is_not_there_is_named_without_its_password(
    tmp_path: Path,
) -> None:
    env = {
        "ENTREPOT_HOME": str(tmp_path),
        "ENTREPOT_DATABASE_URL": "postgresql://ops:s3cret@127.0.0.1:1/entrepot",
    }
    result = CliRunner().invoke(app, ["payments", "participants"], env=env)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    line = result.stderr
    assert line.startswith("error: database postgresql+psycopg://ops:***@127.0.0.1:1/entrepot: ")
    assert "s3cret" not in line and line.count("\n") == 1


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
def test_serve_refuses_a_port_past_what_tcp_has_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    """A single worker's uvicorn took ``--port 70000`` as 4464 (modulo 65536) and served
    there without a word: the operator's API on another port, maybe another program's."""
    started: list[dict[str, object]] = []
    monkeypatch.setattr(
        "entrepot.entrypoints.api.serve.serve", lambda **kwargs: started.append(kwargs)
    )
    args = ["serve", "--port", port, "--workers", "1", "--deadlines-every", "0"]
    env = {"ENTREPOT_HOME": str(tmp_path), "ENTREPOT_DATABASE_URL": ""}
    result = CliRunner().invoke(app, args, env=env)
    assert (result.exit_code, started) == (2, []), (result.stdout, result.stderr)
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_a_password_given_as_the_urls_password_parameter_is_not_shown(tmp_path: Path) -> None:
    """libpq takes the password as a query parameter too (``?password=``): the error naming a
    server that is not there, and ``db status`` / ``db upgrade``, printed it as it was."""
    url = "postgresql://ops@127.0.0.1:1/entrepot?password=s3cret&connect_timeout=2"
    env = {"ENTREPOT_HOME": str(tmp_path), "ENTREPOT_DATABASE_URL": url}
    result = CliRunner().invoke(app, ["payments", "participants"], env=env)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith(
        "error: database postgresql+psycopg://ops:***@127.0.0.1:1/entrepot?connect_timeout=2: "
    ), result.stderr
    assert "s3cret" not in result.stderr
    if not POSTGRES_URL:
        return
    schema = create_postgres_schema()  # trusted: the server takes the password and ignores it
    try:
        env["ENTREPOT_DATABASE_URL"] = f"{postgres_schema_url(schema)}&password=s3cret"
        for command in (["db", "upgrade"], ["db", "status"], ["db", "status", "--json"]):
            result = CliRunner().invoke(app, command, env=env)
            assert result.exit_code == 0, (result.stdout, result.stderr)
            assert "s3cret" not in result.stdout and ":***@" in result.stdout
    finally:
        drop_postgres_schema(schema)
