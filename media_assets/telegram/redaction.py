"""What never reaches Telegram, in one place: the configured secrets, and by pattern what Apple's requests carry
in their addresses and headers (a failed request's error names its full URL): query strings (signed download
URLs, tokens), account ids (dsid) and client ids. Every text and document the bot sends passes `redact`."""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_PATTERNS = (
    # A URL keeps its address, never its query string.
    (re.compile(r"\b(https?://[^\s?#\"'<>]+)\?[^\s#\"'<>]*"), rf"\1?{REDACTED}"),
    # Account and client ids, and Apple's session headers, written as key=value, key: value or "key": "value".
    (re.compile(r"(?i)\b(dsid|dsWebAuthToken|client_?id|clientBuildNumber|clientMasteringNumber|scnt|"
                r"x-apple-[a-z0-9-]+)(\"?\s*[:=]\s*\"?)([^\s\"&,;}]+)"), rf"\1\2{REDACTED}"),
    # pyicloud's client id, wherever it appears on its own.
    (re.compile(r"\bauth-[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}\b"), REDACTED),
)


def redact(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """`text` with every secret value replaced (longest first, so a secret containing another goes whole),
    then every URL query string, account id and client id."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
