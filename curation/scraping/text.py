"""Decoding a page's bytes (BOM, header, meta charset) and normalising its text to stable ASCII
where a faithful equivalent exists."""

from __future__ import annotations

import codecs
import functools
import re
import unicodedata
from typing import Final


class PageRejected(ValueError):
    """The page cannot be turned into useful text; the message names the problem."""


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HEADER_CHARSET_RE: Final = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
# Matches both <meta charset="x"> and <meta http-equiv="Content-Type" content="...; charset=x">.
_META_CHARSET_RE: Final = re.compile(
    rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)
_SNIFF_BYTES: Final = 2048
# Browsers (WHATWG Encoding) decode these labels as windows-1252, a superset that also maps the
# 0x80-0x9F bytes (curly quotes, dashes) that "latin-1" pages really contain.
_WINDOWS_1252_ALIASES: Final = frozenset(
    {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "cp819"}
)


def decode_html(raw: bytes, *, content_type_header: str | None = None) -> str:
    """Decode raw page bytes to text, strictly.

    The charset comes from, in order: a byte-order mark (which browsers let override
    everything else, as it cannot be wrong about the bytes that follow), the HTTP
    ``Content-Type`` header, a ``<meta charset>`` / ``<meta http-equiv>`` in the first 2 KB,
    and finally UTF-8. Decoding is strict because replacement characters would end up in
    training data unnoticed; a page that does not decode is rejected instead.

    Raises:
        PageRejected: ``"undecodable: ..."`` naming the charset and, for bad bytes, the offset.
    """
    charset, bom_length = _sniff_bom(raw)
    if charset is None:
        charset = _charset_from_header(content_type_header) or _charset_from_meta(raw)
    label = (charset or "utf-8").strip().lower()
    charset = _canonical_charset(label)
    named = charset if charset == label else f"{charset} (labelled {label!r})"
    try:
        return raw[bom_length:].decode(charset, errors="strict")
    except LookupError as exc:  # unknown label, or a non-text codec such as "rot13"
        raise PageRejected(f"undecodable: unknown charset {label!r}") from exc
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.end]
        offset = exc.start + bom_length
        message = f"undecodable: invalid {named} byte(s) {bad!r} at offset {offset}"
        raise PageRejected(message) from exc


def _sniff_bom(raw: bytes) -> tuple[str | None, int]:
    for bom, charset in _BOMS:
        if raw.startswith(bom):
            return charset, len(bom)
    return None, 0


def _charset_from_header(content_type_header: str | None) -> str | None:
    if not content_type_header:
        return None
    match = _HEADER_CHARSET_RE.search(content_type_header)
    return match.group(1) if match else None


def _charset_from_meta(raw: bytes) -> str | None:
    match = _META_CHARSET_RE.search(raw[:_SNIFF_BYTES])
    if not match:
        return None
    charset = match.group(1).decode("ascii").lower()
    # A <meta> we could read as ASCII proves the bytes are not UTF-16/32, whatever it claims
    # (WHATWG rule); such pages are really UTF-8.
    if charset.startswith(("utf-16", "utf16", "utf-32", "utf32")):
        return "utf-8"
    return charset


def _canonical_charset(charset: str) -> str:
    return "cp1252" if charset in _WINDOWS_1252_ALIASES else charset


# --------------------------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------------------------

