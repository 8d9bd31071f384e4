"""The pseudonym is HMAC-SHA256 (checked against Python's ``hmac`` module), and the SQL
form the feature stage runs in DuckDB gives the same digits for every key and id."""

from __future__ import annotations

import hashlib
import hmac

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oncorwe.core.pseudonym import KEY_DIGITS, pseudonym, pseudonym_params, pseudonym_sql

# keys as users make them (hex), odd ones (short, non-ASCII) and longer than a block
KEYS = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=64),
    st.text(min_size=1, max_size=200).filter(lambda k: "\0" not in k),
)
IDS = st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=20)


@given(key=KEYS, ids=IDS)
@settings(max_examples=60, deadline=None)
def test_the_sql_pseudonym_is_hmac_sha256_of_kind_and_id(key, ids):
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE t (i BIGINT)")
        con.executemany("INSERT INTO t VALUES (?)", [[i] for i in ids])
        got = con.execute(
            f"SELECT i, {pseudonym_sql('person', 'i')} FROM t", pseudonym_params(key)
        ).fetchall()
    finally:
        con.close()
    for i, digits in got:
        want = hmac.new(key.encode(), f"person:{i}".encode(), hashlib.sha256).hexdigest()
        assert digits == want[:KEY_DIGITS] == pseudonym(key, "person", i)


def test_kind_and_key_each_change_the_pseudonym():
    key = "0" * 64
    assert pseudonym(key, "person", 1) != pseudonym(key, "line", 1)
    assert pseudonym(key, "person", 1) != pseudonym("1" + key[1:], "person", 1)
    # the bare keyed hash it replaced gives other digits
    assert (
        pseudonym(key, "person", 1) != hashlib.sha256(f"{key}:person:1".encode()).hexdigest()[:16]
    )


def test_the_query_text_holds_no_key():
    key = "secret-" + "9" * 40
    assert key not in pseudonym_sql("line", "t.line_id")
    with pytest.raises(ValueError, match="plain word"):
        pseudonym_sql("line'; DROP TABLE t; --", "x")
