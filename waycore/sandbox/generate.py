"""Deterministic test data: delegated-user identities, accounts, daily balances, transactions.

Everything derives from `random.Random(f"{seed}:{connection_id}:...")`, so the same seed and
connection id always give the same identity and the same history (dates are relative to the
activation day). Amounts are integer cents; signs follow Waycore: positive = money in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlsplit

from .records import AccountRec, BalanceRec, ConnectionRec, TransactionRec, iso_date

ADDRESS = "12 New Fetter Lane, London, United Kingdom, EC4A 1JP"

_COUNTRY_CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP"}
_EURO_TLDS = {"de", "fr", "nl", "es", "it", "be", "ie", "at", "pt", "fi", "lt", "lu", "eu"}


def delegated_identity(seed: int, connection_id: str) -> dict[str, str]:
    """The delegated user Waycore asks the customer to create at the bank."""
    rng = random.Random(f"{seed}:{connection_id}:identity")
    n = rng.randint(1000, 9999)
    return {
        "firstName": "Waycore",
        "lastName": f"Service {n}",
        "address": ADDRESS,
        "email": f"svc-{n}@delegates.waycore.example",
        "username": f"waycore{n}",
        "phoneNumber": f"+44 20 7946 0{rng.randint(0, 999):03d}",
    }


def currency_for(country: str | None, portal_url: str | None) -> str:
    if country in _COUNTRY_CURRENCY:
        return _COUNTRY_CURRENCY[country]
    if country:
        return "EUR"
    host = (urlsplit(portal_url).hostname or "") if portal_url else ""
    tld = host.rsplit(".", 1)[-1]
    if host.endswith(".uk"):
        return "GBP"
    if tld == "ca":
        return "CAD"
    if tld in _EURO_TLDS:
        return "EUR"
    return "USD"


_RAILS = {
    "USD": {"in": ["ach", "wire"], "out": ["ach", "wire", "card"]},
    "CAD": {"in": ["wire", "internalTransfer"], "out": ["wire", "card"]},
    "GBP": {"in": ["fasterPayments"], "out": ["fasterPayments", "card"]},
    "EUR": {"in": ["sepaCredit"], "out": ["sepaDebit", "sepaCredit", "card"]},
}
_CUSTOMERS = [
    "Northwind Traders",
    "Contoso Ltd",
    "Fabrikam Inc",
    "Globex Corporation",
    "Initech",
    "Umbrella Supplies",
    "Stripe Payouts",
    "Shopify Payouts",
    "Tailspin Toys",
    "Wide World Importers",
]
_VENDORS = [
    ("Amazon Web Services", "card"),
    ("Google Workspace", "card"),
    ("Slack Technologies", "card"),
    ("Office Depot", "card"),
    ("Delta Air Lines", "card"),
    ("Uber Business", "card"),
    ("Gusto Payroll", "out"),
    ("ADP Payroll", "out"),
    ("Regus Office Rent", "out"),
    ("Comcast Business", "out"),
    ("Acme Logistics", "out"),
    ("Blue Cross Insurance", "out"),
]
_TAX = {"USD": "IRS EFTPS", "CAD": "Canada Revenue Agency", "GBP": "HMRC", "EUR": "Finanzamt"}
_TEMPLATES = [
    ("Operating Account", "checking", "Business Checking"),
    ("Payroll Account", "checking", "Business Checking"),
    ("Reserve Savings", "savings", "Business Savings"),
    ("Money Market", "moneyMarket", "Business Money Market"),
    ("Business Card", "creditCard", "Business Credit Card"),
]


@dataclass
class Generated:
    accounts: list[AccountRec]
    balances: list[BalanceRec]
    transactions: list[TransactionRec]


def _hex(rng: random.Random, n: int = 16) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def _day(d: str) -> date:
    return date.fromisoformat(d)


def _txn(
    rng: random.Random,
    account: AccountRec,
    day: str,
    cents: int,
    counterparty: str,
    rail: str,
    description: str,
    at: float,
    *,
    pending: bool = False,
) -> TransactionRec:
    return TransactionRec(
        id=f"txn_{_hex(rng)}",
        connection_id=account.connection_id,
        account_id=account.id,
        status="pending" if pending else "posted",
        posted_date=None if pending else day,
        txn_date=day,
        amount_cents=cents,
        currency=account.currency,
        description=description,
        rail=rail,
        counterparty_name=counterparty,
        updated_at=at,
    )


def _day_transactions(
    rng: random.Random, account: AccountRec, day: str, at: float, *, few: bool = False
) -> list[TransactionRec]:
    """A business day's activity on one account."""
    cur = account.currency
    rails = _RAILS.get(cur, _RAILS["USD"])
    out: list[TransactionRec] = []
    d = _day(day)
    if account.type == "checking":
        count = rng.randint(0, 2) if few else rng.randint(1, 4)
        for _ in range(count):
            if rng.random() < 0.35:
                who = rng.choice(_CUSTOMERS)
                cents = rng.randint(50_000, 2_500_000)
                rail = rng.choice(rails["in"])
                out.append(_txn(rng, account, day, cents, who, rail, f"Payment from {who}", at))
            else:
                who, how = rng.choice(_VENDORS)
                rail = "card" if how == "card" else rng.choice(rails["out"])
                cents = -rng.randint(2_000, 400_000)
                out.append(_txn(rng, account, day, cents, who, rail, f"Payment to {who}", at))
        if d.day in (14, 15) and rng.random() < 0.5 and not few:
            who = _TAX.get(cur, "Tax authority")
            cents = -rng.randint(100_000, 900_000)
            out.append(_txn(rng, account, day, cents, who, rails["out"][0], "Tax payment", at))
    elif account.type == "creditCard":
        for _ in range(rng.randint(0, 1) if few else rng.randint(0, 3)):
            who, _how = rng.choice([v for v in _VENDORS if v[1] == "card"])
            cents = -rng.randint(1_500, 150_000)
            out.append(_txn(rng, account, day, cents, who, "card", f"Card purchase {who}", at))
        if d.day <= 3 and rng.random() < 0.4:
            cents = rng.randint(100_000, 500_000)
            out.append(
                _txn(rng, account, day, cents, "Card payment", "internalTransfer", "Payment", at)
            )
    else:  # savings, moneyMarket
        if d.day <= 3 and rng.random() < 0.5:
            cents = rng.randint(500, 40_000)
            out.append(
                _txn(rng, account, day, cents, account.name, "internalTransfer", "Interest", at)
            )
        if rng.random() < (0.02 if few else 0.05):
            cents = rng.choice([-1, 1]) * rng.randint(100_000, 2_000_000)
            out.append(
                _txn(
                    rng,
                    account,
                    day,
                    cents,
                    "Operating Account",
                    "internalTransfer",
                    "Transfer",
                    at,
                )
            )
    return out


