"""Where personal data stops: the respondent key and the free-text scrubber.

Respondents are linked across waves by HMAC-SHA256 over a normalised identifier. The key never enters
git or any output: it comes from TONGXING_LINKAGE_KEY, or a git-ignored file created on the first run.
Without the key, a respondent_key cannot be turned back into a phone number by trying all numbers.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from pathlib import Path

import pandas as pd

from pipelines.config import Config

ENV_KEY = "TONGXING_LINKAGE_KEY"

PHONE = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d[-\s]?\d{4}[-\s]?\d{4}(?!\d)")
LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")
ID_CARD = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
WECHAT = re.compile(r"(?:微信号?|vx|VX|wx|WX)[:：\s]*[A-Za-z][\w-]{5,19}")


def linkage_key(config: Config) -> bytes:
    """The HMAC key: the environment wins; otherwise the key file, created (0600) on first use."""
    env = os.environ.get(ENV_KEY, "").strip()
    if env:
        return env.encode("utf-8")
    path = Path(config.root) / config.linkage["key_file"]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32) + "\n", encoding="ascii")
        os.chmod(path, 0o600)
        gitignore = path.parent / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n", encoding="ascii")
    return path.read_text(encoding="ascii").strip().encode("ascii")


def normalise_phone(value: object) -> str:
    """Digits of a mainland mobile number; Excel's `1.38123E+10` and `+86` prefixes are undone."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if re.fullmatch(r"\d(\.\d+)?[eE]\+?\d+", text):
        mantissa = text.split("e")[0].split("E")[0].replace(".", "")
        if len(mantissa) < 11:
            return ""  # Excel kept only some digits (1.38123E+10): the number cannot identify anyone
        try:
            text = f"{float(text):.0f}"
        except ValueError:
            return ""
    digits = re.sub(r"\D", "", text)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits if len(digits) == 11 and digits.startswith("1") else ""


def normalise_text_id(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return "".join(unicodedata.normalize("NFKC", str(value)).split()).lower()


def respondent_keys(identifiers: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 hex of each normalised identifier; empty where there is none."""
    def one(text: str) -> str:
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest() if text else ""
    return identifiers.map(one).astype("string")


def scrub_text(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Free text with phone numbers, ID-card numbers, e-mails and WeChat ids replaced by a marker.

    Returns the scrubbed text and a boolean Series telling which cells changed (for the cleaning log,
    which records that a cell was scrubbed but never the removed value).
    """
    text = series.astype("string")
    scrubbed = text
    for pattern, marker in ((ID_CARD, "[证件号已删除]"), (PHONE, "[电话已删除]"), (LANDLINE, "[电话已删除]"),
                            (EMAIL, "[邮箱已删除]"), (WECHAT, "[微信号已删除]")):
        scrubbed = scrubbed.str.replace(pattern, marker, regex=True)
    changed = (scrubbed != text).fillna(False).astype(bool)
    return scrubbed, changed
