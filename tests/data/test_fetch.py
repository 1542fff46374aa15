"""seglib.data.fetch: resumable download from a local HTTP server, safe extraction, idempotence.
No test touches the internet: the server runs on 127.0.0.1 in a thread."""

from __future__ import annotations

import http.server
import io
import re
import struct
import sys
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seglib.data import fetch
from seglib.data.fetch import PH2_URL, fetch_ph2
from seglib.data.ph2 import load_ph2
from seglib.errors import PH2Error

# --- a local server that supports Range and can cut a response short ------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        state = self.server.state
        body = state.files.get(self.path.split("?")[0])
        asked = self.headers.get("Range")
        entry = {"range": asked, "status": 404, "sent": 0}
        state.log.append(entry)
        if body is None:
            return self.send_error(404)
        start = int(m[1]) if (m := re.fullmatch(r"bytes=(\d+)-", asked or "")) else 0
        if not state.ranges:
            start = 0
        if start >= len(body) > 0:
            entry["status"] = 416
            return self.send_error(416)
        entry["status"] = 206 if start else 200
        self.send_response(entry["status"])
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = state.cuts.pop(0) if state.cuts else None
        out = body[start:] if cut is None else body[start : start + cut]
        entry["sent"] = len(out)  # with a cut, the connection closes short of Content-Length
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    """``files`` {url path: bytes} to serve; ``cuts``: byte counts after which the next
    responses stop; ``ranges``: honour Range; ``log``: one dict per request; ``url``."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = SimpleNamespace(files={}, cuts=[], ranges=True, log=[])
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tree_members(root: Path) -> dict[str, bytes]:
    """The files of a PH2Dataset folder, keyed by archive path (``PH2Dataset/...``)."""
    return {
        f.relative_to(root.parent).as_posix(): f.read_bytes()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


@pytest.fixture
def ph2_zip(synth_tree):
    return zip_bytes(tree_members(synth_tree))


# --- download --------------------------------------------------------------------------------


def test_full_download_then_no_more_requests(server, ph2_zip, synth_tree, tmp_path, cache):
    server.files["/PH2Dataset.zip"] = ph2_zip
    url = server.url + "/PH2Dataset.zip?dl=1"
    root = fetch_ph2(tmp_path / "dl", url)
    assert root == tmp_path / "dl" / "PH2Dataset"
    assert server.log == [{"range": None, "status": 200, "sent": len(ph2_zip)}]
    assert (tmp_path / "dl" / "PH2Dataset.zip").read_bytes() == ph2_zip
    assert not list((tmp_path / "dl").glob("*.part"))
    got, want = load_ph2(root, size=16, cache=False), load_ph2(synth_tree, size=16, cache=False)
    assert got.names == want.names and torch.equal(got.masks, want.masks)

    assert fetch_ph2(tmp_path / "dl", url) == root
    assert fetch_ph2(tmp_path / "dl", "http://127.0.0.1:9/nothing-listens-here.zip") == root
    assert len(server.log) == 1


def test_interrupted_download_resumes_with_range(server, ph2_zip, tmp_path, cache):
    server.files["/PH2Dataset.zip"] = ph2_zip
    url, dest, cut = server.url + "/PH2Dataset.zip", tmp_path / "dl", len(ph2_zip) // 3
    server.cuts = [cut]
    with pytest.raises(PH2Error, match="call again to resume"):
        fetch_ph2(dest, url, retries=0)
    assert (dest / "PH2Dataset.zip.part").stat().st_size == cut
    assert not (dest / "PH2Dataset.zip").exists()

    root = fetch_ph2(dest, url, retries=0)
    assert server.log[1] == {"range": f"bytes={cut}-", "status": 206, "sent": len(ph2_zip) - cut}
    assert sum(e["sent"] for e in server.log) == len(ph2_zip)  # nothing downloaded twice
    assert (dest / "PH2Dataset.zip").read_bytes() == ph2_zip
    assert len(load_ph2(root, size=16)) == 6


def test_retries_resume_within_one_call(server, ph2_zip, tmp_path, cache):
    server.files["/a.zip"] = ph2_zip
    server.cuts = [1000, 2000]
    fetch_ph2(tmp_path, server.url + "/a.zip", retries=2)
    assert [e["range"] for e in server.log] == [None, "bytes=1000-", "bytes=3000-"]
    assert (tmp_path / "a.zip").read_bytes() == ph2_zip


def test_server_ignoring_range_restarts_from_zero(server, ph2_zip, tmp_path, cache):
    server.files["/a.zip"] = ph2_zip
    server.ranges, server.cuts = False, [1000]
    fetch_ph2(tmp_path, server.url + "/a.zip", retries=1)
    assert [(e["range"], e["status"]) for e in server.log] == [(None, 200), ("bytes=1000-", 200)]
    assert (tmp_path / "a.zip").read_bytes() == ph2_zip


def test_stale_partial_file_restarts_from_zero(server, ph2_zip, tmp_path, cache):
    server.files["/a.zip"] = ph2_zip
    (tmp_path / "a.zip.part").write_bytes(bytes(len(ph2_zip) + 10))  # longer than the file
    fetch_ph2(tmp_path, server.url + "/a.zip")
    assert [e["status"] for e in server.log] == [416, 200]
    assert (tmp_path / "a.zip").read_bytes() == ph2_zip


def test_http_error_and_tar_payload(server, synth_tree, tmp_path, cache):
    with pytest.raises(PH2Error, match="HTTP 404"):
        fetch_ph2(tmp_path / "a", server.url + "/missing.rar")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(synth_tree, "PH2Dataset")
    server.files["/ph2.tgz"] = buf.getvalue()
    assert len(load_ph2(fetch_ph2(tmp_path / "b", server.url + "/ph2.tgz"), size=16)) == 6


def test_url_constant_and_env_override(server, ph2_zip, tmp_path, cache, monkeypatch):
    assert PH2_URL == "https://www.dropbox.com/s/k88qukc20ljnbuo/PH2Dataset.rar?dl=1"
    server.files["/mirror.zip"] = ph2_zip
    monkeypatch.setenv("SEGLIB_PH2_URL", server.url + "/mirror.zip")
    assert fetch_ph2(tmp_path).name == "PH2Dataset"
    assert (tmp_path / "mirror.zip").is_file() and len(server.log) == 1


def test_cache_dir_from_env_or_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLIB_CACHE", str(tmp_path / "c"))
    assert fetch.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("SEGLIB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fetch.cache_dir() == tmp_path / "home" / ".cache" / "seglib"


# --- unsafe archives -------------------------------------------------------------------------


def test_zip_member_climbing_out_is_refused(server, ph2_zip, tmp_path, cache):
    server.files["/evil.zip"] = zip_bytes({"PH2Dataset/ok.txt": b"ok", "../evil.txt": b"x"})
    dest = tmp_path / "a" / "dest"
    with pytest.raises(PH2Error, match=r"refusing to extract member '\.\./evil\.txt'") as err:
        fetch_ph2(dest, server.url + "/evil.zip")
    assert "evil.zip" in str(err.value)
    assert not list(tmp_path.rglob("evil.txt")) and not list(tmp_path.rglob("ok.txt"))
    assert sorted(p.name for p in dest.iterdir()) == ["evil.zip"]


def _tar(*members: tuple[str, bytes | str, str]) -> bytes:
    """tar bytes from (name, data or link target, kind) with kind "file", "sym" or "hard"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                info.type, info.linkname = (
                    {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind],
                    data,
                )
                tf.addfile(info)
    return buf.getvalue()


