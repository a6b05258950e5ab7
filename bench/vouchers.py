# SPDX-License-Identifier: Apache-2.0
"""Offline voucher verification against a bare Ed25519 verify, in one run.

The baseline verifies the same signatures over the same signed bytes with
`cryptography` directly; the SDK parses each payload, finds the issuer key
by id, verifies and rebuilds the typed terms. Also measures issuing a
campaign into the registry. Target: verification throughput at least 0.8
of the baseline's.

    python bench/vouchers.py          # quick: 5,000 vouchers
    python bench/vouchers.py --full   # 100,000 vouchers
"""

from __future__ import annotations

import base64
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import parse_args, result

from loyaltysdk.vouchers import (
    IssuerKey,
    Keyring,
    VoucherIssuer,
    VoucherRegistry,
    VoucherTemplate,
    read_payload,
)


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 100_000 if args.full else 5_000
    key = IssuerKey.generate("HQ-1")
    keyring = Keyring({"HQ-1": key.public_key})
    now = datetime.now(UTC)
    template = VoucherTemplate(
        "value", 1_000, "EUR", now, now + timedelta(days=30), categories={"food"}, campaign="B"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        registry = VoucherRegistry(Path(tmp) / "vouchers.db")
        start = time.perf_counter()
        vouchers = list(VoucherIssuer(key).issue_batch(template, count))
        registry.add(vouchers)
        issue_seconds = time.perf_counter() - start
        registry.close()
    payloads = [v.payload for v in vouchers]
    signed = []
    for payload in payloads:
        body, _, signature = payload.rpartition(".")
        signed.append((base64.urlsafe_b64decode(signature + "=="), body.encode("ascii")))
    public = key.public_key
    best_bare = best_sdk = float("inf")
    for _ in range(3):  # alternate, keep the best of each
        start = time.perf_counter()
        for signature, message in signed:
            public.verify(signature, message)
        best_bare = min(best_bare, time.perf_counter() - start)
        start = time.perf_counter()
        for payload in payloads:
            read_payload(payload, keyring.keys)
        best_sdk = min(best_sdk, time.perf_counter() - start)
    bare_rate, sdk_rate = count / best_bare, count / best_sdk
    ratio = sdk_rate / bare_rate
    print(f"vouchers: {count}; issued and stored in {issue_seconds:.2f} s")
    print(f"bare Ed25519 verify  {bare_rate:10,.0f} /s")
    print(f"SDK offline verify   {sdk_rate:10,.0f} /s   ratio {ratio:.2f}")
    result("vouchers", ratio, 0.8, ratio >= 0.8)


if __name__ == "__main__":
    main()
