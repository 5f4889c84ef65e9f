"""The checks an uploaded CSV file passes as bytes, before any CSV is parsed: size,
UTF-16/UTF-32 (by byte-order mark, or by the NUL bytes UTF-16 puts between ASCII
characters), empty file, NUL bytes, line length (on the raw bytes, with numpy, so a single
huge line is rejected cheaply) and UTF-8 (a leading BOM is stripped).

Line numbers are 1-based physical lines (``\\n``, ``\\r\\n`` and a lone ``\\r`` each end
one), as :mod:`service.datasets.csv_parse` counts them.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from service.datasets.csv_errors import DatasetError

__all__ = ["SCAN_BLOCK", "check_bytes", "check_file"]

_BOM = b"\xef\xbb\xbf"
# Byte-order marks of encodings the file must not be in (UTF-32's first: it starts like
# UTF-16's), and how much of the file to look at for a UTF-16 file without one.
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"),
    (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
    (b"\xff\xfe", "UTF-16 (little-endian)"),
    (b"\xfe\xff", "UTF-16 (big-endian)"),
)
_SNIFF_BYTES = 256
#: Bytes scanned at a time for over-long lines (tests make it small).
SCAN_BLOCK = 256 * 1024
_LF, _CR = ord("\n"), ord("\r")


def _line_at(data: bytes, offset: int) -> int:
    """1-based line number of the byte at ``offset`` (``\\n``, ``\\r\\n`` or ``\\r`` end lines)."""
    return (
        data.count(b"\n", 0, offset)
        + data.count(b"\r", 0, offset)
        - data.count(b"\r\n", 0, offset)
        + 1
    )


def _wide_encoding(data: bytes) -> str | None:
    """The name of a UTF-16 or UTF-32 encoding ``data`` is evidently in, else ``None``.

    Known by its byte-order mark, or (without one) by NUL bytes in every other position
    of the first line, which is what UTF-16 makes of ASCII text.
    """
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            return name
    head = data[:_SNIFF_BYTES]
    if len(head) >= 4:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) >= 0.8 * len(odd) and even.count(0) <= 0.2 * len(even):
            return "UTF-16 (little-endian)"
        if even.count(0) >= 0.8 * len(even) and odd.count(0) <= 0.2 * len(odd):
            return "UTF-16 (big-endian)"
    return None


def _long_line(data: bytes, max_line_bytes: int) -> tuple[int, int] | None:
    """``(byte offset, length)`` of the first line longer than ``max_line_bytes``, or None.

    Scans the bytes in blocks with numpy, so the cost is a few passes over the data and
    the memory a few times one block, however long the lines are.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    start = 0  # offset of the line being measured
    for lo in range(0, len(arr), SCAN_BLOCK):
        block = arr[lo : lo + SCAN_BLOCK]
        breaks = np.flatnonzero((block == _LF) | (block == _CR)) + lo
        if breaks.size:
            starts = np.concatenate(([start], breaks[:-1] + 1))
            too_long = np.flatnonzero(breaks - starts > max_line_bytes)
            if too_long.size:
                i = int(too_long[0])
                return int(starts[i]), int(breaks[i] - starts[i])
            start = int(breaks[-1]) + 1
        elif lo + len(block) - start > max_line_bytes:
            ends = [e for e in (data.find(b"\n", start), data.find(b"\r", start)) if e >= 0]
            return start, (min(ends) if ends else len(data)) - start
    if len(data) - start > max_line_bytes:
        return start, len(data) - start
    return None


def check_bytes(data: bytes, *, max_bytes: int, max_line_bytes: int) -> str:
    """Check size, encoding, NUL bytes and line length; return the decoded text (BOM removed)."""
    if len(data) > max_bytes:
        raise DatasetError(f"the file is {len(data)} bytes; the limit is {max_bytes} bytes")
    wide = _wide_encoding(data)
    if wide:
        raise DatasetError(
            f"the file is encoded as {wide}; save it as UTF-8 (in Excel: "
            "'CSV UTF-8'; elsewhere: encoding UTF-8) and upload it again"
        )
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data or data.isspace():  # (data.strip() would copy the whole file)
        raise DatasetError("the file is empty; expected a CSV file with a header row")

    nul = data.find(b"\x00")
    if nul >= 0:
        line = _line_at(data, nul)
        raise DatasetError(
            f"a NUL byte (0x00) at line {line} (byte offset {nul}): this looks like a binary "
            "file, not text; upload a plain-text CSV file",
            row=line,
        )

    if len(data) > max_line_bytes:
        found = _long_line(data, max_line_bytes)
        if found is not None:
            offset, length = found
            line = _line_at(data, offset)
            raise DatasetError(
                f"line {line} is {length} bytes long; lines may be at most {max_line_bytes} bytes",
                row=line,
            )

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_at(data, exc.start)
        raise DatasetError(
            f"invalid UTF-8 at line {line} (byte 0x{data[exc.start]:02x} at byte offset "
            f"{exc.start}); the file must be encoded as UTF-8: re-save it as UTF-8 (a file "
            "from Excel is often Windows-1252 or Latin-1)",
            row=line,
        ) from None