@pytest.fixture(params=["with-data-filter", "fallback"])
def tar_branch(request, monkeypatch):
    """Run a test with Python's filter="data" and with the fallback branch that Pythons
    without it take (seglib's own member check alone)."""
    if request.param == "fallback":
        monkeypatch.setattr(fetch, "_HAS_DATA_FILTER", False)
    elif not fetch._HAS_DATA_FILTER:
        pytest.skip("this Python has no tarfile data filter")
    return request.param


@pytest.mark.parametrize(
    "archive",
    [
        _tar(("ok.txt", b"ok", "file"), ("a/../../evil.txt", b"x", "file")),
        _tar(("/tmp/evil.txt", b"x", "file")),
        _tar(("link", "../outside", "sym")),
        _tar(("a/link", "/etc", "sym")),
        _tar(("ok.txt", b"ok", "file"), ("hard", "../../etc/passwd", "hard")),
        zip_bytes({"/abs/evil.txt": b"x"}),
        zip_bytes({"a\\..\\..\\evil.txt": b"x"}),
    ],
    ids=[
        "tar-dotdot",
        "tar-absolute",
        "tar-symlink-out",
        "tar-symlink-abs",
        "tar-hardlink-out",
        "zip-absolute",
        "zip-backslash",
    ],
)
@pytest.mark.usefixtures("tar_branch")
def test_unsafe_members_are_refused(tmp_path, archive):
    path, dest = tmp_path / "bad.archive", tmp_path / "deep" / "dest"
    path.write_bytes(archive)
    with pytest.raises(PH2Error, match="refusing to extract member") as err:
        fetch.extract_archive(path, dest)
    assert str(path) in str(err.value)
    assert not list(tmp_path.rglob("evil.txt")) and not list(tmp_path.rglob("outside"))


