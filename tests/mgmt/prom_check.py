#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Parse Prometheus text (stdin) with the reference parser of
python3-prometheus-client and print `name{labels} value` for every sample,
sorted. Exits 1 with the parser's message when the text does not parse, or
when a histogram's buckets are not cumulative or disagree with _count."""
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
out = []
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises ValueError and others on bad input
    print("parse error: %s" % e, file=sys.stderr)
    sys.exit(1)
for f in families:
    if f.type == "histogram":
        series = {}
        for s in f.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, {"b": [], "count": None})
            if s.name.endswith("_bucket"):
                series[key]["b"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                series[key]["count"] = s.value
        for key, h in series.items():
            b = h["b"]
            if [x[0] for x in b] != sorted(x[0] for x in b) or b[-1][0] != float("inf"):
                print("%s%s: le bounds not ascending to +Inf" % (f.name, key), file=sys.stderr)
                sys.exit(1)
            if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)) or b[-1][1] != h["count"]:
                print("%s%s: buckets not cumulative or != _count" % (f.name, key), file=sys.stderr)
                sys.exit(1)
    for s in f.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out.append("%s{%s} %r" % (s.name, labels, s.value))
print("families %d" % len(families))
print("\n".join(sorted(out)))
