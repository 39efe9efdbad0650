"""Malformed input, loader by loader: each case ends in one clear line naming the file, the row
and what was expected, or in a counted repair as the cleaning policy says; never a traceback from
inside pandas. Property tests (hypothesis) throw arbitrary bytes and values at the parsers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench.datasets.ml1m import ML1M
from bench.datasets.ml100k import ML100K
from bench.datasets.table import Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cleaning import clean
from bench.data import load_split
from bench.errors import BenchError
from tests.fake_movielens import ml1m_files, ml100k_files, write_files

ML_CLEAN = {"rating_range": [1, 5], "ids": "int"}


def _ml100k(tmp: Path, **edits) -> ML100K:
    """A generated ML-100K folder; `edits` maps a file name to a function of its text (or to
    None to delete the file)."""
    root = write_files(tmp / "ml-100k", ml100k_files())
    for name, edit in edits.items():
        name = name.replace("_", ".")
        if edit is None:
            (root / name).unlink()
        else:
            (root / name).write_bytes(edit((root / name).read_bytes().decode("latin-1")))
    return ML100K(root=str(root))


def _ml1m(tmp: Path, **edits) -> ML1M:
    root = write_files(tmp / "ml-1m", ml1m_files())
    for name, edit in edits.items():
        path = root / name.replace("_", ".")
        path.write_bytes(edit(path.read_bytes().decode("latin-1")))
    return ML1M(root=str(root))


def _lines(replace: dict[int, str] | None = None, append: str = "", drop_last: bool = False,
           enc: str = "latin-1"):
    """An edit: replace 0-based lines, append text, drop the last line."""
    def edit(text: str) -> bytes:
        lines = text.rstrip("\n").split("\n")
        for k, line in (replace or {}).items():
            lines[k] = line
        if drop_last:
            lines = lines[:-1]
        return ("\n".join(lines) + "\n" + append).encode(enc)
    return edit


def _table(tmp: Path, text: str | bytes, name: str = "log.csv", **kwargs) -> Table:
    path = tmp / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return Table(interactions=str(path), **kwargs)


def _run(dataset, clean_cfg: dict | None = None, **cfg):
    return load_split(dataset, {"name": "t", "clean": clean_cfg, "filter": {}, **cfg},
                      {"kind": "ratio"}, None, quiet=True)


def _error(dataset, clean_cfg=None) -> str:
    with pytest.raises(BenchError) as info:
        _run(dataset, clean_cfg)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


GOOD_CSV = "user,item,timestamp,rating\nu1,a,100,4\nu1,b,200,5\nu2,a,150,3\nu2,c,160,2\n"

# (case id, builder(tmp) -> dataset, clean policy, regex the one-line error must match)
ERRORS = [
    ("truncated u.data line", lambda t: _ml100k(t, u_data=_lines(append="7\t3")), ML_CLEAN,
     r"u\.data line 73: expected 4 fields separated by '\\t' .*found 2"),
    ("comma separated u.data", lambda t: _ml100k(t, u_data=lambda s: s.replace("\t", ",")
                                                 .encode()), ML_CLEAN,
     r"u\.data line 1: expected 4 fields .*found 1 \(wrong separator or wrong file\?\)"),
    ("non-numeric user id", lambda t: _ml100k(t, u_data=_lines({4: "abc\t3\t4\t881250949"})),
     ML_CLEAN, r"u\.data line 5: column 'user' expected a non-negative integer id, got 'abc'"),
    ("negative item id", lambda t: _ml100k(t, u_data=_lines({9: "3\t-7\t4\t881250949"})),
     ML_CLEAN, r"u\.data line 10: column 'item' expected a non-negative integer id, got '-7'"),
    ("fractional id", lambda t: _ml100k(t, u_data=_lines({0: "1.5\t3\t4\t881250949"})),
     ML_CLEAN, r"u\.data line 1: column 'user' expected a non-negative integer id, got '1.5'"),
    ("id beyond int64", lambda t: _ml100k(t, u_data=_lines({2: f"{10**20}\t3\t4\t881250949"})),
     ML_CLEAN, r"u\.data line 3: column 'user' expected a non-negative integer id"),
    ("non-numeric rating", lambda t: _ml100k(t, u_data=_lines({1: "1\t3\tfive\t881250949"})),
     ML_CLEAN, r"u\.data line 2: column 'rating' expected a number, got 'five'"),
    ("text timestamp", lambda t: _ml100k(t, u_data=_lines({3: "1\t3\t4\tyesterday"})),
     ML_CLEAN, r"u\.data line 4: column 'timestamp' expected epoch seconds or an ISO-8601 time"),
    ("header line in u.data", lambda t: _ml100k(
        t, u_data=lambda s: ("user\titem\trating\ttimestamp\n" + s).encode()), ML_CLEAN,
     r"u\.data line 1: column 'user' expected a non-negative integer id, got 'user'"),
    ("empty u.data", lambda t: _ml100k(t, u_data=lambda s: b""), ML_CLEAN,
     r"u\.data: file is empty; expected lines of 4 fields"),
    ("blank-only u.data", lambda t: _ml100k(t, u_data=lambda s: b"\n  \n\r\n"), ML_CLEAN,
     r"u\.data: file is empty"),
    ("missing u.user", lambda t: _ml100k(t, u_user=None), ML_CLEAN, r"u\.user: file not found"),
    ("UTF-16 u.data", lambda t: _ml100k(t, u_data=lambda s: s.encode("utf-16")), ML_CLEAN,
     r"u\.data line 1: NUL byte in text; expected a plain latin-1 text file"),
    ("NaN rating, missing=error", lambda t: _ml100k(t, u_data=_lines({6: "2\t3\tNaN\t88125"})),
     {**ML_CLEAN, "missing": "error"},
     r"u\.data line 7: missing value in column\(s\) \['rating'\]; dataset\.clean\.missing=error"),
    ("users table missing a user, unknown_ids=error",
     lambda t: _ml100k(t, u_user=_lines({2: "99|30|M|other|12345"})),
     {**ML_CLEAN, "unknown_ids": "error"}, r"u\.data line \d+: user id 3 is not in the users"),
    ("age not a number in u.user", lambda t: _ml100k(t, u_user=_lines({0: "1|old|M|x|12345"})),
     ML_CLEAN, r"u\.user line 1: column 'age' expected an age in years"),
    ("genre flag 2 in u.item", lambda t: _ml100k(
        t, u_item=_lines({5: "6|Movie 6 (1995)||||" + "|".join(["2"] * 19)})), ML_CLEAN,
     r"u\.item line 6: genre flags expected 0 or 1"),
    ("u.item short of genre flags", lambda t: _ml100k(
        t, u_item=_lines({0: "1|Movie 1 (1995)||||0|1"})), ML_CLEAN,
     r"u\.item line 1: expected 24 fields separated by '\|'.*found 7"),
    ("ml-1m single-colon separators", lambda t: _ml1m(
        t, ratings_dat=lambda s: s.replace("::", ":").encode("latin-1")), ML_CLEAN,
     r"ratings\.dat line 1: expected 4 fields separated by '::'.*wrong separator"),
    ("ml-1m age 17 is no age group", lambda t: _ml1m(
        t, users_dat=_lines({0: "1::M::17::1::48001"})), ML_CLEAN,
     r"users\.dat line 1: column 'age' expected an ML-1M age group"),
    ("ml-1m extra field in movies.dat", lambda t: _ml1m(
        t, movies_dat=_lines({1: "2::Film 2 (1999)::Comedy::extra"})), ML_CLEAN,
     r"movies\.dat line 2: expected 3 fields separated by '::'.*found 4"),
    ("csv not utf-8", lambda t: _table(t, GOOD_CSV.encode() + "u3,caf\xe9,300,4\n"
                                       .encode("latin-1")), None,
     r"log\.csv line 6: byte 0xe9 is not valid utf-8 text"),
    ("csv duplicate header", lambda t: _table(t, "user,item,item,timestamp\n1,2,3,4\n"), None,
     r"log\.csv line 1: duplicate column name\(s\) \['item'\]"),
    ("csv lacks the mapped column", lambda t: _table(
        t, GOOD_CSV, columns={"user": "customer_id"}), None,
     r"log\.csv: no column 'customer_id' for user; the file has \['user', 'item'"),
    ("csv header only", lambda t: _table(t, "user,item,timestamp\n"), None,
     r"log\.csv: table is empty; expected rows after the header"),
    ("csv empty file", lambda t: _table(t, ""), None, r"log\.csv: file is empty"),
    ("csv row with an extra field", lambda t: _table(t, GOOD_CSV + "u3,d,400,4,oops\n"), None,
     r"log\.csv: .*line 6.*expected 4 fields separated by ','"),
    ("csv impossible ISO date", lambda t: _table(
        t, "user,item,timestamp\nu1,a,2024-13-45T00:00:00\nu1,b,2024-01-01\n"), None,
     r"log\.csv line 2: column 'timestamp' expected epoch seconds or an ISO-8601 time, "
     r"got '2024-13-45T00:00:00'"),
    ("corrupt parquet", lambda t: _table(t, b"PAR1 this is not parquet", "log.parquet"), None,
     r"log\.parquet: not a readable Parquet file"),
    ("unknown table format", lambda t: _table(t, GOOD_CSV, "log.xlsx"), None,
     r"log\.xlsx: unknown table format 'xlsx'; expected csv, tsv or parquet"),
    ("every row bad and dropped", lambda t: _table(
        t, "user,item,timestamp\nu1,a,0\nu2,b,-5\n"), None,
     r"dataset=t: no interactions left after cleaning"),
]


@pytest.mark.parametrize("builder,policy,pattern", [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_malformed_input_is_one_clear_line(tmp_path, builder, policy, pattern):
    message = _error(builder(tmp_path), policy)
    assert re.search(pattern, message), message


# (case id, builder, policy, (table, check) -> expected count, rows kept)
REPAIRS = [
    ("truncated line dropped", lambda t: _ml100k(t, u_data=_lines(append="7\t3")),
     {**ML_CLEAN, "malformed": "drop"}, ("interactions", "malformed"), 1, 72),
    ("NaN rating dropped", lambda t: _ml100k(t, u_data=_lines({6: "2\t3\tnan\t881250949"})),
     ML_CLEAN, ("interactions", "missing"), 1, 71),
    ("rating 7 out of range", lambda t: _ml100k(t, u_data=_lines({0: "1\t3\t7\t881250949"})),
     ML_CLEAN, ("interactions", "out_of_range"), 1, 71),
    ("huge rating clipped", lambda t: _ml100k(t, u_data=_lines({0: "1\t3\t1e308\t881250949"})),
     {**ML_CLEAN, "out_of_range": "clip"}, ("interactions", "out_of_range"), 1, 72),
    ("zero timestamp", lambda t: _ml100k(t, u_data=_lines({0: "1\t3\t4\t0"})), ML_CLEAN,
     ("interactions", "bad_timestamps"), 1, 71),
    ("timestamp in the year 5138", lambda t: _ml100k(
        t, u_data=_lines({0: "1\t3\t4\t99999999999"})), ML_CLEAN,
     ("interactions", "bad_timestamps"), 1, 71),
    ("duplicate rating rows", lambda t: _ml100k(
        t, u_data=lambda s: (s + s.split("\n")[0] + "\n").encode()), ML_CLEAN,
     ("interactions", "duplicates"), 1, 72),
    ("users table missing a user", lambda t: _ml100k(
        t, u_user=_lines({2: "99|30|M|other|12345"})), ML_CLEAN,
     ("interactions.user", "unknown_ids"), 6, 72),
    ("user listed twice", lambda t: _ml100k(t, u_user=_lines(append="1|40|F|writer|12345\n")),
     ML_CLEAN, ("users", "duplicates"), 1, 72),
    ("parquet with a missing item id", lambda t: _parquet(t, pd.DataFrame(
        {"user": [1, 1, 2, 2], "item": [1.0, np.nan, 2.0, 3.0], "timestamp": [5, 6, 7, 8]})),
     None, ("interactions", "missing"), 1, 3),
    ("parquet nullable ints with a missing user", lambda t: _parquet(t, pd.DataFrame(
        {"user": pd.array([1, None, 2, 2], dtype="Int64"), "item": [1, 2, 2, 3],
         "timestamp": pd.array([5, 6, None, 8], dtype="Int64")})),
     None, ("interactions", "missing"), 2, 2),
    ("blank lines and CRLF are fine", lambda t: _table(
        t, GOOD_CSV.replace("\n", "\r\n") + "\r\n\r\n"), None, ("interactions", "malformed"), 0,
     4),
]


def _parquet(tmp: Path, frame: pd.DataFrame) -> Table:
    frame.to_parquet(tmp / "log.parquet")
    return Table(interactions=str(tmp / "log.parquet"))


@pytest.mark.parametrize("builder,policy,check,count,kept", [c[1:] for c in REPAIRS],
                         ids=[c[0] for c in REPAIRS])
def test_repairs_are_counted_in_the_report(tmp_path, builder, policy, check, count, kept):
    split = _run(builder(tmp_path), policy)
    counts = {(c["table"], c["check"]): c["count"] for c in split.cleaning["checks"]}
    assert counts[check] == count
    assert len(split.frame) == kept


def test_unknown_filter_key_names_the_key(tmp_path):
    with pytest.raises(BenchError, match=r"dataset\.filter\.min_users is unknown"):
        load_split(_table(tmp_path, GOOD_CSV), {"name": "t", "filter": {"min_users": 3}},
                   {"kind": "ratio"}, None, quiet=True)


# -- property tests --------------------------------------------------------------------------

PROPS = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@PROPS
@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(1, 5),
                          st.integers(1, 1_700_000_000)), min_size=1, max_size=40))
def test_any_valid_u_data_round_trips_exactly(tmp_path_factory, rows):
    root = write_files(tmp_path_factory.mktemp("p"), ml100k_files())
    (root / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    (root / "u.user").unlink()
    raw = ML100K(root=str(root))
    raw = _without_side_tables(raw)
    cleaned, report = clean(raw, {**ML_CLEAN, "duplicates": "keep"}, "p")
    got = cleaned.interactions[["user", "item", "rating", "timestamp"]]
    assert got.to_numpy().tolist() == [list(r) for r in rows]
    assert report["rows"]["interactions"] == [len(rows), len(rows)]


def _without_side_tables(dataset: ML100K):
    from bench.data import RawData
    from bench.readers import read_delimited

    return RawData(read_delimited(Path(dataset.root) / "u.data", "\t",
                                  ["user", "item", "rating", "timestamp"]))


@PROPS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_u_data_never_escape_as_tracebacks(tmp_path_factory, data):
    root = write_files(tmp_path_factory.mktemp("b"), ml100k_files())
    (root / "u.data").write_bytes(data)
    try:
        _run(ML100K(root=str(root)), {**ML_CLEAN, "malformed": "drop"})
    except BenchError as exc:
        assert "\n" not in str(exc)


_cell = st.one_of(st.text(max_size=6), st.integers(-10**20, 10**20).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(str),
                  st.sampled_from(["", "NaN", "2024-01-01", "2024-02-30T25:00", "1e400", " 7 "]))


@PROPS
@given(st.lists(st.tuples(_cell, _cell, _cell, _cell), min_size=1, max_size=12),
       st.sampled_from(["error", "drop"]))
def test_arbitrary_csv_cells_give_a_split_or_one_clear_line(tmp_path_factory, rows, malformed):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["user", "item", "timestamp", "rating"])
    writer.writerows(rows)
    table = _table(tmp_path_factory.mktemp("c"), buffer.getvalue())
    try:
        split = _run(table, {"malformed": malformed, "rating_range": [0, 10]})
    except BenchError as exc:
        assert "\n" not in str(exc)
        return
    ts = split.frame["timestamp"]
    assert (ts > 0).all() and split.frame["rating"].between(0, 10).all()


def test_table_without_a_path_says_which_key(tmp_path):
    with pytest.raises(BenchError, match=r"dataset\.interactions is required"):
        _run(Table())


_latin1_title = st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                      blacklist_characters="\x7f"), min_size=1, max_size=30)


@PROPS
@given(st.lists(_latin1_title.filter(lambda t: "::" not in t and not t.endswith(":")
                                     and t.strip()), min_size=1, max_size=8))
def test_ml1m_titles_with_colons_and_accents_survive_the_double_colon_format(tmp_path_factory,
                                                                             titles):
    from bench.datasets.ml100k import title_tokens

    files = ml1m_files(n_items=len(titles), per_user=1)
    files["movies.dat"] = "".join(f"{i}::{t} (1999)::Drama\n" for i, t in
                                  enumerate(titles, start=1)).encode("latin-1")
    root = write_files(tmp_path_factory.mktemp("m"), files)
    items = ML1M(root=str(root)).load().items
    assert items["title"].tolist() == [title_tokens(f"{t} (1999)") for t in titles]
    assert items["genres"].tolist() == [["Drama"]] * len(titles)


def test_parquet_keeps_huge_ids_exact_and_reads_datetime_columns(tmp_path):
    big = 2**60 + 1  # not representable as a float64
    frame = pd.DataFrame({"user": [big, big, 7], "item": [1, 2, 1],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02",
                                                       "2024-01-03T02:00:00+02:00"],
                                                      utc=True, format="ISO8601")})
    split = _run(_parquet(tmp_path, frame))
    assert set(split.user_ids.tolist()) == {big, 7}
    assert sorted(split.frame["timestamp"]) == [1704067200, 1704153600, 1704240000]


def test_parquet_side_table_with_list_and_null_columns(tmp_path):
    pd.DataFrame({"item": [1, 2, 3], "tags": [["a", "b"], [], None],
                  "shelf": [["x"], None, ["y", "z"]], "brand": ["k", None, "k"]}
                 ).to_parquet(tmp_path / "items.parquet")
    log = pd.DataFrame({"user": [1, 1, 1], "item": [1, 2, 3], "timestamp": [1, 2, 3]})
    log.to_parquet(tmp_path / "log.parquet")
    table = Table(interactions=str(tmp_path / "log.parquet"),
                  items=str(tmp_path / "items.parquet"), list_features=["tags"])
    items = _run(table).items
    assert items["tags"].tolist() == [["a", "b"], [], []]
    assert items["shelf"].isna().tolist() == items["brand"].isna().tolist() == [False, True,
                                                                                 False]
    assert items["shelf"][0] == "x" and items["shelf"][2] == "y|z"