@pytest.mark.usefixtures("tar_branch")
@pytest.mark.parametrize(
    "members, bad",
    [
        ([("a", ".", "sym"), ("a/b", "..", "sym"), ("a/b/evil.txt", b"x", "file")], "a/b"),
        ([("d", "..", "sym"), ("d/evil.txt", b"x", "file")], "d"),  # refused at the link
        ([("x", "y", "sym"), ("y", ".", "sym"), ("x/z", "..", "sym")], "x/z"),
        ([("a", ".", "sym"), ("a/h", "a/../../passwd", "hard")], "a/h"),
    ],
    ids=["dot-then-dotdot", "dir-link-out", "chain-through-later-link", "hardlink-via-link"],
)
def test_link_chains_are_resolved_not_read_as_text(tmp_path, members, bad):
    """Each member's final path is resolved through the links already extracted: ``a`` ->
    ``.`` then ``a/b`` -> ``..`` reads as ``b -> ..`` (outside), though ``a/..`` looks inside."""
    path, dest = tmp_path / "chain.tar", tmp_path / "deep" / "dest"
    path.write_bytes(_tar(*members))
    with pytest.raises(PH2Error, match=f"refusing to extract member '{bad}'") as err:
        fetch.extract_archive(path, dest)
    assert str(path) in str(err.value)
    assert not list(tmp_path.rglob("evil.txt")) and not (tmp_path / "deep" / "evil.txt").exists()
    outside = [p for p in (tmp_path / "deep").iterdir() if p.name != "dest"]
    assert outside == []


def test_fallback_strips_special_mode_bits(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_HAS_DATA_FILTER", False)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("tool")
        info.size, info.mode = 2, 0o6777  # setuid, setgid, world-writable
        tf.addfile(info, io.BytesIO(b"#!"))
    (tmp_path / "m.tar").write_bytes(buf.getvalue())
    fetch.extract_archive(tmp_path / "m.tar", tmp_path / "out")
    assert (tmp_path / "out" / "tool").stat().st_mode & 0o7777 == 0o755


@pytest.mark.usefixtures("tar_branch")
def test_safe_links_inside_are_kept(tmp_path):
    path = tmp_path / "ok.tar"
    path.write_bytes(_tar(("d/a.txt", b"hello", "file"), ("d/link", "a.txt", "sym")))
    fetch.extract_archive(path, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "link").read_bytes() == b"hello"


# --- RAR (stored members need no external tool, so a hand-built RAR 4 file tests the path) ---


def _rar_block(kind: int, flags: int, body: bytes, data: bytes = b"") -> bytes:
    head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head + data


def rar4_stored(files: dict[str, bytes | None]) -> bytes:
    """A RAR 4 archive that stores (method 0x30) ``files``; None makes a folder."""
    out = b"Rar!\x1a\x07\x00" + _rar_block(0x73, 0, bytes(6))
    for name, data in files.items():
        folder, data, raw = data is None, data or b"", name.encode()
        fields = (
            len(data),
            len(data),
            2,
            zlib.crc32(data),
            0x21,
            20,
            0x30,
            len(raw),
            0x10 if folder else 0x20,
        )
        body = struct.pack("<IIBIIBBHI", *fields) + raw
        out += _rar_block(0x74, 0x8000 | (0xE0 if folder else 0), body, data)
    return out + _rar_block(0x7B, 0x4000, b"")


def test_rar_is_extracted(server, synth_tree, tmp_path, cache):
    members = tree_members(synth_tree)
    server.files["/PH2Dataset.rar"] = rar4_stored(members)
    root = fetch_ph2(tmp_path, server.url + "/PH2Dataset.rar?dl=1")
    assert len(load_ph2(root, size=16)) == 6
    for name, data in members.items():
        assert (tmp_path / name).read_bytes() == data
    archive = tmp_path / "PH2Dataset.rar"  # load_ph2 takes the RAR itself too
    assert load_ph2(archive, size=16).names == load_ph2(root, size=16).names


def test_rar_climbing_out_is_refused(tmp_path):
    path = tmp_path / "bad.rar"
    path.write_bytes(rar4_stored({"ok.txt": b"ok", "../evil.txt": b"x"}))
    with pytest.raises(PH2Error, match="refusing to extract member|outside"):
        fetch.extract_archive(path, tmp_path / "dest")
    assert not list(tmp_path.rglob("evil.txt"))


def test_rar_without_tool_names_the_tools(tmp_path, monkeypatch):
    import rarfile

    def no_tool(*args, **kwargs):
        raise rarfile.RarCannotExec("Cannot find working tool")

    monkeypatch.setattr(rarfile.RarFile, "extractall", no_tool)
    path = tmp_path / "a.rar"
    path.write_bytes(rar4_stored({"a.txt": b"a"}))
    with pytest.raises(PH2Error, match="unrar.*bsdtar.*libarchive-tools") as err:
        fetch.extract_archive(path, tmp_path / "dest")
    assert str(path) in str(err.value)


def test_rar_without_rarfile_package_says_pip(tmp_path, monkeypatch):
    """No rarfile installed (e.g. a fresh Colab): one line saying what to install."""
    monkeypatch.setitem(sys.modules, "rarfile", None)  # makes ``import rarfile`` fail
    path = tmp_path / "a.rar"
    path.write_bytes(rar4_stored({"a.txt": b"a"}))
    with pytest.raises(PH2Error, match="pip install rarfile") as err:
        fetch.extract_archive(path, tmp_path / "dest")
    assert str(path) in str(err.value)


def test_corrupt_rar(tmp_path):
    path = tmp_path / "a.rar"
    blob = rar4_stored({"a.txt": b"a" * 100})
    path.write_bytes(blob[:40])
    with pytest.raises(PH2Error, match="RAR") as err:
        fetch.extract_archive(path, tmp_path / "dest")
    assert str(path) in str(err.value)


# --- the ISIC 2018 Task 1 training set ---------------------------------------------------------


def isic_zips(n: int = 3) -> tuple[bytes, bytes]:
    """Fake input and ground-truth archives in the official layout (ISIC's own folder names)."""
    import numpy as np
    from PIL import Image

    def png(array, fmt):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, fmt)
        return buf.getvalue()

    images, truth = {}, {}
    for i in range(n):
        mask = np.zeros((30, 40), np.uint8)
        mask[5 : 15 + i, 10:30] = 255
        image = np.full((30, 40, 3), 200, np.uint8)
        image[mask > 0] = (90, 60, 40)
        images[f"ISIC2018_Task1-2_Training_Input/ISIC_{i:07d}.jpg"] = png(image, "JPEG")
        truth[f"ISIC2018_Task1_Training_GroundTruth/ISIC_{i:07d}_segmentation.png"] = png(
            mask, "PNG"
        )
    images["ISIC2018_Task1-2_Training_Input/LICENSE.txt"] = b"CC0"
    return zip_bytes(images), zip_bytes(truth)


