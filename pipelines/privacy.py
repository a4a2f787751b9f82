"""Personal data: e-mail addresses are never stored or logged in clear.

- Anything that looks like an e-mail address in text we keep about bad input (a rejected row's record, a reason,
  metadata, log lines) is replaced by `<email redacted>`.
- Free-text columns of valid rows (channel, product category, discount code...) are redacted the same way at ingest
  (`redact_sql`), and so are file names wherever they are said (logs, notes, metadata).
- E-mails (and customer ids that are or contain an e-mail address) are kept only as an HMAC-SHA256 with a
  per-installation secret key, so a list of known addresses cannot be hashed to re-identify customers. The key is
  created on first use in `CLV_HASH_KEY_FILE` (default `~/.config/clv/email_hash.key`), outside the data directory,
  so it never travels with a copied warehouse, snapshot or export. `CLV_HASH_KEY` (64 hex digits) supplies it directly.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REDACTED = "<email redacted>"
# Deliberately broad: a false positive only hides a little text from a rejected record.
EMAIL_PATTERN = r"[^\s,;:\"'<>()\[\]{}|]+@[^\s,;:\"'<>()\[\]{}|@]+\.[A-Za-z]{2,}"
_EMAIL = re.compile(EMAIL_PATTERN)
# The pattern as a DuckDB string literal (RE2: no lookarounds).
_EMAIL_SQL = "'" + EMAIL_PATTERN.replace("'", "''") + "'"
PSEUDONYM_PREFIX = "hmac:"
PSEUDONYM_HEX_DIGITS = 24
KEY_BYTES = 32
_BLOCK = 64  # SHA-256 block size, for the HMAC pads


def redact(text: str | None) -> str | None:
    return None if text is None else _EMAIL.sub(REDACTED, text)


def redact_expr(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(EMAIL_PATTERN, REDACTED)


def default_key_file() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "clv" / "email_hash.key"


@dataclass(frozen=True)
class HashKey:
    key: bytes

    @property
    def fingerprint(self) -> str:
        """Identifies the key (to notice a rotation) without revealing it."""
        return hmac.new(self.key, b"clv key fingerprint", hashlib.sha256).hexdigest()[:16]

    def hmac_hex(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()

    def sql_params(self) -> list[bytes]:
        """The (outer, inner) pads for `HMAC_SQL`: HMAC-SHA256 computed by DuckDB, vectorised, over millions of rows."""
        padded = self.key.ljust(_BLOCK, b"\0")
        return [bytes(b ^ 0x5C for b in padded), bytes(b ^ 0x36 for b in padded)]


def hmac_sql(value_sql: str, outer: str = "$hmac_outer", inner: str = "$hmac_inner") -> str:
    """SQL for HMAC-SHA256(key, value) as hex, given the pads as named parameters (see HashKey.sql_params)."""
    return f"sha256({outer}::blob || unhex(sha256({inner}::blob || encode({value_sql}))))"


def pseudonym_sql(value_sql: str) -> str:
    """A customer id that is or contains an e-mail address (`Anna <anna@x.com>`, `mailto:anna@x.com`) becomes a stable
    keyed pseudonym of the whole trimmed, lower-cased value (a bare address keeps the pseudonym it always had); any
    other id is kept."""
    # contains() first: most ids have no '@', and the regular expression is the expensive part (7 M cart events)
    return (
        f"case when contains({value_sql}, '@') and regexp_matches({value_sql}, {_EMAIL_SQL}) "
        f"then '{PSEUDONYM_PREFIX}' || left({hmac_sql(f'lower(trim({value_sql}))')}, {PSEUDONYM_HEX_DIGITS}) "
        f"else {value_sql} end"
    )


def redact_sql(value_sql: str) -> str:
    """SQL for `redact` of a text column: only the rare values with an '@' pay for the regular expression."""
    return (
        f"case when contains({value_sql}, '@') then regexp_replace({value_sql}, {_EMAIL_SQL}, '{REDACTED}', 'g') "
        f"else {value_sql} end"
    )


def load_key(key_file: Path) -> HashKey:
    """The installation's key: from CLV_HASH_KEY, else the key file, created (mode 600) on first use."""
    supplied = os.environ.get("CLV_HASH_KEY", "").strip()
    if supplied:
        try:
            key = bytes.fromhex(supplied)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ValueError("CLV_HASH_KEY must be at least 32 hex digits (16 bytes); 64 are recommended")
        return HashKey(key)
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
    try:
        key = bytes.fromhex(key_file.read_text().strip())
    except ValueError as exc:
        raise ValueError(f"{key_file}: not a hex key (delete it to create a new one, then run `clv run`)") from exc
    if len(key) < 16:
        raise ValueError(f"{key_file}: key shorter than 16 bytes (delete it to create a new one, then run `clv run`)")
    return HashKey(key)
