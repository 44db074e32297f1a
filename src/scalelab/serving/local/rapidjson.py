"""Request bodies read as TF Serving reads them: rapidjson 1.1.0's iterative parser, in Python.

TF Serving parses with kParseIterativeFlag (any depth, no recursion), kParseNanAndInfFlag (NaN,
Inf, Infinity, signed) and kParseStopWhenDoneFlag (text after the document is ignored), and does
not check strings for valid UTF-8: their bytes are kept as they are (here as surrogate escapes:
`str.encode("utf-8", "surrogateescape")` gives them back). A leading UTF-8 byte-order mark is
skipped; a NUL byte ends the input. Errors carry rapidjson's wording and byte offset. Slow, and
so only for the bodies that the C parsers cannot be trusted to read the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .status import invalid

_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')  # a run of string bytes that need no attention
_HEX4 = re.compile(rb"[0-9a-fA-F]{4}")
_ESCAPES = {ord(k): v for k, v in zip('"\\/bfnrt', '"\\/\b\f\n\r\t', strict=True)}
_LITERALS = {ord("t"): (b"true", True), ord("f"): (b"false", False), ord("n"): (b"null", None)}
_DIGITS = re.compile(rb"[0-9]*")
# numbers no double can be too small or too big for, each followed by a comma
_NUMBER_RUN = re.compile(
    rb"[ \t\n\r]*(?:-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,17})?(?:[eE][-+]?[0-9]{1,2})?"
    rb"[ \t\n\r]*,[ \t\n\r]*)+"
)
_MAX_BEFORE_DIGIT = 1.7976931348623157e307  # rapidjson stops a big integer at DBL_MAX / 10


class _Error(Exception):
    """A parse error at a byte offset, rapidjson's message."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse(body: bytes) -> Any:
    """The JSON document at the start of `body`; INVALID_ARGUMENT with rapidjson's message."""
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    try:
        return _Reader(body).document()
    except _Error as error:
        raise invalid(f"JSON Parse error: {error} at offset: {error.offset}") from None


