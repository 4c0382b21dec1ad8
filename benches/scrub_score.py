#!/usr/bin/env python3
"""Score a scrubber's output against the corpus of benches/scrub_corpus.py.

Inputs:
  CORPUS    the generator's JSON Lines: a {"known_names": [...]} header, then one snippet a line
            ({"locale", "text", "pii": [{"kind", "value"}], "decoys": [{"cat", "value"}]})
  SCRUBBED  JSON Lines, one {"text": "..."} a snippet, in the corpus's order, without the header
            (a first line holding "known_names" is skipped)

Measures, with whole-token matching (a value that starts or ends with a letter or digit must not
have another one right before or after it; case-sensitive):
  recall of a kind   share of its pii values that no longer occur in the scrubbed text
  decoy survival     share of decoys occurring in the scrubbed text at least as often as in the
                     original: the precision proxy, overall and per decoy category

Exits 1 when a structured kind (all but person_name) has recall < 0.99, person_name < 0.95, or
overall decoy survival < 0.95; 2 on unreadable or mismatched input. --no-fail only prints.

Usage: python3 benches/scrub_score.py CORPUS SCRUBBED [--no-fail] [--misses N]
"""

import argparse
import json
import re
import sys
from collections import defaultdict

STRUCTURED_MIN, NAME_MIN, SURVIVAL_MIN = 0.99, 0.95, 0.95


def count(text, value):
    """Whole-token occurrences of value in text."""
    pat = re.escape(value)
    if re.match(r"\w", value[0]):
        pat = r"(?<!\w)" + pat
    if re.match(r"\w", value[-1]):
        pat += r"(?!\w)"
    return len(re.findall(pat, text))


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("scrubbed")
    ap.add_argument("--no-fail", action="store_true", help="print only; exit 0 whatever the scores")
    ap.add_argument("--misses", type=int, default=0, metavar="N",
                    help="print up to N missed pii values and N changed decoys")
    a = ap.parse_args()
    try:
        corpus, scrubbed = read_jsonl(a.corpus), read_jsonl(a.scrubbed)
    except (OSError, ValueError) as e:
        print(f"scrub_score: {e}", file=sys.stderr)
        sys.exit(2)  # not 1: that reads as a failed score
    if not corpus or "known_names" not in corpus[0]:
        print("scrub_score: the corpus has no known_names header", file=sys.stderr)
        sys.exit(2)
    snippets = corpus[1:]
    if scrubbed and "known_names" in scrubbed[0]:
        scrubbed = scrubbed[1:]
    if len(scrubbed) != len(snippets) or not all(isinstance(s.get("text"), str) for s in scrubbed):
        print(f"scrub_score: {len(snippets)} snippets but {len(scrubbed)} scrubbed texts "
              "(one {\"text\": ...} a line expected)", file=sys.stderr)
        sys.exit(2)

    found, total = defaultdict(int), defaultdict(int)        # pii kind -> removed / all
    kept, seen = defaultdict(int), defaultdict(int)          # decoy cat -> unchanged / all
    loc_found, loc_total = defaultdict(int), defaultdict(int)
    loc_kept, loc_seen = defaultdict(int), defaultdict(int)
    missed, changed = [], []
    for snip, out in zip(snippets, scrubbed):
        loc, before, after = snip["locale"], snip["text"], out["text"]
        for p in snip["pii"]:
            gone = count(after, p["value"]) == 0
            total[p["kind"]] += 1
            loc_total[loc] += 1
            found[p["kind"]] += gone
            loc_found[loc] += gone
            if not gone:
                missed.append((p["kind"], p["value"], after))
        for d in snip["decoys"]:
            ok = count(after, d["value"]) >= count(before, d["value"])
            seen[d["cat"]] += 1
            loc_seen[loc] += 1
            kept[d["cat"]] += ok
            loc_kept[loc] += ok
            if not ok:
                changed.append((d["cat"], d["value"], after))

    rate = lambda n, d: n / d if d else 1.0  # noqa: E731
    failures = []
    print(f"{len(snippets)} snippets\n\nrecall per kind{'':14}found/total")
    for kind in sorted(total):
        r = rate(found[kind], total[kind])
        floor = NAME_MIN if kind == "person_name" else STRUCTURED_MIN
        flag = "" if r >= floor else f"  < {floor}"
        if flag:
            failures.append(f"{kind} recall {r:.4f} < {floor}")
        print(f"  {kind:16} {r:8.4f}  {found[kind]:6}/{total[kind]:<6}{flag}".rstrip())
    all_found, all_total = sum(found.values()), sum(total.values())
    s_found = sum(v for k, v in found.items() if k != "person_name")
    s_total = sum(v for k, v in total.items() if k != "person_name")
    print(f"  {'structured':16} {rate(s_found, s_total):8.4f}  {s_found:6}/{s_total}")
    print(f"  {'overall':16} {rate(all_found, all_total):8.4f}  {all_found:6}/{all_total}")

    print(f"\ndecoy survival per category{'':2}kept/total")
    for cat in sorted(seen):
        print(f"  {cat:16} {rate(kept[cat], seen[cat]):8.4f}  {kept[cat]:6}/{seen[cat]}")
    all_kept, all_seen = sum(kept.values()), sum(seen.values())
    survival = rate(all_kept, all_seen)
    flag = "" if survival >= SURVIVAL_MIN else f"  < {SURVIVAL_MIN}"
    if flag:
        failures.append(f"decoy survival {survival:.4f} < {SURVIVAL_MIN}")
    print(f"  {'overall':16} {survival:8.4f}  {all_kept:6}/{all_seen}{flag}")

    print("\nper locale        recall  survival")
    for loc in sorted(loc_total.keys() | loc_seen.keys()):
        print(f"  {loc:14} {rate(loc_found[loc], loc_total[loc]):8.4f}  {rate(loc_kept[loc], loc_seen[loc]):8.4f}")

    for title, rows in (("missed pii", missed), ("changed decoys", changed)):
        if a.misses and rows:
            print(f"\n{title} (first {min(a.misses, len(rows))} of {len(rows)}):")
            for what, value, text in rows[:a.misses]:
                print(f"  {what:14} {value!r}  in  {text[:160]!r}")

    if failures:
        print("\nFAIL: " + "; ".join(failures))
        if not a.no_fail:
            sys.exit(1)
    else:
        print("\nPASS")


if __name__ == "__main__":
    main()
