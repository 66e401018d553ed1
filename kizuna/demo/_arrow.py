"""Small vectorised builders of Arrow columns from numpy arrays (no Python row loops)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["clock", "join", "numbered", "pick", "stamps", "text"]

_DAY = 86_400
# A string array's 32-bit offsets address at most this many bytes; longer columns go in chunks.
_MAX_BYTES = 2**31 - 1


def numbered(prefix: str, numbers: np.ndarray, width: int) -> pa.Array | pa.ChunkedArray:
    """"C0000042"-style identifiers (an ASCII prefix, then the number zero-padded to `width`)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers) and (numbers.min() < 0 or numbers.max() >= 10**width):
        return join(prefix, pc.utf8_lpad(text(numbers), width, "0"))  # wider than `width`
    return _fixed([prefix.encode("ascii"), _digits(numbers, width)], len(numbers))


def clock(seconds: np.ndarray, valid: np.ndarray | None = None, *, upto: str = "minutes",
          sep: str = "/") -> pa.Array | pa.ChunkedArray:
    """Wall-clock seconds since 1970 as "2024/01/05 13:45"-style text; null where `valid` is False.

    `upto` is "date", "minutes" or "seconds"; `sep` separates year, month and day. The same
    text as formatting each time, built as fixed-width bytes (a table of the days that occur,
    digits for the time of day) instead of a string operation per row.
    """
    seconds = np.asarray(seconds, dtype=np.int64)
    n = len(seconds)
    if valid is not None:
        seconds = np.where(valid, seconds, seconds[valid].min() if valid.any() else 0)
    days = seconds // _DAY
    first = int(days.min()) if n else 0
    calendar = np.arange(first, int(days.max()) + 1 if n else first).astype("datetime64[D]")
    text = np.datetime_as_string(calendar).astype("S10").tobytes().replace(b"-", sep.encode("ascii"))
    dates = np.frombuffer(text, "V10")[days - first] if n else np.empty(0, "V10")
    parts: list[bytes | np.ndarray] = [dates.view(np.uint8).reshape(-1, 10)]
    if upto != "date":
        times = _TIMES if upto == "seconds" else _MINUTES
        parts += [b" ", times[seconds - days * _DAY].view(np.uint8).reshape(n, -1)]
    return _fixed(parts, n, valid)


def text(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())


def pick(words: Sequence[str], index: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """words[index] per row; null where `mask` is False."""
    chosen = pa.array(list(words), pa.string()).take(pa.array(index))
    if mask is None:
        return chosen
    return pc.if_else(pa.array(mask), chosen, pa.scalar(None, pa.string()))


def join(*parts: str | pa.Array) -> pa.Array:
    """Element-wise concatenation of columns and constant strings."""
    return pc.binary_join_element_wise(*parts, "")


def stamps(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Local wall-clock timestamps from int64 seconds; null where `valid` is False."""
    mask = None if valid is None else ~np.asarray(valid)
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, pa.timestamp("us"), mask=mask)


def _digits(numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers below 10**width: (n, width) ASCII bytes.

    Four digits at a time, looked up in a table of "0000" … "9999" (a quarter of the divisions).
    """
    out = np.empty((len(numbers), width), dtype=np.uint8)
    rest = np.asarray(numbers, dtype=np.int64)
    end = width
    while end > 0:
        size = min(4, end)
        out[:, end - size:end] = _QUADS[rest % 10**size][:, 4 - size:]
        rest = rest // 10**size
        end -= size
    return out


_QUADS = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode("ascii"), np.uint8).reshape(-1, 4)
# "HH:MM:SS" and "HH:MM" of every second of a day, as 8- and 5-byte records
_TIMES = np.frombuffer("".join(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_DAY))
                       .encode("ascii"), "V8")
_MINUTES = np.ascontiguousarray(_TIMES.view(np.uint8).reshape(-1, 8)[:, :5]).view("V5").ravel()


def _fixed(parts: list[bytes | np.ndarray], n: int, valid: np.ndarray | None = None
           ) -> pa.Array | pa.ChunkedArray:
    """A string column of `n` ASCII values of one width, from constants and (n, w) byte blocks."""
    sizes = [len(p) if isinstance(p, bytes) else p.shape[1] for p in parts]
    # One record of fixed-size byte fields per row: whole fields copy faster than byte columns.
    data = np.empty(n, dtype=np.dtype([(f"f{i}", f"V{size}") for i, size in enumerate(sizes)]))
    for i, (part, size) in enumerate(zip(parts, sizes, strict=True)):
        data[f"f{i}"] = (np.frombuffer(part, f"V{size}")[0] if isinstance(part, bytes)
                         else np.ascontiguousarray(part).view(f"V{size}").ravel())
    width = sum(sizes)
    rows = max(_MAX_BYTES // max(width, 1), 1)
    chunks = []
    for start in range(0, max(n, 1), rows):
        stop = min(start + rows, n)
        offsets = np.arange(0, (stop - start + 1) * width, width, dtype=np.int32)
        bitmap, nulls = None, 0
        if valid is not None:
            ok = np.asarray(valid[start:stop], dtype=bool)
            nulls = int(len(ok) - ok.sum())
            bitmap = pa.py_buffer(np.packbits(ok, bitorder="little")) if nulls else None
        chunks.append(pa.StringArray.from_buffers(
            stop - start, pa.py_buffer(offsets), pa.py_buffer(data[start:stop].view(np.uint8)), bitmap, nulls))
    return chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks, pa.string())
