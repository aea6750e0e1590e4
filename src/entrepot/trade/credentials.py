"""API credentials for trade actors.

Merchants, buyers and arbitrators authenticate as their principal (``merchant:m-1``,
``buyer:b-7``, ``arbitrator:arb-kigali-1``); a hub operator uses its payment participant's
credentials. The scheme operator may issue a credential for any actor, a hub operator for the
merchants and buyers it registered and the arbitrators on its panel and on no other hub's (one
on several panels is issued by the scheme: any of those hubs could otherwise rule on the
others' disputes as that arbitrator); a credential is issued only for an actor that exists,
checked in the same transaction that stores it. Whoever may issue an actor's credentials may
list and revoke them (a merchant's phone lost: its hub revokes its token at once), and the
actor its own. A hub operator the scheme suspended issues none (``participant_suspended``),
and still lists and revokes them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from entrepot.kernel.errors import NotFound
from entrepot.payments import SCHEME
from entrepot.payments import store as pay_store
from entrepot.payments.credentials import (
    CredentialInfo,
    IssuedCredential,
    issue_credential,
    list_credentials,
    revoke_credential,
)
from entrepot.payments.errors import CredentialNotFound
from entrepot.storage.engine import read_connection
from entrepot.trade import store as st
from entrepot.trade.errors import (
    BuyerNotFound,
    Forbidden,
    InvalidTradeInput,
    MerchantNotFound,
    TradeError,
)
from entrepot.trade.model import Role, check_id, parse_principal
from entrepot.trade.services import TradeNetwork, check_operator_active


class ArbitratorNotFound(NotFound, TradeError):
    code = "trade_arbitrator_not_found"
    http_status = 404


def issue_actor_credential(
    trade: TradeNetwork, caller: str, actor: str, *, public_key_b64: str | None = None
) -> IssuedCredential:
    """A credential for ``actor`` (a merchant, buyer or arbitrator principal), issued by the
    scheme operator or by the actor's hub operator: the operator of every hub it belongs to
    (an arbitrator on several hubs' panels: the scheme only). The secret is shown once."""
    role, actor_id = _actor(actor)

    def check(conn: Connection) -> None:
        _check_issuer(conn, caller, actor, role, actor_id, "issues")
        if caller != SCHEME:
            # A hub operator the scheme suspended issued its actors new credentials: a
            # credential is the way in for whoever holds it (found by a review). Listing
            # and revoking them stay open to it: a lost phone is not left working.
            check_operator_active(conn, caller)

    return issue_credential(
        trade.engine,
        actor,
        public_key_b64=public_key_b64,
        clock=trade.clock,
        principal_check=check,
    )


def _check_issuer(
    conn: Connection, caller: str, actor: str, role: Role, actor_id: str, does: str
) -> None:
    """The scheme operator, or the operator of every hub ``actor`` belongs to; Forbidden for
    anyone else, whether or not the actor exists (NotFound for the scheme operator only: a
    bank asking of buyer:b-x was told whether b-x was a buyer; found by a review)."""
    try:
        hubs = actor_hubs(conn, role, actor_id)
    except NotFound:
        if caller == SCHEME:
            raise
        hubs = frozenset()  # refused as an actor of another hub's
    if caller == SCHEME:
        return
    own = frozenset(
        conn.execute(sa.select(st.hubs.c.id).where(st.hubs.c.participant_id == caller))
        .scalars()
        .all()
    )
    # Every hub the actor belongs to, not just one: an arbitrator on two hubs' panels
    # issued by one hub would act, as that hub wished, on the other's disputes.
    if not hubs or not hubs <= own:
        raise Forbidden(
            f"only the scheme operator or {actor}'s hub operator {does} its credentials"
            + (" (it sits on other hubs' panels too)" if hubs & own else "")
        )


def _actor(principal: str) -> tuple[Role, str]:
    """A merchant's, buyer's or arbitrator's principal, checked; InvalidTradeInput else."""
    role, actor_id = parse_principal(principal)
    if role is Role.HUB:
        raise InvalidTradeInput(
            "a hub operator uses its payment participant's credentials; name a merchant:, "
            "buyer: or arbitrator: principal",
            field="principal",
        )
    check_id(actor_id, role.value)
    return role, actor_id


def list_actor_credentials(trade: TradeNetwork, caller: str, actor: str) -> list[CredentialInfo]:
    """``actor``'s credentials, revoked ones too: for the actor itself, its hub operator (of
    every hub it belongs to) or the scheme operator. Never a secret or its hash."""
    role, actor_id = _actor(actor)
    with read_connection(trade.engine) as conn:
        if caller != actor:
            _check_issuer(conn, caller, actor, role, actor_id, "lists")
    return list_credentials(trade.engine, actor)


def revoke_actor_credential(trade: TradeNetwork, caller: str, key_id: str) -> CredentialInfo:
    """Revoke a trade actor's credential (refused from the next request on, in every
    worker): by the actor itself, its hub operator (of every hub it belongs to) or the
    scheme operator. A key that is not a trade actor's is not found, as an unknown one."""
    with read_connection(trade.engine) as conn:
        holder = conn.execute(
            sa.select(pay_store.credentials.c.participant_id).where(
                pay_store.credentials.c.key_id == key_id
            )
        ).scalar()
        if holder is None or ":" not in holder:  # a payment participant's: not trade's
            raise CredentialNotFound(f"credential {key_id!r} does not exist")
        role, actor_id = parse_principal(holder)
        if caller != holder:
            try:
                _check_issuer(conn, caller, holder, role, actor_id, "revokes")
            except Forbidden:  # not naming its holder: the caller named only the key
                raise Forbidden(f"credential {key_id!r} is not yours to revoke") from None
    return revoke_credential(trade.engine, key_id, participant_id=holder)


def actor_hubs(conn: Connection, role: Role, actor_id: str) -> frozenset[str]:
    """The hubs an actor belongs to (a merchant's or buyer's hub; the hubs whose panel an
    arbitrator sits on); raises NotFound for an actor that does not exist."""
    if role is Role.MERCHANT:
        row = conn.execute(
            sa.select(st.merchants.c.hub_id).where(st.merchants.c.id == actor_id)
        ).first()
        if row is None:
            raise MerchantNotFound(f"merchant {actor_id!r} does not exist", field="merchant")
        return frozenset({row[0]})
    if role is Role.BUYER:
        row = conn.execute(sa.select(st.buyers.c.hub_id).where(st.buyers.c.id == actor_id)).first()
        if row is None:
            raise BuyerNotFound(f"buyer {actor_id!r} does not exist", field="buyer")
        return frozenset({row[0]})
    panels = [st.hub_from_row(r) for r in conn.execute(sa.select(st.hubs)).all()]
    hubs = frozenset(h.id for h in panels if actor_id in h.arbitrators)
    if not hubs:
        raise ArbitratorNotFound(
            f"arbitrator {actor_id!r} sits on no hub's panel", field="arbitrator"
        )
    return hubs