@pytest.fixture
def isic_server(server, monkeypatch):
    inp, gt = isic_zips()
    server.files["/in.zip"], server.files["/gt.zip"] = inp, gt
    monkeypatch.setenv("SEGLIB_ISIC2018_INPUT_URL", server.url + "/in.zip")
    monkeypatch.setenv("SEGLIB_ISIC2018_TRUTH_URL", server.url + "/gt.zip")
    return server


def test_isic2018_download_extracts_pairs_once(isic_server, tmp_path, cache):
    from seglib.data.folder import find_pairs
    from seglib.data.isic2018 import fetch_isic2018
    from seglib.data.ph2 import load_dataset

    root = fetch_isic2018(tmp_path / "isic", pairs=3, progress=False)
    pairs = find_pairs(root)
    assert [p.name for p in pairs] == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"]
    data = load_dataset(root, 16)
    # case i's lesion: rows 5..15+i of 30, cols 10..30 of 40 -> more lesion pixels with i
    assert data.masks.sum(dim=(1, 2, 3)).tolist() == sorted(data.masks.sum(dim=(1, 2, 3)).tolist())
    requests = len(isic_server.log)
    assert fetch_isic2018(tmp_path / "isic", pairs=3) == root
    assert len(isic_server.log) == requests == 2  # finished: no more requests


def test_isic2018_download_with_missing_pairs_is_refused(isic_server, tmp_path, cache):
    from seglib.data.isic2018 import fetch_isic2018

    with pytest.raises(PH2Error, match="hold 3 image/mask pairs, expected 5"):
        fetch_isic2018(tmp_path / "isic", pairs=5, progress=False)
    assert not (tmp_path / "isic" / "ISIC2018_Task1-2_Training_Input").exists()  # nothing half


def test_isic2018_corrupt_archive_names_it(isic_server, tmp_path, cache):
    from seglib.data.isic2018 import fetch_isic2018

    isic_server.files["/gt.zip"] = b"PK\x03\x04 not a zip at all"
    with pytest.raises(PH2Error, match="gt.zip.*delete"):
        fetch_isic2018(tmp_path / "isic", pairs=3, progress=False)


def test_isic2018_urls_default_to_the_challenge_page(monkeypatch):
    from seglib.data import isic2018

    monkeypatch.delenv("SEGLIB_ISIC2018_INPUT_URL", raising=False)
    monkeypatch.delenv("SEGLIB_ISIC2018_TRUTH_URL", raising=False)
    assert isic2018.urls() == (
        "https://isic-challenge-data.s3.amazonaws.com/2018/ISIC2018_Task1-2_Training_Input.zip",
        "https://isic-challenge-data.s3.amazonaws.com/2018/ISIC2018_Task1_Training_GroundTruth.zip",
    )
