"""Checks an S3 endpoint with boto3, as deploy/local/s3 check runs it: signed bucket create, PUT, GET, list,
multipart upload (2 parts), delete; and that an unsigned and a wrongly signed request are refused. Reads
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. Prints one line per step; exit 1 on failure."""
import os
import sys
import uuid

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = os.environ["AWS_ENDPOINT_URL"]
cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2})
s3 = boto3.client("s3", endpoint_url=endpoint, config=cfg)
bucket = "sluice-check-" + uuid.uuid4().hex[:12]


def step(msg):
    print(f"[s3 check] {msg}", flush=True)


s3.create_bucket(Bucket=bucket)
step(f"created bucket {bucket}")
try:
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello sluice")
    body = s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read()
    assert body == b"hello sluice", body
    step("signed PUT + GET ok")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="a/").get("Contents", [])]
    assert keys == ["a/b.txt"], keys
    step("list_objects_v2 ok")
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = b"tail"
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="multi.bin")
    parts = []
    for n, data in ((1, part1), (2, part2)):
        r = s3.upload_part(Bucket=bucket, Key="multi.bin", UploadId=mpu["UploadId"], PartNumber=n, Body=data)
        parts.append({"ETag": r["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(Bucket=bucket, Key="multi.bin", UploadId=mpu["UploadId"],
                                 MultipartUpload={"Parts": parts})
    got = s3.get_object(Bucket=bucket, Key="multi.bin")["Body"].read()
    assert got == part1 + part2, len(got)
    step(f"multipart upload ok ({len(got)} bytes, 2 parts)")
    anon = boto3.client("s3", endpoint_url=endpoint, config=Config(signature_version=UNSIGNED))
    try:
        anon.get_object(Bucket=bucket, Key="a/b.txt")
        sys.exit("[s3 check] FAILED: an unsigned GET was served (credentials are not enforced)")
    except ClientError as e:
        step(f"unsigned GET refused ({e.response['Error']['Code']})")
    bad = boto3.client("s3", endpoint_url=endpoint, config=cfg, aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key="wrong-secret")
    try:
        bad.get_object(Bucket=bucket, Key="a/b.txt")
        sys.exit("[s3 check] FAILED: a GET signed with a wrong secret was served")
    except ClientError as e:
        step(f"wrong secret refused ({e.response['Error']['Code']})")
finally:
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=o["Key"])
    s3.delete_bucket(Bucket=bucket)
    step(f"deleted bucket {bucket}")
