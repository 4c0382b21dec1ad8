//! How far around a keyword hit a rule's match can lie, read from the rule's regex.
//!
//! The engine runs a rule's regex only in windows around its keywords' hits. Windows of a fixed
//! size cost the same for a 40-byte token as for a connection string; here the parsed regex
//! gives two facts that make them tight without ever cutting a match:
//! - its longest match (`\b(pat[A-Za-z0-9]{14}\.[a-f0-9]{64})\b` is 82 bytes), so no match
//!   reaches further than that past the hit's start, or starts further before its end;
//! - whether every match starts with one of the rule's keywords (after zero-width assertions such
//!   as `\b`): then a match starts exactly at a hit, and nothing before it needs searching.
//!
//! A regex may open with branches that capture nothing, to skip what looks like an assignment
//! but is not one: `(?:next_token\s*=|::\w*?token\s*=)|token\s*=\s*(\w+)`. Leftmost-first,
//! such a branch starts before the keyword and swallows it. When the other branches all start
//! with a keyword, the rule is [`Split`]: its matches are searched anchored at each hit, and the
//! exclusions only just around it.

use regex_syntax::hir::{Class, Hir, HirKind};

/// A rule's reach around its keyword hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// The longest match the regex can make, in bytes (`None`: unbounded).
    pub max_len: Option<usize>,
    /// Every match starts with one of the rule's keywords (ASCII case-insensitively).
    pub anchored: bool,
    /// How far before a keyword hit a match can start, when every match starts with a literal
    /// holding a keyword (`(?:api|currency|screenshot)layer` with the keyword `layer`: 10).
    pub before: Option<usize>,
}

/// Most prefixes followed through alternations and small classes before giving up.
const MAX_PREFIXES: usize = 512;

impl Reach {
    /// Read the reach of `pattern` (compiled as the engine compiles it: bytes, ASCII classes)
    /// for a rule with these lowercase `keywords`. A pattern that does not parse reaches
    /// everywhere (it will not compile either, and is reported there).
    /// A rule whose regex is [`Split`] is searched at its hits too; its rule says so.
    pub fn of(pattern: &str, keywords: &[String]) -> Reach {
        let Some(hir) = parse(pattern) else {
            return Reach {
                max_len: None,
                anchored: false,
                before: None,
            };
        };
        let before = keyword_offset(&hir, keywords);
        Reach {
            max_len: hir.properties().maximum_len(),
            anchored: before == Some(0),
            before,
        }
    }
}

/// A regex taken apart at its leading exclusions: an alternation whose first branches capture
/// nothing, and whose other branches (which hold the secret's group) all start with a keyword.
/// A match of the whole regex is a match of `main` at a keyword hit, unless a match of
/// `exclusions` starts before the hit (or at it) and reaches past its start.
#[derive(Debug)]
pub struct Split {
    /// The leading branches that capture nothing, as one alternation.
    pub exclusions: Hir,
    /// The remaining branches, as one alternation.
    pub main: Hir,
}

impl Split {
    /// Take `pattern` apart, when it has that shape and is not anchored as it is.
    pub fn of(pattern: &str, keywords: &[String]) -> Option<Split> {
        split(&parse(pattern)?, keywords)
    }
}

/// What the bytes from a keyword hit must be for a rule searched there (one whose matches start
/// at its hits) to match: per keyword of the rule, the bytes each of the match's first positions
/// can hold when it starts with that keyword. They are read from the regex's NFA, stepping all
/// its states at once through the keyword (either case of each letter) and then through any
/// byte; zero-width assertions are taken as passed, so the sets hold at least every byte a
/// match can have. `\b(pat[A-Za-z0-9]{14}\.[a-f0-9]{64})` turns `pattern = 1` away at its
/// space, and the generic rules turn `tokens`, `token)` and `tokenizer` away, before any search
/// is started: most hits of a keyword are inside ordinary words and names. The sets are per
/// position, not per path: `token.kind` passes, as `token:kind` could start a match.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Per keyword (in the rule's order), per position from the match start, the bytes allowed
    /// there (256 bits); none past the last position that rules anything out. No entry for a
    /// keyword: every start admitted.
    classes: Vec<Vec<[u64; 4]>>,
}

/// Positions past its keyword a guard reads at most.
const GUARD_PAST: usize = 16;

/// NFA states stepped at once before the guard stops reading further positions.
const GUARD_STATES: usize = 4096;

