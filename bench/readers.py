"""Raw text tables -> string columns that still know where each row came from.

Dataset plugins read files here; typing, repairs and anomaly checks happen once, in
`bench.cleaning`. Every row carries `_line` (1-based line in its file) and `_error` (why the row
is structurally broken, or None), so a problem is always reported as "file line N: what was
expected" instead of a traceback from inside pandas.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError

LINE, ERROR = "_line", "_error"
# A one-byte stand-in for multi-character separators (ML-1M's `::`), so pandas' C parser works.
_UNIT_SEP = "\x1f"


def read_text(path: Path, encoding: str) -> str:
    """The whole file decoded; a missing file, bad bytes or binary content -> one clear line."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BenchError(f"{path} line {line}: byte 0x{data[exc.start]:02x} is not valid "
                         f"{encoding} text; expected a {encoding}-encoded file") from None
    except LookupError:
        raise BenchError(f"{path}: unknown encoding {encoding!r}") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise BenchError(f"{path} line {line}: NUL byte in text; expected a plain "
                         f"{encoding} text file (not binary, not UTF-16)")
    return text.removeprefix("\ufeff")


def read_delimited(path: Path, sep: str, columns: list[str], encoding: str = "latin-1",
                   what: str = "") -> pd.DataFrame:
    """A header-less delimited file -> one string column per name, plus `_line` and `_error`.

    Lines with the wrong number of fields are kept with `_error` set (the cleaning policy decides
    to stop or to drop them); a file where *no* line has the expected shape is refused at once,
    since that is a wrong separator or a wrong file, not a few bad rows.
    """
    path = Path(path)
    text = read_text(path, encoding)
    lines = pd.Series(text.split("\n"), dtype=object).str.rstrip("\r")
    line_no = np.arange(1, len(lines) + 1)
    keep = lines.str.strip() != ""
    lines, line_no = lines[keep].reset_index(drop=True), line_no[keep.to_numpy()]
    shape = f"{len(columns)} fields separated by {sep!r}" + (f" ({what})" if what else "")
    if lines.empty:
        raise BenchError(f"{path}: file is empty; expected lines of {shape}")
    if len(sep) > 1:
        lines = lines.str.replace(sep, _UNIT_SEP, regex=False)
        sep = _UNIT_SEP
    n_fields = lines.str.count(re.escape(sep)).to_numpy() + 1
    good = n_fields == len(columns)
    if not good.any():
        raise BenchError(f"{path} line {line_no[0]}: expected {shape}, found {n_fields[0]} "
                         "(wrong separator or wrong file?)")
    frame = pd.DataFrame(index=range(len(lines)), columns=columns, dtype=object)
    parsed = pd.read_csv(io.StringIO("\n".join(lines[good])), sep=sep, header=None,
                         names=columns, dtype=str, keep_default_na=False, na_filter=False,
                         quoting=csv.QUOTE_NONE, engine="c")
    frame.loc[good, columns] = parsed.to_numpy()
    frame[LINE] = line_no
    frame[ERROR] = None
    frame.loc[~good, ERROR] = [f"expected {shape}, found {k}" for k in n_fields[~good]]
    frame.attrs["source"] = str(path)
    return frame


def read_table_file(path: Path, fmt: str | None = None, sep: str | None = None,
                    encoding: str = "utf-8") -> pd.DataFrame:
    """A CSV/TSV/Parquet file with a header -> string columns (Parquet keeps its types), with
    `_line` (data rows start at line 2 of a text file) and `_error`."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt == "parquet":
        if not path.is_file():
            raise BenchError(f"{path}: file not found")
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a corrupt file
            raise BenchError(f"{path}: not a readable Parquet file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120]})") from None
        if frame.empty:
            raise BenchError(f"{path}: table is empty; expected at least one row")
        frame = frame.reset_index(drop=True)
        frame[LINE] = np.arange(1, len(frame) + 1)
    elif fmt in ("csv", "tsv", "txt"):
        sep = sep or ("\t" if fmt == "tsv" else ",")
        text = read_text(path, encoding)
        if not text.strip():
            raise BenchError(f"{path}: file is empty; expected a header line and rows")
        header = next(csv.reader(io.StringIO(text.split("\n", 1)[0].rstrip("\r")),
                                 delimiter=sep))
        names = [h.strip() for h in header]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BenchError(f"{path} line 1: duplicate column name(s) {dupes}; expected "
                             "each header name once")
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                                na_filter=False, skip_blank_lines=True, engine="c",
                                on_bad_lines="error")
        except (pd.errors.ParserError, csv.Error) as exc:
            raise BenchError(f"{path}: {str(exc).strip().splitlines()[-1]}; expected "
                             f"{len(names)} fields separated by {sep!r} per row") from None
        frame.columns = names
        if frame.empty:
            raise BenchError(f"{path}: table is empty; expected rows after the header")
        # Data rows follow the header; blank lines were skipped, so number them by content.
        frame[LINE] = _data_line_numbers(text, len(frame))
    else:
        raise BenchError(f"{path}: unknown table format {fmt!r}; expected csv, tsv or parquet")
    frame[ERROR] = None
    frame.attrs["source"] = str(path)
    return frame


def _data_line_numbers(text: str, n_rows: int) -> np.ndarray:
    """Line numbers of the non-blank lines after the header (exact for files without
    multi-line quoted fields; approximate otherwise)."""
    lines = text.split("\n")
    numbers = [i + 1 for i, line in enumerate(lines[1:], start=1) if line.strip()]
    numbers = numbers[:n_rows]
    numbers += list(range(len(lines) + 1, len(lines) + 1 + n_rows - len(numbers)))
    return np.asarray(numbers, dtype=np.int64)