def generate_history(
    seed: int,
    conn: ConnectionRec,
    country: str | None,
    at: float,
    days: int,
    next_seq: Callable[[], int],
) -> Generated:
    """2-4 accounts with `days` days of daily balances and transactions, ending on `at`'s day."""
    rng = random.Random(f"{seed}:{conn.id}:history")
    currency = currency_for(country, conn.portal_url)
    count = rng.randint(2, 4)
    templates = [_TEMPLATES[0], *rng.sample(_TEMPLATES[1:], count - 1)]
    brand = conn.institution_name or "Business"
    today = _day(iso_date(at))
    dates = [(today - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
    result = Generated([], [], [])
    for name, type_, official in templates:
        digits = f"{rng.randint(0, 9999):04d}"
        limit = rng.choice([2_500_000, 5_000_000, 10_000_000]) if type_ == "creditCard" else 0
        account = AccountRec(
            id=f"acct_{_hex(rng)}",
            seq=next_seq(),
            connection_id=conn.id,
            entity_id=conn.entity_id,
            name=name,
            official_name=f"{brand} {official}",
            type=type_,
            currency=currency,
            masked_number=f"****{digits}",
            current_cents=0,
            available_cents=0,
            credit_limit_cents=limit,
            balance_as_of=at,
            created_at=conn.created_at,
            updated_at=at,
        )
        if type_ == "creditCard":
            ledger = -rng.randint(50_000, 800_000)
        elif type_ == "checking":
            ledger = rng.randint(5_000_000, 50_000_000)
        else:
            ledger = rng.randint(10_000_000, 100_000_000)
        txns: list[TransactionRec] = []
        for i, day in enumerate(dates):
            d = _day(day)
            business = d.weekday() < 5
            todays = _day_transactions(rng, account, day, at) if business else []
            if i == len(dates) - 1:  # the most recent one or two are still pending
                for t in todays[:2]:
                    t.status, t.posted_date = "pending", None
            delta = sum(t.amount_cents for t in todays if t.status == "posted")
            ledger += delta
            txns.extend(todays)
            result.balances.append(
                BalanceRec(
                    account_id=account.id,
                    connection_id=conn.id,
                    entity_id=conn.entity_id,
                    date=day,
                    ledger_cents=ledger,
                    delta_cents=delta,
                    source="bankProvided" if business else "derived",
                    currency=currency,
                    updated_at=at,
                )
            )
        account.current_cents = ledger
        account.available_cents = available(account, txns)
        result.accounts.append(account)
        result.transactions.extend(txns)
    return result


def available(account: AccountRec, txns: list[TransactionRec]) -> int:
    """Available funds: ledger plus pending debits (and the unused limit on a card)."""
    pending_out = sum(t.amount_cents for t in txns if t.status == "pending" and t.amount_cents < 0)
    base = account.current_cents + pending_out
    return base + account.credit_limit_cents if account.type == "creditCard" else base


def sync_transactions(
    seed: int, conn: ConnectionRec, accounts: list[AccountRec], day: str, at: float
) -> list[TransactionRec]:
    """The few new transactions a completed manual sync finds (deterministic per sync number)."""
    rng = random.Random(f"{seed}:{conn.id}:sync:{conn.syncs_completed}")
    out: list[TransactionRec] = []
    for account in sorted(accounts, key=lambda a: a.seq):
        out.extend(_day_transactions(rng, account, day, at, few=True))
    return out