impl Guard {
    /// The guard of the regex a rule with these lowercase `keywords` searches at its hits:
    /// `pattern`'s main branches when it is [`Split`], else the whole of it. A pattern that does
    /// not parse or compile admits all.
    pub fn of(pattern: &str, keywords: &[String], split: bool) -> Guard {
        let hir = if split {
            Split::of(pattern, keywords).map(|s| s.main)
        } else {
            parse(pattern)
        };
        hir.map_or_else(Guard::default, |h| Guard::of_hir(&h, keywords))
    }

    fn of_hir(hir: &Hir, keywords: &[String]) -> Guard {
        use regex_automata::nfa::thompson::{self, State, WhichCaptures};
        use regex_automata::util::primitives::StateID;
        let Ok(nfa) = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .shrink(false)
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(1 << 23)),
            )
            .build_from_hir(hir)
        else {
            return Guard::default();
        };
        let n = nfa.states().len();
        // The states reachable from `from` without reading a byte; `None` when one matches.
        let closure = |from: &[StateID]| -> Option<Vec<StateID>> {
            let mut seen = vec![false; n];
            let mut stack = from.to_vec();
            let mut out = Vec::new();
            while let Some(id) = stack.pop() {
                if std::mem::replace(&mut seen[id.as_usize()], true) {
                    continue;
                }
                match nfa.state(id) {
                    State::Match { .. } => return None,
                    State::Look { next, .. } | State::Capture { next, .. } => stack.push(*next),
                    State::Union { alternates } => stack.extend(alternates.iter().copied()),
                    State::BinaryUnion { alt1, alt2 } => stack.extend([*alt1, *alt2]),
                    State::Fail => {}
                    State::ByteRange { .. } | State::Sparse(_) | State::Dense(_) => out.push(id),
                }
            }
            Some(out)
        };
        // One step of `now` on the bytes of `allowed`: the bytes taken and the states reached.
        let step = |now: &[StateID], allowed: &[u64; 4]| -> ([u64; 4], Vec<StateID>) {
            let mut class = [0u64; 4];
            let mut next = Vec::new();
            let mut add = |lo: u8, hi: u8, to: StateID| {
                let mut any = 0;
                for (w, (c, a)) in class.iter_mut().zip(allowed).enumerate() {
                    // The bits of `lo..=hi` in word `w` (bytes 64w to 64w + 63).
                    let (first, last) = (64 * w, 64 * w + 63);
                    let (lo, hi) = (usize::from(lo).max(first), usize::from(hi).min(last));
                    if lo > hi {
                        continue;
                    }
                    let bits = (u64::MAX >> (63 - (hi - first))) & (u64::MAX << (lo - first));
                    *c |= bits & a;
                    any |= bits & a;
                }
                if any != 0 {
                    next.push(to);
                }
            };
            for &id in now {
                match nfa.state(id) {
                    State::ByteRange { trans } => add(trans.start, trans.end, trans.next),
                    State::Sparse(s) => {
                        for t in s.transitions.iter() {
                            add(t.start, t.end, t.next);
                        }
                    }
                    State::Dense(d) => {
                        for (b, &to) in d.transitions.iter().enumerate() {
                            if to != StateID::ZERO {
                                add(b as u8, b as u8, to);
                            }
                        }
                    }
                    _ => {}
                }
            }
            next.sort_unstable();
            next.dedup();
            (class, next)
        };
        let start = closure(&[nfa.start_anchored()]);
        let classes = keywords
            .iter()
            .map(|k| {
                let mut classes = Vec::new();
                let mut states = start.clone();
                let any = [u64::MAX; 4];
                for i in 0..k.len() + GUARD_PAST {
                    let Some(now) = states.take() else { break };
                    if now.len() > GUARD_STATES {
                        break;
                    }
                    let allowed = k.as_bytes().get(i).map_or(any, |&c| {
                        let mut set = [0u64; 4];
                        for b in [c, c.to_ascii_uppercase()] {
                            set[usize::from(b >> 6)] |= 1 << (b & 63);
                        }
                        set
                    });
                    let (class, next) = step(&now, &allowed);
                    classes.push(class);
                    if next.is_empty() {
                        break;
                    }
                    states = closure(&next);
                }
                while classes.last() == Some(&any) {
                    classes.pop();
                }
                classes
            })
            .collect();
        Guard { classes }
    }

    /// Whether a match can start at `at` in `buf` with the rule's keyword `keyword` (its index
    /// in the rule's list): each guarded position holds a byte its set allows (a match that
    /// needs more bytes than are left cannot start there).
    pub fn admits(&self, keyword: usize, buf: &[u8], at: usize) -> bool {
        let Some(classes) = self.classes.get(keyword) else {
            return true;
        };
        let Some(rest) = buf.get(at..at + classes.len()) else {
            return false;
        };
        classes
            .iter()
            .zip(rest)
            .all(|(c, &b)| c[usize::from(b >> 6)] >> (b & 63) & 1 == 1)
    }
}

