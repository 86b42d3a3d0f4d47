#!/usr/bin/env python3
"""Signs the example deliveries and posts them to a running `parley serve`,
as Shopify and WooCommerce would (Python's standard library only).

    PARLEY_SHOPIFY_SECRET=s3cret PARLEY_WOOCOMMERCE_SECRET=s3cret \
        python3 examples/store-webhooks/post.py --server http://127.0.0.1:7420

Each line of deliveries.jsonl names a platform, a topic, the platform's
delivery id and a payload file (written by us from the platforms' documented
shapes). The signature is base64(HMAC-SHA256(secret, raw body)), in the
header each platform uses. Prints one line per delivery: status and answer.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import pathlib
import sys
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
HEADERS = {
    "shopify": ("X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Webhook-Id"),
    "woocommerce": ("X-WC-Webhook-Signature", "X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID"),
}


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post(server: str, platform: str, topic: str, delivery: str, body: bytes, secret: str):
    sig, top, dev = HEADERS[platform]
    req = urllib.request.Request(
        f"{server}/v1/webhooks/{platform}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", sig: sign(secret, body), top: topic, dev: delivery},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="http://127.0.0.1:7420")
    ap.add_argument("--platform", choices=sorted(HEADERS), help="only this platform's deliveries")
    args = ap.parse_args()
    failed = 0
    for line in (HERE / "deliveries.jsonl").read_text().splitlines():
        d = json.loads(line)
        if args.platform and d["platform"] != args.platform:
            continue
        secret = os.environ.get(f"PARLEY_{d['platform'].upper()}_SECRET")
        if not secret:
            print(f"set PARLEY_{d['platform'].upper()}_SECRET to post {d['platform']} deliveries", file=sys.stderr)
            return 2
        body = (HERE / d["file"]).read_bytes()
        status, answer = post(args.server, d["platform"], d["topic"], d["delivery"], body, secret)
        failed += status >= 300
        print(f"{status} {d['platform']} {d['topic']}: {answer}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