class _Reader:
    def __init__(self, body: bytes) -> None:
        end = body.find(b"\0")
        self.text = body if end < 0 else body[:end]
        self.at = 0
        for byte in b"\xef\xbb\xbf":  # rapidjson skips each byte of a UTF-8 BOM that is there
            if self.text[self.at : self.at + 1] == bytes([byte]):
                self.at += 1

    def _skip(self) -> int:
        """Skip whitespace; the next byte (0 at the end)."""
        self.at = _WHITESPACE.match(self.text, self.at).end()  # type: ignore[union-attr]
        return self.text[self.at] if self.at < len(self.text) else 0

    def document(self) -> Any:
        """The root value, built without recursion (a stack of open containers)."""
        stack: list[tuple[Any, str | None]] = []  # (open list or dict, key awaiting its value)
        byte = self._skip()
        if not byte or byte in b"]},:":
            raise _Error("The document is empty.", self.at)
        while True:
            if byte == ord("["):
                self.at += 1
                if self._skip() == ord("]"):
                    self.at += 1
                    value: Any = []
                else:
                    stack.append((self._number_run([]), None))
                    byte = self._value_start("Invalid value.")
                    continue
            elif byte == ord("{"):
                self.at += 1
                byte = self._skip()
                if byte == ord("}"):
                    self.at += 1
                    value = {}
                else:
                    stack.append(({}, self._key(byte)))
                    byte = self._value_start("Invalid value.")
                    continue
            else:
                value = self._scalar(byte)
            # a value is complete: add it to the open container, closing those that end here
            while True:
                if not stack:
                    return value
                container, key = stack[-1]
                byte = self._skip()
                if key is None:
                    container.append(value)
                    if byte == ord(","):
                        self.at += 1
                        self._number_run(container)
                        byte = self._value_start("Invalid value.")
                        break
                    if byte != ord("]"):
                        raise _Error("Missing a comma or ']' after an array element.", self.at)
                else:
                    container[key] = value
                    if byte == ord(","):
                        self.at += 1
                        stack[-1] = (container, self._key(self._skip()))
                        byte = self._value_start("Invalid value.")
                        break
                    if byte != ord("}"):
                        raise _Error("Missing a comma or '}' after an object member.", self.at)
                self.at += 1
                value = stack.pop()[0]

    def _number_run(self, items: list[Any]) -> list[Any]:
        """Add the plain numbers that follow, each with its comma, at C speed: Python's json
        reads them as rapidjson does (rows of thousands of numbers are the usual body)."""
        run = _NUMBER_RUN.match(self.text, self.at)
        if run:
            items.extend(json.loads(b"[" + run[0].rstrip(b" \t\n\r,") + b"]"))
            self.at = run.end()
        return items

    def _value_start(self, message: str) -> int:
        """The first byte of the next value; `message` when none can start there."""
        byte = self._skip()
        if not byte or byte in b"]},:":
            raise _Error(message, self.at)
        return byte

    def _key(self, byte: int) -> str:
        if byte != ord('"'):
            raise _Error("Missing a name for object member.", self.at)
        key = self._string()
        if self._skip() != ord(":"):
            raise _Error("Missing a colon after a name of object member.", self.at)
        self.at += 1
        return key

    def _scalar(self, byte: int) -> Any:
        if byte == ord('"'):
            return self._string()
        if byte in _LITERALS:
            word, value = _LITERALS[byte]
            for expected in word:
                if self.at >= len(self.text) or self.text[self.at] != expected:
                    raise _Error("Invalid value.", self.at)
                self.at += 1
            return value
        return self._number()

    def _string(self) -> str:
        text = self.text
        self.at += 1
        parts = bytearray()
        while True:
            run = _PLAIN.match(text, self.at).end()  # type: ignore[union-attr]
            parts += text[self.at : run]
            self.at = run
            if run >= len(text):
                raise _Error("Missing a closing quotation mark in string.", run)
            byte = text[run]
            if byte == ord('"'):
                self.at += 1
                return parts.decode("utf-8", "surrogateescape")
            if byte != ord("\\"):  # a control character
                raise _Error("Invalid escape character in string.", run)
            parts += self._escape().encode("utf-8", "surrogatepass")

    def _escape(self) -> str:
        escape = self.at
        kind = self.text[escape + 1] if escape + 1 < len(self.text) else 0
        if kind in _ESCAPES:
            self.at += 2
            return _ESCAPES[kind]
        if kind != ord("u"):
            raise _Error("Invalid escape character in string.", escape)
        code = self._hex4(escape, escape + 2)
        if 0xD800 <= code <= 0xDBFF:  # a high surrogate must be followed by a low one
            if self.text[self.at : self.at + 2] != b"\\u":
                raise _Error("The surrogate pair in string is invalid.", escape)
            low = self._hex4(escape, self.at + 2)
            if not 0xDC00 <= low <= 0xDFFF:
                raise _Error("The surrogate pair in string is invalid.", escape)
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        return chr(code)

    def _hex4(self, escape: int, at: int) -> int:
        if not _HEX4.match(self.text, at):
            raise _Error("Incorrect hex digit after \\u escape in string.", escape)
        self.at = at + 4
        return int(self.text[at : at + 4], 16)

    def _number(self) -> float | int:
        text, start = self.text, self.at
        minus = text[start : start + 1] == b"-"
        self.at += minus
        for word, special in ((b"NaN", float("nan")), (b"Inf", float("inf"))):
            if text.startswith(word[:1], self.at):
                for expected in word:
                    if self.at >= len(text) or text[self.at] != expected:
                        raise _Error("Invalid value.", self.at)
                    self.at += 1
                if word == b"Inf" and text.startswith(b"i", self.at):
                    if not text.startswith(b"inity", self.at):
                        raise _Error("Invalid value.", self.at + _common(text, self.at, b"inity"))
                    self.at += 5
                return -special if minus and word == b"Inf" else special
        if not text[self.at : self.at + 1].isdigit():
            raise _Error("Invalid value.", self.at)
        integer_end = self.at + 1 if text[self.at] == ord("0") else _digits_end(text, self.at)
        if integer_end - self.at > 20 and float(text[self.at : integer_end - 1]) >= (
            _MAX_BEFORE_DIGIT
        ):
            raise _Error("Number too big to be stored in double.", start)
        self.at = integer_end
        fraction = 0
        if text.startswith(b".", self.at):
            fraction = _digits_end(text, self.at + 1) - self.at - 1
            if not fraction:
                raise _Error("Miss fraction part in number.", self.at + 1)
            self.at += 1 + fraction
        if text[self.at : self.at + 1] in (b"e", b"E"):
            sign = text[self.at + 1 : self.at + 2]
            digits = self.at + 1 + (sign in (b"+", b"-"))
            end = _digits_end(text, digits)
            if end == digits:
                raise _Error("Miss exponent in number.", digits)
            if sign != b"-" and int(text[digits:end].lstrip(b"0")[:12] or b"0") > 308 + min(
                fraction, 17
            ):
                raise _Error("Number too big to be stored in double.", start)
            self.at = end
        token = text[start : self.at]
        return float(token) if self.at > integer_end else int(token)


def _digits_end(text: bytes, at: int) -> int:
    return _DIGITS.match(text, at).end()  # type: ignore[union-attr]


def _common(text: bytes, at: int, word: bytes) -> int:
    """How many bytes of `word` match `text` from `at`."""
    count = 0
    while count < len(word) and text[at + count : at + count + 1] == word[count : count + 1]:
        count += 1
    return count
