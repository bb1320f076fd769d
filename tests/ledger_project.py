"""A small Python project with a thorough pytest suite, for planting tests: every bug kind has a
place here (SQL, files, async code, None defaults, exceptions, calls across modules)."""

from __future__ import annotations

ERRORS = '''\
class LedgerError(Exception):
    """A ledger operation failed; ``account`` names the account when there is one."""

    def __init__(self, message, account=None):
        super().__init__(message)
        self.account = account
'''

MONEY = '''\
from .errors import LedgerError


def to_cents(amount, rate):
    """An amount in a foreign currency, in euro cents at ``rate`` units per euro."""
    return round(amount / rate * 100)


def split(total, parts):
    """``total`` cents in ``parts`` shares that differ by one cent at most."""
    if parts <= 0:
        raise LedgerError("parts must be positive")
    share = total // parts
    rest = total - share * parts
    return [share + 1 if i < rest else share for i in range(parts)]


def clamp(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def label(cents, currency=None):
    if currency is None:
        currency = "EUR"
    return "%d.%02d %s" % (cents // 100, cents % 100, currency)
'''

STORE = """\
import sqlite3

from .errors import LedgerError


def open_db(path=":memory:"):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS entries (account TEXT, cents INTEGER)")
    return conn


def add_entry(conn, account, cents):
    conn.execute("INSERT INTO entries (account, cents) VALUES (?, ?)", (account, cents))


def balance(conn, account):
    row = conn.execute("SELECT SUM(cents) FROM entries WHERE account = ?", (account,)).fetchone()
    if row[0] is None:
        return 0
    return row[0]


def history(conn, account):
    rows = conn.execute("SELECT cents FROM entries WHERE account = ? ORDER BY rowid", (account,)).fetchall()
    if not rows:
        raise LedgerError("no entries", account=account)
    return [row[0] for row in rows]
"""

FILES = """\
from .errors import LedgerError


def read_entries(path):
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            account, cents = line.rsplit(",", 1)
            entries.append((account.strip(), parse_cents(cents.strip())))
    return entries


def write_entries(path, entries):
    with open(path, "w", encoding="utf-8") as handle:
        for account, cents in entries:
            handle.write(account + "," + str(cents) + "\\n")


def parse_cents(text):
    try:
        return int(text)
    except ValueError as exc:
        raise LedgerError("not a number: " + repr(text)) from exc
"""

SYNC = """\
import asyncio

from .errors import LedgerError
from .money import to_cents


class Rates:
    def __init__(self, table):
        self.table = table

    async def rate(self, currency):
        await asyncio.sleep(0)
        if currency not in self.table:
            raise LedgerError("unknown currency " + currency)
        return self.table[currency]


async def convert_all(rates, amounts, currency):
    rate = await rates.rate(currency)
    converted = []
    for amount in amounts:
        converted.append(to_cents(amount, rate))
    return converted


async def total(rates, amounts, currency):
    cents = await convert_all(rates, amounts, currency)
    return sum(cents)
"""

REPORT = """\
from .money import clamp, label, split
from .store import balance


def summary(conn, accounts, low, high):
    lines = []
    for account in accounts:
        cents = clamp(balance(conn, account), low, high)
        lines.append(account + ": " + label(cents))
    return lines


def shares(total_cents, parts):
    return split(total_cents, parts)
"""

TESTS = """\
import asyncio

import pytest

from ledger.errors import LedgerError
from ledger.files import parse_cents, read_entries, write_entries
from ledger.money import clamp, label, split, to_cents
from ledger.report import shares, summary
from ledger.store import add_entry, balance, history, open_db
from ledger.sync import Rates, convert_all, total


def test_to_cents():
    assert to_cents(10, 2) == 500
    assert to_cents(3, 4) == 75


def test_split():
    assert split(10, 3) == [4, 3, 3]
    assert split(9, 3) == [3, 3, 3]
    assert split(1, 1) == [1]
    with pytest.raises(LedgerError):
        split(10, 0)


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10


def test_label():
    assert label(1234) == "12.34 EUR"
    assert label(5, "USD") == "0.05 USD"


def test_store():
    conn = open_db()
    add_entry(conn, "O'Brien", 250)
    add_entry(conn, "O'Brien", 50)
    add_entry(conn, "alice", 7)
    assert balance(conn, "O'Brien") == 300
    assert balance(conn, "alice") == 7
    assert balance(conn, "nobody") == 0
    assert history(conn, "O'Brien") == [250, 50]
    with pytest.raises(LedgerError) as info:
        history(conn, "nobody")
    assert info.value.account == "nobody"
    conn.close()


def test_files(tmp_path):
    path = tmp_path / "entries.csv"
    write_entries(path, [("alice", 5), ("bob, jr", -3)])
    assert path.read_text(encoding="utf-8") == "alice,5\\nbob, jr,-3\\n"
    assert read_entries(path) == [("alice", 5), ("bob, jr", -3)]


def test_parse_cents():
    assert parse_cents("42") == 42
    with pytest.raises(LedgerError):
        parse_cents("4.2")


def test_sync():
    rates = Rates({"USD": 2})
    assert asyncio.run(convert_all(rates, [1, 3], "USD")) == [50, 150]
    assert asyncio.run(total(rates, [1, 3], "USD")) == 200
    with pytest.raises(LedgerError):
        asyncio.run(total(rates, [1], "GBP"))


def test_report():
    conn = open_db()
    add_entry(conn, "alice", 1500)
    add_entry(conn, "bob", 20)
    add_entry(conn, "carol", 700)
    assert summary(conn, ["alice", "bob", "carol"], 100, 1000) == [
        "alice: 10.00 EUR",
        "bob: 1.00 EUR",
        "carol: 7.00 EUR",
    ]
    assert shares(7, 2) == [4, 3]
    conn.close()
"""

FILES_MAP = {
    "README.md": "# ledger\n\nA tiny ledger.\n",
    "ledger/__init__.py": "",
    "ledger/errors.py": ERRORS,
    "ledger/money.py": MONEY,
    "ledger/store.py": STORE,
    "ledger/files.py": FILES,
    "ledger/sync.py": SYNC,
    "ledger/report.py": REPORT,
    "tests/test_ledger.py": TESTS,
}
