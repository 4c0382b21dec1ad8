#!/usr/bin/env python3
"""Recall and false positives of `sluice scan` on the examples other scanners ship in their rules.

The peers' rule files are not part of this repository: pass checkouts (or `git archive` trees)
of any of them and the script reads what it finds:

  kingfisher   data/rules/*.yml                      examples, negative_examples
  noseyparker  crates/noseyparker/data/default/builtin/rules/*.yml   examples, negative_examples
  gitleaks     cmd/generate/config/rules/*.go        literal strings in tps / fps lists

Each example becomes one file; one `sluice scan --format json` run over all of them tells which
files hold a finding. Recall: positive examples with a finding. False positives: negative
examples with a finding, unless every finding names a sibling secret type correctly: the peer
rule's own service (`np.slack.2` counts a bot token against its user-token rule; sluice
reporting it as `slack-bot-token` is right) or the service of another of the peer's rules whose
pattern or examples take the same text (noseyparker lists a TeamCity token as a negative of its
JWT rule and a positive of its TeamCity rule). Service names compare without case or separators.

What counts, as the targets ask:
- kingfisher: the examples its own pattern (as Python's `re` reads it) still matches, of the
  rules it reports (`visible: false` rules, an app id or a host name feeding another rule's
  validation, are never reported and do not count);
- noseyparker: the rules whose categories include `secret` (not its `identifier` rules: bucket
  names, ARNs, account ids);
- gitleaks: the literal strings of every rule file's true- and false-positive lists.

Usage: python3 benches/peers.py [--sluice BIN] [--kingfisher DIR] [--noseyparker DIR]
                                [--gitleaks DIR] [--misses N] [--dump DIR]
Needs PyYAML. Prints one line per peer and, with --misses, that many missed examples' rule ids.
"""

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def yaml_rules(directory, secrets_only=False):
    """(peer rule id, pattern, examples, negative examples) of every rule in YAML files; with
    secrets_only, of the rules whose categories include `secret` (noseyparker also ships
    identifier rules: bucket names, ARNs, account ids)."""
    out = []
    for path in sorted(Path(directory).glob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except Exception as e:  # a broken file is reported, not fatal
            print(f"warning: {path}: {e}", file=sys.stderr)
            continue
        for rule in (doc or {}).get("rules", []) or []:
            if rule.get("visible") is False:
                # kingfisher never reports these (an app id, a host name): they only feed
                # another rule's validation.
                continue
            if secrets_only and "secret" not in (rule.get("categories") or []):
                continue
            out.append(
                (
                    rule.get("id") or rule.get("name"),
                    rule.get("pattern", ""),
                    [e for e in rule.get("examples", []) or [] if isinstance(e, str)],
                    [e for e in rule.get("negative_examples", []) or [] if isinstance(e, str)],
                )
            )
    return out


GO_STRING = re.compile(r'^\s*(`[^`]*`|"(?:[^"\\]|\\.)*")\s*,?\s*(?://.*)?$')


def go_literals(block):
    """Go string literals standing alone on their lines in `block`."""
    out = []
    for line in block.splitlines():
        m = GO_STRING.match(line)
        if not m:
            continue
        lit = m.group(1)
        if lit.startswith("`"):
            out.append(lit[1:-1])
        else:
            try:
                out.append(ast.literal_eval(lit))
            except (ValueError, SyntaxError):
                pass
    return out


def go_block_end(text, i):
    """Index just past the `}` or `)` closing the block that starts at i (depth 1), skipping
    Go comments and string literals: a brace inside `// "env": {` or a string is no brace."""
    depth = 1
    while i < len(text) and depth:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = len(text) if j < 0 else j + 2
            continue
        if c == "`":
            j = text.find("`", i + 1)
            i = len(text) if j < 0 else j + 1
            continue
        if c in "\"'":
            i += 1
            while i < len(text) and text[i] != c:
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        depth += {"{": 1, "(": 1, "}": -1, ")": -1}.get(c, 0)
        i += 1
    return i


def gitleaks_rules(directory):
    """(rule file, None, literal true positives, literal false positives) per Go rule file."""
    out = []
    for path in sorted(Path(directory).glob("*.go")):
        text = path.read_text(encoding="utf-8", errors="replace")
        lists = {"tps": [], "fps": []}
        for m in re.finditer(r"\b(tps|fps)\s*(?::=|=)\s*(?:\[\]string\{|append\(\s*\1\s*,)", text):
            i = go_block_end(text, m.end())
            lists[m.group(1)].extend(go_literals(text[m.end():i - 1]))
        if lists["tps"] or lists["fps"]:
            out.append((path.stem, None, lists["tps"], lists["fps"]))
    return out


def still_flagged(pattern, example):
    """Whether a peer's own pattern matches its example (Python's re; unknown syntax: yes)."""
    try:
        return re.search(pattern, example) is not None
    except re.error:
        return True


def scan(sluice, root):
    """Relative paths of files under root with at least one finding."""
    r = subprocess.run(
        [sluice, "scan", "--format", "json", "--quiet", "--archive-depth", "0", str(root)],
        capture_output=True,
        text=True,
    )
    if r.returncode not in (0, 1):
        sys.exit(f"sluice failed ({r.returncode}): {r.stderr[:2000]}")
    found = {}
    for f in json.loads(r.stdout)["findings"]:
        found.setdefault(os.path.relpath(f["path"], root), set()).add(f["rule"])
    return found


# A peer's service names as sluice's rule ids spell them.
ALIASES = {
    "hashicorp": ("vault", "terraform", "consul", "nomad", "hashicorp"),
    "gcp": ("gcp", "google"),
    "msteams": ("teams",),
    "azure": ("azure",),
}


def service(peer_rule):
    """The service a peer's rule is for: `np.slack.2` and `kingfisher.slack.1` -> slack,
    gitleaks' rule file `slack` -> slack."""
    parts = str(peer_rule).split(".")
    return parts[1] if len(parts) > 1 and parts[0] in ("np", "kingfisher") else parts[0]


def squash(name):
    """A service name without case or separators: `new-relic` and `newrelic` are one."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def sibling(peer_rule, sluice_rules, also=()):
    """Whether every sluice finding names the peer rule's own service, or one of `also` (the
    services of the peer's other rules that flag the same text): a sibling secret type named
    correctly is no false positive."""
    names = set()
    for svc in (service(peer_rule), *also):
        names.update(squash(n) for n in ALIASES.get(svc.lower(), (svc,)))
    return all(any(n and n in squash(r) for n in names) for r in sluice_rules)


def flagged_by_others(rules, n, example):
    """Services of the peer's other rules whose pattern (as Python's `re` reads it) or positive
    examples take this negative example: the peer itself reports it under that name."""
    out = set()
    for m, (rid, pattern, pos, _) in enumerate(rules):
        if m == n:
            continue
        hit = example in pos
        if not hit and pattern:
            try:
                hit = re.search(pattern, example) is not None
            except re.error:
                hit = False
        if hit:
            out.add(service(rid))
    return out


def measure(sluice, peer, rules, filter_by_pattern, misses, dump=None):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = []
        for n, (rid, pattern, pos, neg) in enumerate(rules):
            for kind, examples in (("pos", pos), ("neg", neg)):
                for k, ex in enumerate(examples):
                    if kind == "pos" and filter_by_pattern and pattern and not still_flagged(pattern, ex):
                        continue
                    rel = f"{kind}/{n:04d}-{k:03d}.txt"
                    p = root / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text(ex + "\n", encoding="utf-8", errors="surrogateescape")
                    cases.append((kind, rel, rid, ex, n))
        found = scan(sluice, root)
    pos = [c for c in cases if c[0] == "pos"]
    neg = [c for c in cases if c[0] == "neg"]
    hit = [c for c in pos if c[1] in found]
    fp = [
        c
        for c in neg
        if c[1] in found and not sibling(c[2], found[c[1]], flagged_by_others(rules, c[4], c[3]))
    ]
    recall = len(hit) / len(pos) if pos else float("nan")
    fp_rate = len(fp) / len(neg) if neg else float("nan")
    print(
        f"{peer:12} rules {len(rules):4}  examples {len(pos):5}  recall {recall:.3f}"
        f"  negatives {len(neg):4}  false positives {len(fp):3} ({fp_rate:.3f})"
    )
    if misses:
        missed = sorted({c[2] for c in pos if c[1] not in found})
        print(f"  missed rules ({len(missed)}): {' '.join(map(str, missed[:misses]))}")
        flagged = sorted({c[2] for c in fp})
        print(f"  false-positive rules ({len(flagged)}): {' '.join(map(str, flagged[:misses]))}")
    if dump:
        Path(dump).mkdir(parents=True, exist_ok=True)
        with open(Path(dump) / f"{peer}.jsonl", "w", encoding="utf-8") as out:
            for c in pos:
                if c[1] not in found:
                    out.write(json.dumps({"kind": "missed", "peer_rule": str(c[2]), "example": c[3]}) + "\n")
            for c in fp:
                out.write(
                    json.dumps(
                        {"kind": "false_positive", "peer_rule": str(c[2]), "example": c[3], "sluice": sorted(found[c[1]])}
                    )
                    + "\n"
                )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=str(Path(__file__).resolve().parent.parent / "target/release/sluice"))
    ap.add_argument("--kingfisher")
    ap.add_argument("--noseyparker")
    ap.add_argument("--gitleaks")
    ap.add_argument("--misses", type=int, default=0)
    ap.add_argument("--dump", help="directory: write PEER.jsonl of missed examples and false positives")
    a = ap.parse_args()
    if not (a.kingfisher or a.noseyparker or a.gitleaks):
        ap.error("pass at least one of --kingfisher, --noseyparker, --gitleaks")
    if a.kingfisher:
        measure(a.sluice, "kingfisher", yaml_rules(Path(a.kingfisher) / "data/rules"), True, a.misses, a.dump)
    if a.noseyparker:
        np_dir = Path(a.noseyparker) / "crates/noseyparker/data/default/builtin/rules"
        measure(a.sluice, "noseyparker", yaml_rules(np_dir, secrets_only=True), False, a.misses, a.dump)
    if a.gitleaks:
        measure(a.sluice, "gitleaks", gitleaks_rules(Path(a.gitleaks) / "cmd/generate/config/rules"), False, a.misses, a.dump)


if __name__ == "__main__":
    main()
