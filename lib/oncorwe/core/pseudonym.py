"""Pseudonyms: HMAC-SHA256 of a record's kind and id under the project's secret key.

A patient's ``person_key`` and a line's ``line_key`` are the first 16 hex digits of
``HMAC-SHA256(key, "person:<id>")`` (``"line:<id>"``). HMAC rather than a bare
``sha256(key:kind:id)``: a keyed hash with the key simply prepended is open to
length-extension and leans on the hash's behaviour on a secret prefix, while HMAC is the
construction made and proven for a keyed pseudonym (RFC 2104). Without the key the ids
cannot be recovered by hashing candidate ids; with it, anyone can, which is why the key
lives outside the project (:func:`oncorwe.features.build.stage_pseudonym_key`).

The feature stage hashes millions of ids inside the DuckDB query that builds the analysis
table, so the construction exists twice: :func:`pseudonym` in Python (the truth look-ups,
tests) and :func:`pseudonym_sql` in SQL. The SQL form is HMAC spelled out, ``H((K ^ opad)
|| H((K ^ ipad) || m))``, with the two padded keys passed as query parameters
(:func:`pseudonym_params`) so that no secret is ever part of the query's text; a test
checks the two forms give the same digits.
"""

from __future__ import annotations

import hashlib
import hmac

#: Hex digits kept of the HMAC: 64 bits, no collision in 5 million patients to speak of
#: (birthday bound ~2^-25 at 5M keys).
KEY_DIGITS = 16
_BLOCK = 64  # SHA-256's block size in bytes (RFC 2104's B)


def pseudonym(key: str, kind: str, ident: object) -> str:
    """The pseudonym of record ``ident`` of ``kind`` (``person``, ``line``) under ``key``.

    >>> pseudonym("a" * 32, "line", 7) == pseudonym("a" * 32, "line", "7")
    True
    >>> len(pseudonym("a" * 32, "person", 1))
    16
    """
    message = f"{kind}:{ident}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:KEY_DIGITS]


def pseudonym_params(key: str) -> dict[str, bytes]:
    """The query parameters :func:`pseudonym_sql` reads: the key padded to SHA-256's block
    and XOR-ed with HMAC's inner and outer pads (a key longer than a block is hashed
    first, as RFC 2104 says)."""
    raw = key.encode()
    if len(raw) > _BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(_BLOCK, b"\0")
    return {
        "pseudonym_inner": bytes(b ^ 0x36 for b in raw),
        "pseudonym_outer": bytes(b ^ 0x5C for b in raw),
    }


def pseudonym_sql(kind: str, column: str) -> str:
    """DuckDB SQL for the pseudonym of ``column`` (an id column or expression) of ``kind``:
    the same digits as :func:`pseudonym`, with ``$pseudonym_inner`` / ``$pseudonym_outer``
    from :func:`pseudonym_params` bound at execution."""
    if not kind.isidentifier():
        raise ValueError(f"a pseudonym kind is a plain word, got {kind!r}")
    inner = f"sha256($pseudonym_inner::BLOB || encode('{kind}:' || ({column})::VARCHAR))"
    return f"substr(sha256($pseudonym_outer::BLOB || unhex({inner})), 1, {KEY_DIGITS})"
