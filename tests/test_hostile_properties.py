"""Property-based tests (Hypothesis): every name that becomes a path, every archive member, every stored URL.

Example counts are bounded (``max_examples``) so the file runs in seconds; each property holds for any input
Hypothesis can build, surrogates, control characters and the archive's own file names included.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clearml_assets.archives.media import artifact_folder, event_file_path, local_file_name, model_folder
from clearml_assets.archives.packing import ARCHIVE_FORMATS, extract_archive, write_archive
from clearml_assets.archives.paths import (EXPORT_PATH_MAX_BYTES, MAX_COMPONENT_BYTES, PROJECT_PATH_MAX_BYTES,
                                           RESERVED_NAMES, original_name, project_components, project_export_dir,
                                           safe_component, task_export_dir)
from clearml_assets.archives.records import record_line
from clearml_assets.errors import ArchiveError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# any code point, lone surrogates (JSON from a server can hold them) and the archive's own names
NAMES = st.one_of(st.text(st.characters(), max_size=300), st.text(st.characters(categories=["Cs"]), max_size=3),
                  st.sampled_from(sorted(RESERVED_NAMES)),
                  st.sampled_from(["", ".", "..", "CON", "nul.txt", "%project", "%nested~0123", "a/b", "~"]),
                  st.builds(str.upper, st.sampled_from(sorted(RESERVED_NAMES))))
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def _is_safe_component(component: str, max_bytes: int = MAX_COMPONENT_BYTES) -> None:
    assert component not in ("", ".", "..") and not component.startswith(".")
    assert "/" not in component and "\\" not in component and "\0" not in component
    assert component.isprintable() and not component.endswith((" ", "."))
    assert len(component.encode("utf-8")) <= max_bytes
    assert component.casefold() not in {n.casefold() for n in RESERVED_NAMES}
    assert component.split(".")[0].rstrip(" ").upper() not in WINDOWS_DEVICES


@FAST
@given(NAMES)
def test_every_name_becomes_one_safe_component_that_reads_back(name: str):
    component = safe_component(name)
    _is_safe_component(component)
    back = original_name(component)
    assert back == name or (back is None and "~" in component and len(component.encode()) > 100)


@FAST
@given(NAMES, NAMES)
def test_distinct_names_never_share_a_component(a: str, b: str):
    assume(a != b)
    assert safe_component(a) != safe_component(b)
    assert safe_component(a, escape=".") != safe_component(b, escape=".")


@FAST
@given(st.lists(NAMES, min_size=1, max_size=300))
def test_a_project_of_any_depth_is_a_bounded_chain_of_folders_without_dots(parts: list[str]):
    components = project_components("/".join(parts))
    for component in components:
        _is_safe_component(component)
        assert "." not in component  # never a task folder's or an archive's name
    assert sum(len(c.encode()) + 1 for c in components) <= PROJECT_PATH_MAX_BYTES


@SLOW
@given(account=NAMES, project=st.lists(NAMES, min_size=1, max_size=40).map("/".join), task=NAMES,
       task_id=st.text(st.characters(codec="ascii"), min_size=1, max_size=60))
def test_export_folders_stay_inside_the_root_and_can_be_made(tmp_path: Path, account: str, project: str,
                                                            task: str, task_id: str):
    root = tmp_path / "root"
    for path in (task_export_dir(root, account, project, task, task_id), project_export_dir(root, account, project)):
        assert root.resolve() in path.parents
        assert len(str(path).encode()) <= EXPORT_PATH_MAX_BYTES
        path.mkdir(parents=True, exist_ok=True)
        assert root.resolve() in path.resolve().parents


EVENTS = st.fixed_dictionaries({"metric": NAMES, "variant": NAMES,
                                "iter": st.one_of(st.integers(), NAMES, st.none())})


@FAST
@given(EVENTS, st.one_of(st.none(), NAMES, NAMES.map(lambda n: "http://files.example/a/" + n)), NAMES, NAMES,
       NAMES, NAMES)
def test_every_file_an_export_names_stays_in_its_section(event: dict, url, mode: str, key: str, name: str,
                                                        model_id: str):
    paths = [event_file_path("debug_images", event, url), event_file_path("plots/images", event, url),
             f"{artifact_folder(mode, key)}/{local_file_name(url or '', 'artifact')}",
             f"{model_folder({'role': 'output', 'name': name, 'id': model_id})}/{local_file_name(url or '', 'w')}"]
    for rel, section in zip(paths, ("debug_images", "plots/images", "artifacts", "models")):
        assert rel.startswith(section + "/")
        parts = PurePosixPath(rel[len(section) + 1:]).parts
        assert len(parts) == len(rel[len(section) + 1:].split("/"))  # no empty, "." or ".." part folded away
        for component in parts:
            _is_safe_component(component, 255)  # never index.jsonl, images, models.json, preview.txt, ...


# -- archive members ------------------------------------------------------------------------------------------
MEMBER_NAMES = st.one_of(st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=80),
                         st.sampled_from(["../x", "/abs", "a/../../x", "C:\\x", "\\\\server\\x", "a//b", "./a",
                                          "a/" * 30 + "b", "x" * 300, "d/" + "y" * 256]))
KINDS = st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"])


def _archive(path: Path, members: list[tuple[str, str]]) -> None:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, kind in members:
                info = zipfile.ZipInfo(name + ("/" if kind == "dir" else ""))
                if kind == "symlink":
                    info.external_attr = 0o120777 << 16
                zf.writestr(info, b"" if kind == "dir" else b"data")
        return
    with tarfile.open(path, "w:gz") as tf:
        for name, kind in members:
            info = tarfile.TarInfo(name)
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = "../../etc/passwd" if kind in ("symlink", "hardlink") else ""
            info.size = 4 if kind == "file" else 0
            tf.addfile(info, io.BytesIO(b"data") if kind == "file" else None)


@pytest.mark.filterwarnings("ignore:Duplicate name")  # two members of one name: a case worth having
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(MEMBER_NAMES, KINDS), min_size=1, max_size=6), st.sampled_from(["zip", "tar.gz"]))
def test_any_member_lands_inside_the_target_or_the_archive_is_refused_whole(tmp_path_factory, members, fmt):
    tmp = tmp_path_factory.mktemp("members")
    archive, target = tmp / f"crafted.{fmt}", tmp / "target"
    try:
        _archive(archive, members)
    except (ValueError, UnicodeEncodeError, OSError):
        assume(False)  # the standard library cannot even write that name
    try:
        written = extract_archive(archive, target)
    except ArchiveError as exc:
        assert "\n" not in str(exc)
        assert not [p for p in tmp.rglob("*") if p.is_file() and p != archive], "a refused archive wrote files"
        return
    real = target.resolve()
    for path in [*written, *target.rglob("*")]:
        assert real in path.resolve().parents and not path.is_symlink()
    assert not [p for p in tmp.rglob("*") if p.is_file() and p != archive and real not in p.resolve().parents]


@FAST
@given(st.sampled_from(ARCHIVE_FORMATS), st.data())
def test_any_damage_to_an_archive_is_a_one_line_archive_error_or_nothing(tmp_path_factory, fmt, data):
    tmp = tmp_path_factory.mktemp("damage")
    folder = tmp / "t.1"
    folder.mkdir()
    (folder / "console.log").write_text("line\n" * 2000)
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 40)
    (folder / "manifest.json").write_text("{}")
    archive = tmp / f"t.1.{fmt}"
    write_archive(folder, archive, {}, fmt)
    raw = bytearray(archive.read_bytes())
    cut = data.draw(st.integers(0, len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)), max_size=4))
    for at, mask in flips:
        raw[at] ^= mask
    archive.write_bytes(bytes(raw[:cut] if data.draw(st.booleans()) else raw))
    try:
        extract_archive(archive, tmp / "out")
    except ArchiveError as exc:
        assert "\n" not in str(exc) and archive.name in str(exc)


# -- stored URLs ------------------------------------------------------------------------------------------------
# what may stand in a URL's userinfo (RFC 3986: unreserved, sub-delims, ':' and %-escapes); a raw '@' in a
# password is the next test's
USERINFO = st.text(st.sampled_from("abcXYZ019-._~!$&'()*+,;=:%"), min_size=1, max_size=30)
SCHEMES = st.sampled_from(["http", "https", "s3", "gs", "azure", "ftp", "git+ssh", "s3a"])


@FAST
@given(SCHEMES, USERINFO, st.sampled_from(["files.example.com", "127.0.0.1:8081", "bucket"]),
       st.text(st.sampled_from("abc/._-@?=&#"), max_size=30), st.sampled_from(["url", "uri", "plot_str"]))
def test_no_stored_url_keeps_its_password(scheme: str, userinfo: str, host: str, path: str, field: str):
    url = f"{scheme}://{userinfo}@{host}/{path}"
    secret = urlsplit(url).password or urlsplit(url).username
    assume(secret and len(secret) >= 4 and secret not in f"{scheme}://***@{host}/{path}")
    value = json.dumps({"layout": {"images": [{"source": url}]}}) if field == "plot_str" else url
    line = record_line({"metric": "m", field: value, "nested": [{"model": {"uri": url}}]})
    assert secret not in line
    stored = json.loads(line)["nested"][0]["model"]["uri"]
    assert urlsplit(stored).hostname == urlsplit(url).hostname and urlsplit(stored).password in (None, "")


@pytest.mark.parametrize("url", ["http://user:p@ss@files.example.com/x.png", "s3://key:s3cr@t0ps3cret@bucket/w.pt"])
def test_a_password_holding_an_at_sign_is_masked_whole(url: str):
    """``urlsplit`` (and every HTTP client) reads the userinfo up to the authority's last ``@``."""
    secret = urlsplit(url).password
    assert secret.split("@")[-1] not in record_line({"url": url})