def _blocks(f: BinaryIO) -> Iterator[bytes]:
    """``f`` from where it is, in blocks of about :data:`SCAN_BLOCK` bytes, none of which
    ends with ``\\r``: a ``\\r\\n`` is never split, so each block counts its own lines."""
    while block := f.read(SCAN_BLOCK):
        while block.endswith(b"\r") and (more := f.read(1)):
            block += more
        yield block


def _breaks(block: bytes, end: int | None = None) -> int:
    """Line breaks in ``block[:end]`` (``\\r\\n`` counts once)."""
    return block.count(b"\n", 0, end) + block.count(b"\r", 0, end) - block.count(b"\r\n", 0, end)


def check_file(f: BinaryIO, *, max_bytes: int, max_line_bytes: int) -> tuple[int, int]:
    """:func:`check_bytes` for a file, read once in blocks: the same checks, the same
    errors (the same one first), in memory of a few blocks whatever the file's size.

    Returns ``(offset of the text, number of physical lines)``: the text starts after a
    UTF-8 byte-order mark, if there is one.
    """
    f.seek(0, 2)
    size = f.tell()
    if size > max_bytes:
        raise DatasetError(f"the file is {size} bytes; the limit is {max_bytes} bytes")
    f.seek(0)
    head = f.read(_SNIFF_BYTES)
    wide = _wide_encoding(head)
    if wide:
        raise DatasetError(
            f"the file is encoded as {wide}; save it as UTF-8 (in Excel: "
            "'CSV UTF-8'; elsewhere: encoding UTF-8) and upload it again"
        )
    skip = len(_BOM) if head.startswith(_BOM) else 0
    f.seek(skip)

    decoder = codecs.getincrementaldecoder("utf-8")()
    lines_before = 0  # line breaks before the current block
    offset = 0  # of the current block, in the text (after the BOM)
    line_start = 0  # offset of the line being measured
    long_line: tuple[int, int, int] | None = None  # (line, offset, length)
    bad_utf8: tuple[int, int, int] | None = None  # (line, offset, byte)
    blank = True
    last = b""
    for block in _blocks(f):
        blank = blank and block.isspace()
        nul = block.find(b"\x00")
        if nul >= 0:  # the first error to report, wherever the others are
            line = lines_before + _breaks(block, nul) + 1
            raise DatasetError(
                f"a NUL byte (0x00) at line {line} (byte offset {offset + nul}): this looks "
                "like a binary file, not text; upload a plain-text CSV file",
                row=line,
            )
        if long_line is None:
            arr = np.frombuffer(block, dtype=np.uint8)
            breaks = np.flatnonzero((arr == _LF) | (arr == _CR)) + offset
            if breaks.size:
                starts = np.concatenate(([line_start], breaks[:-1] + 1))
                too_long = np.flatnonzero(breaks - starts > max_line_bytes)
                if too_long.size:
                    i = int(too_long[0])
                    start = int(starts[i])
                    line = lines_before + _breaks(block, max(0, start - offset)) + 1
                    long_line = (line, start, int(breaks[i]) - start)
                line_start = int(breaks[-1]) + 1
        if bad_utf8 is None:
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                local = max(0, at - offset)
                bad_utf8 = (lines_before + _breaks(block, local) + 1, at, exc.object[exc.start])
        lines_before += _breaks(block)
        offset += len(block)
        last = block[-1:]
    if not offset or blank:
        raise DatasetError("the file is empty; expected a CSV file with a header row")
    if long_line is None and offset - line_start > max_line_bytes:
        long_line = (lines_before + 1, line_start, offset - line_start)
    if long_line is not None:
        line, _, length = long_line
        raise DatasetError(
            f"line {line} is {length} bytes long; lines may be at most {max_line_bytes} bytes",
            row=line,
        )
    if bad_utf8 is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:  # the file ends inside a character
            at = offset - len(exc.object) + exc.start
            bad_utf8 = (lines_before + 1, at, exc.object[exc.start])
    if bad_utf8 is not None:
        line, at, byte = bad_utf8
        raise DatasetError(
            f"invalid UTF-8 at line {line} (byte 0x{byte:02x} at byte offset {at}); the file "
            "must be encoded as UTF-8: re-save it as UTF-8 (a file from Excel is often "
            "Windows-1252 or Latin-1)",
            row=line,
        )
    n_lines = lines_before if last in (b"\n", b"\r") else lines_before + 1
    return skip, n_lines
