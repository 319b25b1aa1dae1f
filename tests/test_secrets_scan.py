"""The secrets scanner that runs after the whole suite (``conftest.no_key_left_behind``) finds planted keys."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clearml_assets.local_server.auth import generate_credential
from secrets_scan import scan_text, scan_tree, secrets_in_credential_files


def test_planted_keys_are_found_everywhere_but_where_they_belong():
    cred = generate_credential(company="planted")
    # Outside pytest's base temp on purpose: the session scan must not see these planted keys.
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "server").mkdir()
        (root / "server" / "credentials.json").write_text(json.dumps([cred.__dict__]))
        (root / ".env").write_text(f"CLEARML_SECRET_X={cred.secret_key}\n")
        (root / "run.log").write_text("a" * 2_000_000 + cred.secret_key + "\n")  # across a read chunk
        with zipfile.ZipFile(root / "archive.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("task/task.json", json.dumps({"note": f"key {cred.access_key}"}))
        pq.write_table(pa.table({"variant": ["ok", cred.secret_key]}), root / "scalars.parquet",
                       compression="snappy")
        (root / "clean.txt").write_text("nothing to see")

        secrets = secrets_in_credential_files(root)
        findings = scan_tree(root, secrets)

    assert sorted(s.label for s in secrets) == ["access_key of planted", "secret_key of planted"]
    assert all(cred.secret_key not in s.label and cred.access_key not in s.label for s in secrets)
    where = {(Path(f.where.split("!")[0]).name, f.label) for f in findings}
    assert where == {("run.log", "secret_key of planted"), ("archive.zip", "access_key of planted"),
                     ("scalars.parquet", "secret_key of planted")}
    assert any(f.where.endswith("archive.zip!task/task.json") for f in findings)
    assert all(cred.secret_key not in str(f) for f in findings)
    assert scan_text(f"Traceback: 401 for {cred.secret_key}", secrets, "failure text")[0].label == \
        "secret_key of planted"
