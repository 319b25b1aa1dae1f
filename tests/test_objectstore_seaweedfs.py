"""The SeaweedFS fixture itself: a real S3 endpoint that refuses strangers and keeps data across a restart."""

from __future__ import annotations

import pytest


def test_bucket_is_fresh_and_strangers_are_refused(s3_bucket):
    import s3fs

    fs = s3_bucket.filesystem()
    assert s3_bucket.keys() == []
    fs.pipe(f"{s3_bucket.name}/a/b.txt", b"hello")
    assert s3_bucket.keys() == ["a/b.txt"]
    endpoint = {"endpoint_url": s3_bucket.server.endpoint_url, "region_name": "us-east-1"}
    anonymous = s3fs.S3FileSystem(anon=True, skip_instance_cache=True, client_kwargs=endpoint)
    wrong = s3fs.S3FileSystem(key=s3_bucket.server.access_key, secret="not-the-secret",
                              skip_instance_cache=True,
                              client_kwargs=endpoint)
    for stranger in (anonymous, wrong):
        with pytest.raises(PermissionError):
            stranger.cat(f"{s3_bucket.name}/a/b.txt")


def test_data_survives_away_and_back(s3_bucket):
    fs = s3_bucket.filesystem()
    fs.pipe(f"{s3_bucket.name}/kept", b"x" * 1000)
    with s3_bucket.server.away():
        down = s3_bucket.filesystem(config_kwargs={"connect_timeout": 1, "retries": {"max_attempts": 1}},
                                    retries=1)
        with pytest.raises(Exception):  # noqa: B017,PT011 - botocore's connection error, whatever its class
            down.cat(f"{s3_bucket.name}/kept")
    assert s3_bucket.filesystem().cat(f"{s3_bucket.name}/kept") == b"x" * 1000