/// `pattern` parsed as the engine compiles it.
fn parse(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

/// Whether every match of `hir` starts with one of `keywords`.
fn starts_with_keyword(hir: &Hir, keywords: &[String]) -> bool {
    keyword_offset(hir, keywords) == Some(0)
}

/// The furthest into a match its first keyword can start, when every match starts with a
/// literal holding one: the most, over those literals, of where a keyword first starts in each.
fn keyword_offset(hir: &Hir, keywords: &[String]) -> Option<usize> {
    let (prefixes, _) = prefixes(hir);
    let first_keyword = |p: &[u8]| {
        keywords
            .iter()
            .filter(|k| !k.is_empty() && k.len() <= p.len())
            .filter_map(|k| p.windows(k.len()).position(|w| w == k.as_bytes()))
            .min()
    };
    let mut most = None;
    for p in &prefixes {
        most = most.max(Some(first_keyword(p)?));
    }
    most
}

/// See [`Split`].
fn split(hir: &Hir, keywords: &[String]) -> Option<Split> {
    if starts_with_keyword(hir, keywords) {
        return None;
    }
    let HirKind::Alternation(branches) = hir.kind() else {
        return None;
    };
    let first_capturing = branches
        .iter()
        .position(|b| b.properties().explicit_captures_len() > 0)?;
    if first_capturing == 0 {
        return None;
    }
    let main = Hir::alternation(branches[first_capturing..].to_vec());
    starts_with_keyword(&main, keywords).then(|| Split {
        exclusions: Hir::alternation(branches[..first_capturing].to_vec()),
        main,
    })
}

/// Lowercase strings one of which every match of `h` starts with, and whether `h` matches
/// exactly those strings (so what follows `h` in a concatenation extends them). `[""]` with
/// `false` says nothing.
fn prefixes(h: &Hir) -> (Vec<Vec<u8>>, bool) {
    let nothing = || (vec![Vec::new()], false);
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => (vec![Vec::new()], true),
        HirKind::Literal(lit) => (vec![lit.0.to_ascii_lowercase()], true),
        HirKind::Class(class) => match folded_bytes(class) {
            Some(bytes) => (bytes.into_iter().map(|b| vec![b]).collect(), true),
            None => nothing(),
        },
        HirKind::Capture(cap) => prefixes(&cap.sub),
        // `x?`: nothing, or `x`.
        HirKind::Repetition(rep) if rep.min == 0 && rep.max == Some(1) => {
            let (mut p, complete) = prefixes(&rep.sub);
            p.push(Vec::new());
            p.sort();
            p.dedup();
            (p, complete)
        }
        HirKind::Repetition(rep) if rep.min == 0 => nothing(),
        // At least one copy comes first; what follows it is unknown.
        HirKind::Repetition(rep) => (prefixes(&rep.sub).0, false),
        HirKind::Concat(parts) => {
            let mut acc: Vec<Vec<u8>> = vec![Vec::new()];
            for part in parts {
                let (next, complete) = prefixes(part);
                if acc.len() * next.len() > MAX_PREFIXES {
                    return (acc, false);
                }
                acc = acc
                    .iter()
                    .flat_map(|a| {
                        next.iter().map(move |n| {
                            let mut s = a.clone();
                            s.extend_from_slice(n);
                            s
                        })
                    })
                    .collect();
                acc.sort();
                acc.dedup();
                if !complete {
                    return (acc, false);
                }
            }
            (acc, true)
        }
        HirKind::Alternation(alts) => {
            let mut all = Vec::new();
            let mut complete = true;
            for alt in alts {
                let (p, c) = prefixes(alt);
                complete &= c;
                all.extend(p);
                if all.len() > MAX_PREFIXES {
                    return nothing();
                }
            }
            all.sort();
            all.dedup();
            (all, complete)
        }
    }
}

