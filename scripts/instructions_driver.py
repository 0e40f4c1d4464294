#!/usr/bin/env python3
"""Prints the path of the `instructions` bench executable (benches/instructions.rs)
from `cargo bench ... --no-run --message-format=json` on stdin. Shared by
scripts/bench.sh and scripts/prototype.sh."""

import json
import sys

for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "instructions":
        print(m["executable"])