# Explicit replacements, checked before the generic NFKD fallback: these either have no NFKD
# decomposition (quotes, dashes, symbols) or one we do not want (™ -> "TM", ² -> "2").
_CHAR_MAP: Final[dict[str, str]] = {
    "\u2018": "'",  # left single quote
    "\u2019": "'",  # right single quote / apostrophe
    "\u201a": "'",  # single low-9 quote
    "\u201b": "'",  # single high-reversed-9 quote
    "\u2032": "'",  # prime (feet, minutes)
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',  # double prime (inches, seconds)
    "\u00ab": '"',  # guillemets
    "\u00bb": '"',
    "\u203a": ">",  # single guillemet: manuals use it in menu paths, "Controls › Charging"
    "\u2039": "<",
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash (between words it becomes " - ", see _EM_DASH_BETWEEN_WORDS_RE)
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2022": "-",  # bullet: the text was a list item
    "\u00d7": "x",
    "\u00b1": "+/-",
    "\u2265": ">=",
    "\u2264": "<=",
    "\u2260": "!=",
    "\u2192": "->",
    "\u2190": "<-",
    "\u2122": "",  # ™: removed, adds nothing a reader asks about
    "\u00ae": "",  # ®: removed, same reason
    "\u00a9": "(C)",  # ©: kept as (C), a copyright line without it reads differently
    "\u2028": "\n",  # line separator
    "\u2029": "\n",  # paragraph separator
    "\u2044": "/",  # fraction slash, produced by NFKD of ½ etc.
    # Letters that NFKD does not decompose but that have a standard transliteration.
    "\u00df": "ss",
    "\u00e6": "ae",
    "\u00c6": "AE",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u00f8": "o",
    "\u00d8": "O",
    "\u0142": "l",
    "\u0141": "L",
    "\u0111": "d",
    "\u0110": "D",
}
# Superscript digits: NFKD turns "10²" into "102", which changes the number; "10^2" does not.
_CHAR_MAP.update({sup: f"^{digit}" for digit, sup in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")})

# Invisible characters that carry no text: soft hyphen, zero-width space, word joiner, BOM.
# (ZWJ/ZWNJ are kept: they are meaningful in emoji sequences and several scripts.)
_INVISIBLE_RE: Final = re.compile("[\u00ad\u200b\u2060\ufeff]")
_EM_DASH_BETWEEN_WORDS_RE: Final = re.compile(r"(?<=\w)[ \t\u00a0]*\u2014[ \t\u00a0]*(?=\w)")
# "20 °C", "20°C", "20 ° F" and the single-character ℃/℉ all become "20 degrees C/F".
_DEGREE_UNIT_RE: Final = re.compile(
    r"[ \t\u00a0]*(?:\u00b0[ \t\u00a0]*([CF])|\u2103|\u2109)(?![A-Za-z])"
)
_DEGREE_RE: Final = re.compile(r"[ \t\u00a0]*\u00b0[ \t\u00a0]*")
# "1½" must read "1 1/2", not "11/2".
_FRACTION_AFTER_DIGIT_RE: Final = re.compile(r"(?<=\d)(?=[\u00bc-\u00be\u2150-\u215e])")
# Latin accents left over after NFC (a base letter plus a combining mark NFC cannot compose).
_STRAY_LATIN_ACCENT_RE: Final = re.compile(r"(?<=[\x00-\x7f])[\u0300-\u036f]+")

_INNER_HSPACE_RUN_RE: Final = re.compile(r"(?<=\S)[ \t\f\v]{2,}|(?<=\S)[\t\f\v]")
_BLANK_LINES_RE: Final = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Normalise text to ASCII where that is faithful, and tidy whitespace.

    Why: the manuals' HTML mixes curly quotes, non-breaking spaces, ``°C`` and the like; the
    same question written with straight quotes must embed and match the same way, and ASCII is
    what tokenizers and graders handle best. Characters with no faithful ASCII equivalent
    (CJK, emoji, Greek ...) are kept rather than dropped, so text is never silently lost.

    Whitespace: runs of spaces/tabs after a line's first character become one space, trailing
    spaces are stripped from every line, three or more newlines become one blank line, and the
    result is stripped of surrounding whitespace. Other lines' leading indentation is kept because
    in markdown it carries meaning (nested list items, indented code).
    """
    text = _normalize_chars(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(_INNER_HSPACE_RUN_RE.sub(" ", line).rstrip() for line in text.split("\n"))
    return _BLANK_LINES_RE.sub("\n\n", text).strip()


def _normalize_chars(text: str) -> str:
    """Character-level half of :func:`normalize_text`; leaves whitespace layout alone.

    Split out so that code blocks and list indentation in the markdown keep their layout.
    """
    if text.isascii():
        return text
    text = _INVISIBLE_RE.sub("", text)
    # Compose first so "e" + combining acute is handled like a precomposed "é".
    text = unicodedata.normalize("NFC", text)
    text = _EM_DASH_BETWEEN_WORDS_RE.sub(" - ", text)
    text = _DEGREE_UNIT_RE.sub(_degree_unit, text)
    text = _DEGREE_RE.sub(_bare_degree, text)
    text = _FRACTION_AFTER_DIGIT_RE.sub(" ", text)
    text = "".join(_ascii_char(char) for char in text)
    return _STRAY_LATIN_ACCENT_RE.sub("", text)


def _degree_unit(match: re.Match[str]) -> str:
    unit = match.group(1) or ("C" if "\u2103" in match.group(0) else "F")
    return f"{_space_before(match)}degrees {unit}"


def _bare_degree(match: re.Match[str]) -> str:
    end = match.end()
    after = " " if end < len(match.string) and match.string[end].isalnum() else ""
    return f"{_space_before(match)}degrees{after}"


def _space_before(match: re.Match[str]) -> str:
    # No space at the start of a line: it would read as indentation in the markdown.
    start = match.start()
    return " " if start > 0 and match.string[start - 1] != "\n" else ""


@functools.lru_cache(maxsize=4096)
def _ascii_char(char: str) -> str:
    """Map one character to its faithful ASCII equivalent, or return it unchanged."""
    if char.isascii():
        return char
    if char in _CHAR_MAP:
        return _CHAR_MAP[char]
    if unicodedata.category(char) == "Zs":  # every kind of Unicode space
        return " "
    # NFKD splits accents off letters (é -> e + U+0301) and unfolds compatibility forms
    # (½ -> 1⁄2, ﬁ -> fi, full-width letters); accept the result only if it is all ASCII.
    decomposed = "".join(
        _CHAR_MAP.get(part, part)
        for part in unicodedata.normalize("NFKD", char)
        if not unicodedata.combining(part)
    )
    if decomposed and decomposed.isascii():
        return decomposed
    return char


# --------------------------------------------------------------------------------------------
# Cross-references that lost their target
# --------------------------------------------------------------------------------------------

# A link's text is where a cross-reference names its target; a page whose links were filled in
# by a script, or a converter that dropped them, leaves "See for more information." (the Model 3
# manual's Normal Operating Sounds, nine times). Read as an answer, it says nothing, and looks
# broken: the sentence, or the empty parenthesis "(see )", is dropped.
_LOST_REFERENCE_RE: Final = re.compile(
    r"(?:^|(?<=[.!?]) )See for\b[^.!?\n]*[.!?](?= |$)"
    r"|\s?\((?:see|refer to)\s*\)",
    re.MULTILINE,
)


def drop_lost_references(markdown: str) -> str:
    """``markdown`` without the cross-references whose target was lost ("See for more
    information.", "(see )"); a paragraph that was nothing else goes with them."""
    if "ee " not in markdown and "efer to" not in markdown:
        return markdown
    kept: list[str] = []
    for line in markdown.split("\n"):
        dropped = _LOST_REFERENCE_RE.sub("", line).rstrip() if line.strip() else line
        if dropped or not line.strip():
            kept.append(dropped)
    text = _BLANK_LINES_RE.sub("\n\n", "\n".join(kept))
    return text if markdown.startswith("\n") else text.lstrip("\n")