/// The lowercased bytes a class matches, when there are few (`[Aa]`, `[_-]`).
fn folded_bytes(class: &Class) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut push = |lo: u32, hi: u32| -> Option<()> {
        if hi - lo > 8 || hi > 0x7F {
            return None;
        }
        for c in lo..=hi {
            out.push((c as u8).to_ascii_lowercase());
        }
        Some(())
    };
    match class {
        Class::Bytes(c) => {
            for r in c.ranges() {
                push(r.start() as u32, r.end() as u32)?;
            }
        }
        Class::Unicode(c) => {
            for r in c.ranges() {
                push(r.start() as u32, r.end() as u32)?;
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    (out.len() <= 8).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefix_tokens_are_anchored_at_their_keyword_and_bounded() {
        let r = Reach::of(r"\b(pat[A-Za-z0-9]{14}\.[a-f0-9]{64})\b", &kw(&["pat"]));
        assert_eq!(
            r,
            Reach {
                max_len: Some(82),
                anchored: true,
                before: Some(0),
            }
        );
        // Case-insensitive service names and alternatives of keywords.
        let r = Reach::of(
            r#"(?i:cloudflare|cf[_-])[A-Za-z0-9_.-]{0,20}?(?i:token)=([A-Za-z0-9_-]{40})"#,
            &kw(&["cloudflare", "cf_", "cf-"]),
        );
        assert!(r.anchored);
        assert_eq!(r.max_len, Some(10 + 20 + 5 + 1 + 40));
        // An optional separator inside the keyword.
        let r = Reach::of(
            r"api[_.-]?key=([a-z]{8})",
            &kw(&["api_key", "api.key", "apikey"]),
        );
        assert!(!r.anchored, "api-key is no keyword");
        let r = Reach::of(
            r"api[_.]?key=([a-z]{8})",
            &kw(&["api_key", "api.key", "apikey"]),
        );
        assert!(r.anchored);
    }

    #[test]
    fn context_before_the_keyword_or_unbounded_values_are_not_assumed_away() {
        // The match starts with a quote or a name before the keyword.
        assert!(!Reach::of(r#"["']?token=([a-z]{8})"#, &kw(&["token"])).anchored);
        assert!(!Reach::of(r"[a-z_]{0,20}secret=([a-z]{8})", &kw(&["secret"])).anchored);
        // One alternative starts elsewhere.
        assert!(!Reach::of(r"(?:ghp_|x)([a-z]{8})", &kw(&["ghp_"])).anchored);
        // A keyword that is only a prefix of the literal's start does not anchor: `cf` alone
        // could start `cfg`.
        assert!(!Reach::of(r"cf([a-z]{8})", &kw(&["cf_"])).anchored);
        assert_eq!(Reach::of(r"key=([a-z]+)", &kw(&["key"])).max_len, None);
        // Branches that capture nothing must come first to be exclusions: here the keyword-less
        // branch comes after the one holding the secret.
        assert!(Split::of(r"token=([a-z]{8})|next_token=", &kw(&["token"])).is_none());
        // The secret's branch itself starts before its keyword.
        assert!(Split::of(r"next_token=|x?token=([a-z]{8})", &kw(&["token"])).is_none());
        // A pattern that does not parse reaches everywhere.
        assert_eq!(
            Reach::of(r"(unclosed", &kw(&["x"])),
            Reach {
                max_len: None,
                anchored: false,
                before: None,
            }
        );
    }

    #[test]
    fn a_keyword_inside_a_leading_literal_bounds_the_reach_before_it() {
        let keywords = kw(&["layer"]);
        let r = Reach::of(
            r"(?i:(?:api|currency|screenshot)layer)[a-z_]{0,20}key=([a-z0-9]{32})",
            &keywords,
        );
        assert_eq!((r.anchored, r.before), (false, Some(10)));
        // Optional parts count at their longest.
        let r = Reach::of(
            r"azure[_.-]?(?:ai[_.-]?)?search_key=([a-z]{8})",
            &kw(&["search"]),
        );
        assert_eq!(r.before, Some(9));
        // A literal without a keyword, or a class before it, leaves the rule's own reach.
        assert_eq!(
            Reach::of(r"(?:api|x)key=([a-z]{8})", &kw(&["apikey"])).before,
            None
        );
        assert_eq!(
            Reach::of(r"[a-z]{0,9}layer=([a-z]{8})", &keywords).before,
            None
        );
    }

    #[test]
    fn leading_branches_without_the_secret_are_exclusions() {
        let keywords = kw(&["token", "secret"]);
        let pattern =
            r"(?i)(?:next_?token\s*=|::\w*?(?:token|secret)\s*=)|(?:token|secret)\s*=\s*(\w{8})";
        assert!(!Reach::of(pattern, &keywords).anchored);
        let split = Split::of(pattern, &keywords).unwrap();
        assert_eq!(split.exclusions.properties().explicit_captures_len(), 0);
        assert_eq!(split.main.properties().explicit_captures_len(), 1);
        // The main branches start with a keyword; the exclusions do not.
        assert!(starts_with_keyword(&split.main, &keywords));
        assert!(!starts_with_keyword(&split.exclusions, &keywords));
        // An anchored regex needs no split.
        assert!(Split::of(r"token=([a-z]{8})", &keywords).is_none());
    }
}
