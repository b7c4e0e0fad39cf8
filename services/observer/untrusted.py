"""Handling of workload-supplied text (cmdline, comm, cgroup names).

Everything a workload can choose is untrusted: it may be huge, not UTF-8, or
written to read like instructions to an agent ("ignore previous rules ...").
These helpers bound it, make it valid printable UTF-8 (invalid bytes and
control characters become visible escapes) and quote it, so a description that
embeds it shows unambiguously where schedcp's words end and the workload's begin.
"""

from __future__ import annotations

import json

#: Longest single untrusted string kept (characters, after escaping).
MAX_TEXT = 256
#: Most argv elements kept from a cmdline.
MAX_ARGS = 32

_ELLIPSIS = "…"


def clean_text(raw: bytes | str, *, limit: int = MAX_TEXT) -> str:
    """Return ``raw`` as bounded, printable, valid UTF-8.

    Invalid bytes become ``\\xNN`` escapes and control characters (including
    newlines, which could fake a new paragraph in a prompt) become ``\\xNN`` or
    ``\\uNNNN`` escapes; the result is cut to ``limit`` characters with a
    trailing ellipsis when it was longer.
    """
    if isinstance(raw, bytes):
        # Bound before decoding: a 1 MiB cmdline must not cost a 1 MiB decode.
        text = raw[: limit * 4 + 4].decode("utf-8", errors="backslashreplace")
        truncated = len(raw) > limit * 4 + 4
    else:
        text = raw[: limit * 4 + 4]
        truncated = len(raw) > limit * 4 + 4
        # Lone surrogates (from surrogateescape decoding) are not valid UTF-8.
        text = text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="backslashreplace")
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0x80 <= code < 0xA0 or code in (0x2028, 0x2029, 0xFEFF) or 0xD800 <= code < 0xE000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    cleaned = "".join(out)
    if len(cleaned) > limit or truncated:
        cleaned = cleaned[: max(0, limit - 1)] + _ELLIPSIS
    return cleaned


def clean_argv(raw: bytes, *, max_args: int = MAX_ARGS, limit: int = MAX_TEXT) -> list[str]:
    """Split a NUL-separated /proc cmdline into bounded, cleaned arguments."""
    parts = raw.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    argv = [clean_text(p, limit=limit) for p in parts[:max_args]]
    if len(parts) > max_args:
        argv.append(f"{_ELLIPSIS}(+{len(parts) - max_args} more arguments)")
    return argv


def quote(text: str) -> str:
    """Quote cleaned text as a JSON string literal: an unambiguous data island."""
    return json.dumps(text, ensure_ascii=False)
