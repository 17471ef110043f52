#!/usr/bin/env python3
"""A real S3-compatible server for the backup-controller's tests: moto, on 127.0.0.1.

Starts moto's server (tested with moto 5.2.5) on a free port (or --port), with request authentication turned on, creates
one IAM user whose access key may do everything in S3, and prints one JSON line to stdout:

    {"endpoint": "http://127.0.0.1:PORT", "accessKeyId": "...", "secretAccessKey": "...",
     "region": "us-east-1"}

Requests signed with any other key are refused (InvalidAccessKeyId / SignatureDoesNotMatch),
so wrong-credential tests mean something. moto's authentication cannot read presigned URLs
(query-string SigV4; it fails with a 500), so for those this script checks the access key and
the expiry and leaves the signature unchecked: the one place this server is laxer than S3. Serves until stdin closes (the test process that
started it exited) or, with --forever, until killed.

Before printing that line it loads all the moto code its S3 answers need: it imports every
module of the moto packages those answers run (core, server, IAM, STS, S3, events), lists
moto's package directory once (moto's dispatcher would list it for every request), then runs
each S3 operation the tests and the bench use (and the refusals the tests check) once against
itself and deletes what that made. moto would otherwise import most of its S3 code on the first
S3 request, which under `just test` comes only after the whole test build, many minutes later
on a busy machine; a moto (re)install on the machine in between (another job's `just s3-deps`
or pip) then fails those requests with HTTP 500 (ModuleNotFoundError / ImportError from
replaced or missing files). After the line is printed the server reads none of moto's files.
"""

import argparse
import json
import os
import socket
import sys
import threading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accept_presigned_urls(access_key_id: str) -> None:
    """Teaches moto's S3 authentication to accept presigned (query-string) requests."""
    import datetime
    from urllib.parse import parse_qs, urlparse

    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.s3.exceptions import S3AccessDeniedError, S3InvalidAccessKeyIdError

    header_auth = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def authenticate(self, bucket_name=None, key_name=None):  # type: ignore[no-untyped-def]
        query = parse_qs(urlparse(self.uri).query)
        if "Authorization" in self.headers or "X-Amz-Signature" not in query:
            return header_auth(self, bucket_name=bucket_name, key_name=key_name)
        credential = query.get("X-Amz-Credential", [""])[0]
        if credential.split("/")[0] != access_key_id:
            raise S3InvalidAccessKeyIdError()
        signed_at = datetime.datetime.strptime(
            query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"
        ).replace(tzinfo=datetime.timezone.utc)
        expires = datetime.timedelta(seconds=int(query["X-Amz-Expires"][0]))
        if datetime.datetime.now(datetime.timezone.utc) > signed_at + expires:
            raise S3AccessDeniedError()
        return None

    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = authenticate


def fix_xml_roots() -> None:
    """moto serializes some S3 answers under `<{Operation}Response>`, where S3 (and strict
    clients such as the Rust SDK) use another root element; rename those roots."""
    from moto.core.serialize import RestXMLSerializer

    roots = {"CompleteMultipartUploadResponse": "CompleteMultipartUploadResult"}
    serialize_body = RestXMLSerializer._serialize_body

    def body(self, body):  # type: ignore[no-untyped-def]
        if isinstance(body, dict) and len(body) == 1:
            (root, value), = body.items()
            if root in roots:
                body = {roots[root]: value}
        return serialize_body(self, body)

    RestXMLSerializer._serialize_body = body


# The packages whose code moto's server runs to answer the tests' S3 requests (dispatch, IAM
# authentication, S3, serializers, the notifications a new bucket sends).
PRELOADED_PACKAGES = (
    "moto.core",
    "moto.moto_server",
    "moto.moto_api",
    "moto.utilities",
    "moto.iam",
    "moto.sts",
    "moto.s3",
    "moto.events",
)
WARM_UP_BUCKET = "s3-server-warm-up"


def preload_modules() -> None:
    """Imports now every module moto would import on first use (see the module docs)."""
    import importlib
    import pkgutil

    for name in PRELOADED_PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, name + "."):
            importlib.import_module(module.name)
    # moto's reader of aws-chunked request bodies (what the Rust SDK streams) imports it late.
    importlib.import_module("botocore.httpchecksum")


