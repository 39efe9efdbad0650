"""Cleaning with a report: type conversion, missing values, anomalies and duplicates.

Every check runs on every dataset, is counted (zero counts included) and follows a policy from
`dataset.clean`; `error` stops with one line naming the file, the row and what was expected.
The report is printed, saved in the run record, and its fingerprint identifies the cleaned data.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.readers import ERROR, LINE

# policy key -> accepted actions (the first is the default)
POLICIES: dict[str, tuple[str, ...]] = {
    "malformed": ("error", "drop"),  # wrong field count, unparsable id/time/number
    "missing": ("drop", "error"),  # empty user/item/timestamp/rating
    "bad_timestamps": ("drop", "keep", "error"),  # zero/negative, or later than now
    "out_of_range": ("drop", "clip", "keep", "error"),  # rating outside rating_range
    "duplicates": ("drop", "keep", "error"),  # same (user, item, timestamp) again; side ids twice
    "unknown_ids": ("keep", "drop", "error"),  # interaction ids absent from users/items tables
}
ID_KINDS = ("auto", "int", "str")
DEFAULT_POLICY = {**{k: v[0] for k, v in POLICIES.items()}, "rating_range": None, "ids": "auto"}
_NA_TEXT = {"", "nan", "na", "n/a", "null", "none"}
_INT_RE = r"\+?\d{1,18}"  # non-negative and inside int64
_MAX_TIME = 9e15  # seconds; beyond this a float cannot become an int64 of nanoseconds safely


def resolve_policy(clean_cfg: dict | None) -> dict:
    """`dataset.clean` merged over the defaults, every value checked."""
    policy = dict(DEFAULT_POLICY)
    for key, value in (clean_cfg or {}).items():
        if key not in policy:
            raise BenchError(f"dataset.clean.{key} is unknown; expected one of "
                             f"{sorted(policy)}")
        policy[key] = value
    for key, accepted in POLICIES.items():
        if policy[key] not in accepted:
            raise BenchError(f"dataset.clean.{key}={policy[key]!r}; expected one of "
                             f"{list(accepted)}")
    if policy["ids"] not in ID_KINDS:
        raise BenchError(f"dataset.clean.ids={policy['ids']!r}; expected one of {list(ID_KINDS)}")
    rr = policy["rating_range"]
    if rr is not None:
        if (not isinstance(rr, (list, tuple)) or len(rr) != 2
                or not all(isinstance(v, (int, float)) for v in rr) or rr[0] > rr[1]):
            raise BenchError(f"dataset.clean.rating_range={rr!r}; expected [low, high] or null")
        policy["rating_range"] = [float(rr[0]), float(rr[1])]
    return policy


class Cleaner:
    """Applies one policy to the tables of one dataset, accumulating the report."""

    def __init__(self, policy: dict, dataset: str, now: float | None = None):
        self.policy, self.dataset = policy, dataset
        self.now = time.time() if now is None else now
        self.checks: list[dict] = []
        self.rows: dict[str, list[int]] = {}
        self.sources: dict[str, str] = {}  # table -> file it was read from

    # -- one check ---------------------------------------------------------------------------
    def apply(self, frame: pd.DataFrame, table: str, check: str, mask: np.ndarray,
              messages, action: str | None = None) -> pd.DataFrame:
        """Count rows flagged by `mask` and act on them; `messages(i)` explains flagged row i."""
        action = action or self.policy[check]
        mask = np.asarray(mask, dtype=bool)
        count = int(mask.sum())
        example = None
        if count:
            first = int(np.flatnonzero(mask)[0])
            example = f"{self._where(frame, table, first)}: {messages(first)}"
        self.checks.append({"table": table, "check": check, "count": count, "action": action,
                            "example": example})
        if not count or action in ("keep", "clip"):
            return frame
        if action == "error":
            more = f" ({count} such rows)" if count > 1 else ""
            raise BenchError(f"{example}{more}; dataset.clean.{check}=error (accepted: "
                             f"{', '.join(POLICIES[check])})")
        return frame[~mask].reset_index(drop=True)

    def _where(self, frame: pd.DataFrame, table: str, row: int) -> str:
        """"file line N" for rows read from a file, "<dataset> <table> table row N" otherwise;
        N is the original position, whatever earlier checks dropped."""
        table = table.split(".")[0]
        source = self.sources.get(table)
        if source:
            return f"{source} line {int(frame[LINE].iat[row])}"
        return f"{self.dataset} {table} table row {int(frame[LINE].iat[row])}"

    # -- tables ------------------------------------------------------------------------------
    def interactions(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = self._start(frame, "interactions")
        n_in = len(frame)
        required = ["user", "item", "timestamp"] + (["rating"] if "rating" in frame else [])
        frame, why = self._convert(frame, required, "interactions")
        frame = self.apply(frame, "interactions", "malformed", why.notna().to_numpy(),
                           lambda i: why.iat[i])
        missing = frame[required].isna()
        frame = self.apply(frame, "interactions", "missing", missing.any(axis=1).to_numpy(),
                           lambda i: f"missing value in column(s) "
                                     f"{[c for c in required if missing[c].iat[i]]}")
        ts = frame["timestamp"].to_numpy()
        frame = self.apply(frame, "interactions", "bad_timestamps",
                           (ts <= 0) | (ts > self.now),
                           lambda i: f"timestamp {ts[i]} is "
                                     f"{'not positive' if ts[i] <= 0 else 'in the future'}; "
                                     "expected epoch seconds in the past")
        if "rating" in frame and self.policy["rating_range"] is not None:
            low, high = self.policy["rating_range"]
            rating = frame["rating"].to_numpy(dtype=float)
            frame = self.apply(frame, "interactions", "out_of_range",
                               (rating < low) | (rating > high),
                               lambda i: f"rating {rating[i]} outside [{low:g}, {high:g}]")
            if self.policy["out_of_range"] == "clip":
                frame["rating"] = frame["rating"].clip(low, high)
        dup = frame.duplicated(["user", "item", "timestamp"], keep="first").to_numpy()
        frame = self.apply(frame, "interactions", "duplicates", dup,
                           lambda i: "same (user, item, timestamp) as an earlier row")
        self.rows["interactions"] = [n_in, len(frame)]
        return frame

    def side(self, frame: pd.DataFrame | None, key: str, table: str,
             id_kind: str) -> pd.DataFrame | None:
        """A users/items table: its id typed like the interactions' id, other columns kept
        (empty text becomes missing, i.e. the unknown feature code)."""
        if frame is None:
            return None
        if key not in frame:
            raise BenchError(f"{frame.attrs.get('source') or table}: lacks the {key!r} column")
        frame = self._start(frame, table)
        n_in = len(frame)
        frame, why = self._convert(frame, [key], table, {key: id_kind})
        frame = self.apply(frame, table, "malformed", why.notna().to_numpy(),
                           lambda i: why.iat[i])
        frame = self.apply(frame, table, "missing", frame[key].isna().to_numpy(),
                           lambda i: f"missing {key} id")
        dup = frame.duplicated(key, keep="first").to_numpy()
        action = "drop" if self.policy["duplicates"] == "keep" else None  # one row per id
        frame = self.apply(frame, table, "duplicates", dup,
                           lambda i: f"{key} id {frame[key].iat[i]} listed again", action)
        for col in frame.columns:
            if col != key and (frame[col].dtype == object
                               or pd.api.types.is_string_dtype(frame[col])):
                frame[col] = frame[col].astype(object).map(
                    lambda v: None if isinstance(v, str) and not v.strip() else v)
        self.rows[table] = [n_in, len(frame)]
        return frame

    def unknown_ids(self, frame: pd.DataFrame, side: pd.DataFrame | None, key: str,
                    table: str) -> pd.DataFrame:
        if side is None:
            return frame
        values = frame[key].to_numpy()
        unknown = ~frame[key].isin(side[key]).to_numpy()
        return self.apply(frame, f"interactions.{key}", "unknown_ids", unknown,
                          lambda i: f"{key} id {values[i]} is not in the {table} table")

    def _start(self, frame: pd.DataFrame, table: str) -> pd.DataFrame:
        """A private copy with `_line` (file line, or 1-based row) and `_error` columns."""
        if frame.attrs.get("source"):
            self.sources[table] = frame.attrs["source"]
        frame = frame.reset_index(drop=True).copy()
        if LINE not in frame:
            frame[LINE] = np.arange(1, len(frame) + 1)
        if ERROR not in frame:
            frame[ERROR] = None
        return frame

    # -- type conversion ---------------------------------------------------------------------
    def _convert(self, frame: pd.DataFrame, columns: list[str], table: str,
                 id_kinds: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """Type the named columns; returns the frame and, per row, why it is malformed."""
        missing_cols = [c for c in columns if c not in frame]
        if missing_cols:
            raise BenchError(f"{self.sources.get(table.split('.')[0]) or table}: lacks column(s) "
                             f"{missing_cols}")
        why = frame[ERROR].copy() if ERROR in frame else pd.Series(None, index=frame.index,
                                                                   dtype=object)
        frame = frame.drop(columns=[ERROR], errors="ignore")
        for col in columns:
            if col in ("user", "item"):
                kind = (id_kinds or {}).get(col) or self.id_kind(frame[col])
                values, bad, expected = _as_id(frame[col], kind)
            elif col == "timestamp":
                values, bad, expected = _as_epoch(frame[col])
            else:
                values, bad, expected = _as_number(frame[col])
            raw = frame[col]
            frame[col] = values
            fill = bad & why.isna().to_numpy()
            why[fill] = [f"column {col!r} expected {expected}, got {_show(v)}"
                         for v in raw[fill]]
        return frame, why

    def id_kind(self, series: pd.Series) -> str:
        if self.policy["ids"] != "auto":
            return self.policy["ids"]
        if pd.api.types.is_numeric_dtype(series):
            return "int"
        text = series.dropna().astype(str).str.strip()
        text = text[~text.str.lower().isin(_NA_TEXT)]
        # Ids that are all integers (signs included) are integer ids; anything else is a name.
        return "int" if text.str.fullmatch(r"[+-]?\d+").all() else "str"

    def report(self) -> dict:
        body = {"dataset": self.dataset,
                "policy": {k: self.policy[k] for k in sorted(self.policy)},
                "rows": self.rows, "checks": self.checks}
        blob = json.dumps(body, sort_keys=True, default=str).encode()
        return {**body, "fingerprint": hashlib.sha256(blob).hexdigest()[:16]}




def _show(value) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_na_text(series: pd.Series) -> np.ndarray:
    na = series.isna().to_numpy().copy()
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        text = series.astype(str).str.strip().str.lower()
        na |= text.isin(_NA_TEXT).to_numpy()
    return na


def _floats(series: pd.Series) -> np.ndarray:
    """A writable float copy; missing values (NaN or pandas NA) become NaN."""
    return np.array(series.to_numpy(dtype=float, na_value=np.nan), dtype=float)


def _as_id(series: pd.Series, kind: str) -> tuple[pd.Series, np.ndarray, str]:
    """-> (typed ids with missing as NA, malformed mask, what was expected)."""
    na = _is_na_text(series)
    if kind == "str":
        values = series.astype(object).where(~na, None)
        values = values.map(lambda v: v.strip() if isinstance(v, str) else str(v)
                            if v is not None else None)
        return values, np.zeros(len(series), bool), "an id"
    expected = "a non-negative integer id"
    if pd.api.types.is_integer_dtype(series):  # exact, even beyond 2**53; nullable or not
        vals = series.to_numpy(dtype=np.int64, na_value=0)
        bad = ~na & (vals < 0)
        if not na.any():
            return pd.Series(np.where(bad, 0, vals), index=series.index), bad, expected
        out = pd.array(vals, dtype="Int64")
        out[na | bad] = pd.NA
        return pd.Series(out, index=series.index), bad, expected
    if pd.api.types.is_numeric_dtype(series):
        num = _floats(series)
        bad = ~na & ((num < 0) | (num != np.floor(num)) | ~np.isfinite(num) | (num >= 2**63))
        ok = ~na & ~bad
        out = pd.array(np.where(ok, num, 0).astype(np.int64), dtype="Int64")
        out[~ok] = pd.NA
        return pd.Series(out, index=series.index), bad, expected
    text = series.astype(str).str.strip()
    good = text.str.fullmatch(_INT_RE).to_numpy() & ~na
    bad = ~good & ~na
    out = pd.array(np.zeros(len(series), np.int64), dtype="Int64")
    out[good] = text[good].astype(np.int64).to_numpy()
    out[~good] = pd.NA
    return pd.Series(out, index=series.index), bad, expected


def _as_number(series: pd.Series) -> tuple[pd.Series, np.ndarray, str]:
    na = _is_na_text(series)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series, np.zeros(len(series), bool), "a number"  # typed already (e.g. float32)
    num = pd.to_numeric(series.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(num) & ~na
    return pd.Series(num, index=series.index), bad, "a number"


def _as_epoch(series: pd.Series) -> tuple[pd.Series, np.ndarray, str]:
    """Epoch seconds (integers or decimals, floored) or ISO-8601 text -> int64 seconds."""
    expected = "epoch seconds or an ISO-8601 time"
    if pd.api.types.is_datetime64_any_dtype(series):
        utc = series.dt.tz_convert("UTC") if series.dt.tz is not None else series
        secs = (utc - pd.Timestamp(0)).dt.total_seconds() if utc.dt.tz is None else \
            (utc - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        num = np.array(secs, dtype=float)
        bad = np.zeros(len(series), bool)
        na = np.isnan(num)
    elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        if pd.api.types.is_integer_dtype(series) and not series.isna().any():
            return series.astype(np.int64), np.zeros(len(series), bool), expected
        num = _floats(series)
        na = np.isnan(num)
        bad = np.isinf(num)
    else:
        na = _is_na_text(series)
        text = series.astype(str).str.strip()
        num = np.array(pd.to_numeric(text, errors="coerce"), dtype=float)  # writable copy
        iso = np.isnan(num) & ~na
        if iso.any():
            parsed = pd.to_datetime(text[iso], utc=True, errors="coerce", format="ISO8601")
            secs = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
            num[iso] = secs.to_numpy(dtype=float)
        bad = (np.isnan(num) | np.isinf(num)) & ~na
    ok = ~na & ~bad
    # Absurd magnitudes stay absurd (so the timestamp check flags them) but fit int64.
    clipped = np.clip(np.where(ok, num, 0.0), -_MAX_TIME, _MAX_TIME)
    out = pd.array(np.floor(clipped).astype(np.int64), dtype="Int64")
    out[~ok] = pd.NA
    return pd.Series(out, index=series.index), bad, expected


def clean(raw, clean_cfg: dict | None, dataset: str, now: float | None = None):
    """Clean a `RawData`; returns (cleaned RawData, report dict)."""
    from bench.data import RawData

    policy = resolve_policy(clean_cfg)
    cleaner = Cleaner(policy, dataset, now)
    inter = cleaner.interactions(raw.interactions)
    kinds = {k: ("int" if pd.api.types.is_integer_dtype(inter[k]) else "str")
             for k in ("user", "item")}
    users = cleaner.side(raw.users, "user", "users", kinds["user"])
    items = cleaner.side(raw.items, "item", "items", kinds["item"])
    inter = cleaner.unknown_ids(inter, users, "user", "users")
    inter = cleaner.unknown_ids(inter, items, "item", "items")
    if inter.empty:
        raise BenchError(f"dataset={dataset}: no interactions left after cleaning; "
                         "see dataset.clean")
    inter = _final_types(inter)
    users = _drop_bookkeeping(users, "user")
    items = _drop_bookkeeping(items, "item")
    return RawData(inter, users, items), cleaner.report()


def _final_types(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=[LINE, ERROR], errors="ignore")
    for col in ("user", "item", "timestamp"):
        if isinstance(frame[col].dtype, pd.Int64Dtype):
            frame[col] = frame[col].astype(np.int64)
    return frame.reset_index(drop=True)


def _drop_bookkeeping(frame: pd.DataFrame | None, key: str) -> pd.DataFrame | None:
    if frame is None:
        return None
    frame = frame.drop(columns=[LINE, ERROR], errors="ignore")
    if isinstance(frame[key].dtype, pd.Int64Dtype):
        frame[key] = frame[key].astype(np.int64)
    return frame.reset_index(drop=True)


def print_report(report: dict, console=None) -> None:
    """A compact rich table: one row per check that found something, plus row totals."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    rows = ", ".join(f"{t} {a:,}->{b:,}" for t, (a, b) in report["rows"].items())
    found = [c for c in report["checks"] if c["count"]]
    title = f"cleaning {report['dataset']}: {rows}"
    if not found:
        console.print(f"[dim]{title}; every check passed[/dim]")
        return
    table = Table(title=title, title_justify="left")
    for name in ("table", "check", "rows", "action", "first"):
        table.add_column(name, overflow="fold")
    for c in found:
        table.add_row(c["table"], c["check"], f"{c['count']:,}", c["action"], c["example"])
    console.print(table)
