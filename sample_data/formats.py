"""Vectorised text formatting: unique ids, ISO-8601 timestamps, fixed-width strings to Arrow.

Everything here works on whole numpy arrays, so formatting ten million values costs a few
numpy passes instead of ten million Python calls.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DASHES = (8, 13, 18, 23)


def mix64(values: np.ndarray, salt: int) -> np.ndarray:
    """Scramble integers with the splitmix64 finaliser, a bijection on uint64.

    Distinct inputs always give distinct outputs, so ids built from distinct indices are unique
    without any collision check.
    """
    x = values.astype(np.uint64) + np.uint64(salt & 0xFFFF_FFFF_FFFF_FFFF)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _hex_digits(values: np.ndarray) -> np.ndarray:
    """Return an (n, 16) uint8 matrix with the lowercase hex digits of uint64 values."""
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nibbles = (values[:, None] >> shifts[None, :]) & np.uint64(0xF)
    return _HEX[nibbles.astype(np.intp)]


def uuid_strings(indices: np.ndarray, salt: int) -> np.ndarray:
    """Format unique, uuid-shaped ids (8-4-4-4-12 hex) for distinct integer indices.

    The first 64 bits are a bijection of the index, so distinct indices give distinct ids.
    Returns a numpy ``S36`` array.
    """
    hi = mix64(indices, salt)
    lo = mix64(hi, salt ^ 0x5DEECE66D)
    digits = np.concatenate([_hex_digits(hi), _hex_digits(lo)], axis=1)
    out = np.empty((len(indices), 36), dtype=np.uint8)
    out[:, list(_UUID_DASHES)] = ord("-")
    keep = [i for i in range(36) if i not in _UUID_DASHES]
    out[:, keep] = digits
    return out.view("S36").ravel()


def _put_digits(out: np.ndarray, column: int, values: np.ndarray, width: int) -> None:
    """Write ``values`` as zero-padded decimal digits into ``out[:, column:column+width]``."""
    rest = values.copy()
    for offset in range(width - 1, -1, -1):
        out[:, column + offset] = 48 + rest % 10
        rest //= 10


def iso_millis(epoch_ms: np.ndarray) -> np.ndarray:
    """Format epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmm`` (numpy ``S23``, no zone)."""
    ms = np.asarray(epoch_ms, dtype=np.int64)
    days, rem = np.divmod(ms, 86_400_000)
    # Howard Hinnant's civil_from_days, vectorised.
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    hour, rem = np.divmod(rem, 3_600_000)
    minute, rem = np.divmod(rem, 60_000)
    second, milli = np.divmod(rem, 1000)
    out = np.empty((len(ms), 23), dtype=np.uint8)
    for column, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, ".")):
        out[:, column] = ord(char)
    for column, values, width in (
        (0, year, 4),
        (5, month, 2),
        (8, day, 2),
        (11, hour, 2),
        (14, minute, 2),
        (17, second, 2),
        (20, milli, 3),
    ):
        _put_digits(out, column, values, width)
    return out.view("S23").ravel()


def iso_utc(epoch_ms: np.ndarray) -> np.ndarray:
    """Format epoch milliseconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (numpy ``S24``)."""
    body = iso_millis(epoch_ms).view(np.uint8).reshape(-1, 23)
    out = np.empty((body.shape[0], 24), dtype=np.uint8)
    out[:, :23] = body
    out[:, 23] = ord("Z")
    return out.view("S24").ravel()


def fixed_to_arrow(values: np.ndarray) -> pa.StringArray:
    """Wrap a numpy fixed-width bytes array (``S<n>``, ASCII) as an Arrow string array, no copy."""
    values = np.ascontiguousarray(values)
    width = values.dtype.itemsize
    offsets = np.arange(len(values) + 1, dtype=np.int32) * np.int32(width)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(values))


def strings_to_arrow(values: list[str]) -> pa.StringArray:
    """Build an Arrow string array from a list of Python strings."""
    return pa.array(values, type=pa.string())
