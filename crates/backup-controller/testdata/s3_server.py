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