def list_moto_modules_once() -> None:
    """moto's dispatcher lists moto's package directory on disk for every request (to tell a
    service name from a host name); list it once, now."""
    import moto.backends

    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules


def warm_up(endpoint: str, access_key_id: str, secret_access_key: str) -> None:
    """Runs once, over HTTP, every S3 operation the tests and the bench use and the refusals
    the tests check, so moto builds its S3 app, backend, models and serializers now; then
    deletes the bucket it made. Raises on an answer that is not the expected one (a 5xx above
    all), so a broken server fails to start instead of failing tests."""
    import urllib.error
    import urllib.request

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    def client(key_id: str, secret: str):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
            ),
        )

    def refused(what: str, call) -> None:  # type: ignore[no-untyped-def]
        try:
            call()
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if 400 <= status < 500:
                return
            raise RuntimeError(f"S3 warm-up: {what} answered {status}: {e}") from e
        raise RuntimeError(f"S3 warm-up: {what} was not refused")

    def http_get(url: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as e:
            return e.code, b""

    s3 = client(access_key_id, secret_access_key)
    bucket = WARM_UP_BUCKET
    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="w/small", Body=b"{}", ContentType="application/json")
    s3.head_object(Bucket=bucket, Key="w/small")
    if s3.get_object(Bucket=bucket, Key="w/small")["Body"].read() != b"{}":
        raise RuntimeError("S3 warm-up: GetObject returned other bytes")
    s3.list_objects_v2(Bucket=bucket, Prefix="w", MaxKeys=1)
    for key, abort in (("w/completed", False), ("w/aborted", True)):
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        etag = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part"
        )["ETag"]
        s3.list_multipart_uploads(Bucket=bucket, Prefix="w")
        if abort:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        else:
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
            )
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "w/small"}, ExpiresIn=60
    )
    if http_get(url) != (200, b"{}"):
        raise RuntimeError("S3 warm-up: the presigned GET did not answer 200 with the object")
    status, _ = http_get(url.replace("X-Amz-Credential=", "X-Amz-Credential=AKIAWRONG"))
    if status != 403:
        raise RuntimeError(f"S3 warm-up: a presigned GET with another key answered {status}")
    wrong_secret = client(access_key_id, "not-the-secret")
    refused("HeadBucket with a wrong secret", lambda: wrong_secret.head_bucket(Bucket=bucket))
    refused(
        "PutObject with a wrong secret",
        lambda: wrong_secret.put_object(Bucket=bucket, Key="w/x", Body=b"x"),
    )
    unknown_key = client("AKIAWARMUPUNKNOWNKEY", secret_access_key)
    refused(
        "PutObject with an unknown key",
        lambda: unknown_key.put_object(Bucket=bucket, Key="w/x", Body=b"x"),
    )
    missing = bucket + "-missing"
    refused("HeadBucket of a missing bucket", lambda: s3.head_bucket(Bucket=missing))
    refused(
        "PutObject into a missing bucket",
        lambda: s3.put_object(Bucket=missing, Key="w/x", Body=b"x"),
    )
    refused("GetObject of a missing key", lambda: s3.get_object(Bucket=bucket, Key="w/none"))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    s3.delete_bucket(Bucket=bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--forever", action="store_true")
    args = parser.parse_args()

    # The IAM set-up below (create user, access key, policy) runs unauthenticated; every
    # request after those three is authenticated and authorized.
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    # moto reads its settings at import time.
    import boto3
    from moto.server import ThreadedMotoServer

    port = args.port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="backup")
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    iam.put_user_policy(
        UserName="backup",
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    accept_presigned_urls(key["AccessKeyId"])
    fix_xml_roots()
    preload_modules()
    list_moto_modules_once()
    warm_up(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "accessKeyId": key["AccessKeyId"],
                "secretAccessKey": key["SecretAccessKey"],
                "region": "us-east-1",
            }
        ),
        flush=True,
    )
    if args.forever:
        threading.Event().wait()
    else:
        sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
