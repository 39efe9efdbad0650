"""The download path end to end, against a local HTTP server on 127.0.0.1 (never the network):
checksummed, cached, atomic, safely extracted."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
from bench.datasets.ml100k import ML100K

from bench.download import cache_dir, ensure_archive, extract_zip, fetch
from bench.errors import BenchError
from tests.fake_movielens import ml100k_files, zip_bytes


class _Server:
    """Serves `files` (path -> bytes); `truncate` paths announce the full length but send half.
    Counts requests per path."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in outer.truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_checksum_is_cached_and_reused_without_a_second_request(server, tmp_path):
    body = zip_bytes({"ml-100k/u.data": b"1\t2\t3\t881250949\n"})
    server.files["/a.zip"] = body
    dest = tmp_path / "a.zip"
    sha = hashlib.sha256(body).hexdigest()
    assert fetch(server.url("/a.zip"), dest, md5=_md5(body), sha256=sha, progress=False) == dest
    assert dest.read_bytes() == body and server.requests == ["/a.zip"]
    fetch(server.url("/a.zip"), dest, md5=_md5(body), sha256=sha, progress=False)
    assert server.requests == ["/a.zip"]  # served from the cache
    assert _leftovers(tmp_path) == ["a.zip"]


def test_bad_checksum_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    server.files["/a.zip"] = b"not the archive you are looking for"
    with pytest.raises(BenchError, match=r"md5 is [0-9a-f]{32}, expected 0e33842e"):
        fetch(server.url("/a.zip"), tmp_path / "a.zip", md5="0e33842e24a9c977be4e0107933c0723",
              progress=False)
    assert _leftovers(tmp_path) == []


def test_truncated_transfer_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    body = zip_bytes({"ml-100k/u.data": b"1\t2\t3\t881250949\n" * 500})
    server.files["/a.zip"] = body
    server.truncate.add("/a.zip")
    with pytest.raises(BenchError, match="truncated|broke off"):
        fetch(server.url("/a.zip"), tmp_path / "a.zip", md5=_md5(body), progress=False)
    assert _leftovers(tmp_path) == []
    server.truncate.clear()  # the next attempt starts clean and succeeds
    fetch(server.url("/a.zip"), tmp_path / "a.zip", md5=_md5(body), progress=False)
    assert (tmp_path / "a.zip").read_bytes() == body


def test_a_corrupt_cached_file_is_fetched_again(server, tmp_path):
    body = b"payload"
    server.files["/p.bin"] = body
    (tmp_path / "p.bin").write_bytes(b"half")
    fetch(server.url("/p.bin"), tmp_path / "p.bin", md5=_md5(body), progress=False)
    assert (tmp_path / "p.bin").read_bytes() == body and len(server.requests) == 1


def test_unreachable_server_and_missing_file_are_clear_errors(server, tmp_path):
    with pytest.raises(BenchError, match="download failed.*dataset.root"):
        fetch(server.url("/missing.zip"), tmp_path / "m.zip", progress=False)
    with pytest.raises(BenchError, match="download failed"):
        fetch("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", progress=False, timeout=5)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("entry", ["../evil.txt", "ml-100k/../../evil.txt", "/abs/evil.txt",
                                   "C:/evil.txt", "..\\evil.txt"])
def test_archive_entries_escaping_the_target_are_refused(tmp_path, entry):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(zip_bytes({"ml-100k/u.data": b"x", entry: b"owned"}))
    target = tmp_path / "out" / "target"
    with pytest.raises(BenchError, match="outside"):
        extract_zip(archive, target)
    assert not target.exists() and not (tmp_path / "evil.txt").exists()
    assert _leftovers(tmp_path / "out") == []


def test_not_a_zip_is_a_clear_error(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(BenchError, match="not a readable zip"):
        extract_zip(tmp_path / "x.zip", tmp_path / "x")


def test_ml100k_downloads_extracts_once_and_loads(server, tmp_path):
    files = ml100k_files()
    body = zip_bytes({f"ml-100k/{name}": content for name, content in files.items()})
    server.files["/ml-100k.zip"] = body
    dataset = ML100K(cache_dir=str(tmp_path), url=server.url("/ml-100k.zip"), md5=_md5(body),
                     sha256=None, progress=False)
    raw = dataset.load()
    assert len(raw.interactions) == 12 * 6 and len(raw.users) == 12 and len(raw.items) == 20
    assert (tmp_path / "ml-100k" / "u.data").read_bytes() == files["u.data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k", "ml-100k.zip"]
    ML100K(cache_dir=str(tmp_path), url=server.url("/ml-100k.zip"), md5=_md5(body)).load()
    assert server.requests == ["/ml-100k.zip"]
    with pytest.raises(BenchError, match="lacks the folder"):
        ensure_archive("other", server.url("/ml-100k.zip"), "other", tmp_path, md5=_md5(body),
                       progress=False)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("RECBENCH_DATA", str(tmp_path / "env"))
    assert cache_dir(None) == tmp_path / "env"
    assert cache_dir(tmp_path / "cfg") == tmp_path / "cfg"
    monkeypatch.delenv("RECBENCH_DATA")
    assert cache_dir(None) == Path("~/.cache/recbench").expanduser()


def test_ml1m_downloads_from_its_archive_layout(server, tmp_path):
    from bench.datasets.ml1m import ML1M

    from tests.fake_movielens import ml1m_files

    body = zip_bytes({f"ml-1m/{n}": c for n, c in ml1m_files().items()})
    server.files["/ml-1m.zip"] = body
    raw = ML1M(cache_dir=str(tmp_path), url=server.url("/ml-1m.zip"), md5=_md5(body),
               sha256=hashlib.sha256(body).hexdigest(), progress=False).load()
    assert len(raw.interactions) == 72 and (tmp_path / "ml-1m" / "ratings.dat").is_file()
