//! The matcher: bytes in, raw matches out.
//!
//! A shift-or filter ([`super::fdr`]) marks where a keyword may end and confirms each such place
//! against the keywords that can end there (ASCII case-insensitive), finding where rules could
//! match; only those rules' regexes run, and only in windows around the keyword hits. A
//! candidate survives when its captured secret passes the rule's entropy minimum and no allow
//! pattern (the rule's own or the global list) matches it. Nothing here knows about files.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use regex_automata::meta;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};

use super::fdr::{Filter, Occurrence};
use super::rules::{Rule, RuleSet};
use crate::error::Error;

/// Windows are widened to the end of their line when it ends within this many extra bytes.
const LINE_SLACK: usize = 256;

/// A rule's match in a buffer. Offsets are byte offsets into the scanned buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMatch {
    /// Index of the rule in the engine's rule set.
    pub rule: usize,
    /// Start of the whole match.
    pub match_start: usize,
    /// End of the whole match.
    pub match_end: usize,
    /// Start of the secret (capture group 1).
    pub start: usize,
    /// End of the secret.
    pub end: usize,
}

/// Compiled rules plus the keyword prefilter.
#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    /// Finds every keyword of every rule.
    filter: Filter,
    /// For each of the filter's keywords, the rules that list it, each with the keyword's index
    /// in its list.
    rules_of_keyword: Vec<Vec<(usize, usize)>>,
    /// Tells this engine's [`Scratch`] from another's.
    id: u64,
    /// The longest keyword, in bytes.
    max_keyword: usize,
}

/// Window slots a rule's list keeps between buffers.
const KEPT_WINDOWS: usize = 1024;

/// Windows of rules searched at their hits (which never merge) held before those that no later
/// hit can precede are searched and let go: a buffer dense with keywords holds a few of them at
/// a time, not one per hit of the whole buffer.
const FLUSH_WINDOWS: usize = 1 << 16;

/// A buffer's keywords are found a segment at a time, so a buffer dense with keywords holds the
/// occurrences of one segment at once, not of the whole buffer.
const SEGMENT: usize = 4 << 20;

/// Numbers engines.
static ENGINES: AtomicU64 = AtomicU64::new(1);

/// What a thread keeps between buffers for the engine it last ran: each rule's search cache
/// and capture slots (regex-automata would otherwise take a cache from the regex's shared pool
/// and put it back at every search), and the windows of the buffer being searched, by rule.
struct Scratch {
    engine: u64,
    searchers: Vec<Option<Searcher>>,
    windows: Vec<Vec<(usize, usize)>>,
    /// Per rule with windows in the buffer being searched, where its last match ended: a rule
    /// searched at its hits skips those inside it, across the flushes of a dense buffer.
    done: Vec<Option<usize>>,
    /// The rules with windows.
    touched: Vec<usize>,
}

/// What a thread keeps to run one rule: the search cache and capture slots of the regex it
/// searches with, and the cache of its exclusions when it is split.
struct Searcher {
    cache: meta::Cache,
    caps: Captures,
    exclusions: Option<meta::Cache>,
}

impl Searcher {
    fn new(rule: &Rule) -> Searcher {
        let re = rule.searched();
        Searcher {
            cache: re.create_cache(),
            caps: re.create_captures(),
            exclusions: rule.split().map(|s| s.exclusions.create_cache()),
        }
    }
}

/// How far past a keyword hit the exclusions of a split rule are looked for.
const EXCLUSION_REACH: usize = 128;

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            engine: 0,
            searchers: Vec::new(),
            windows: Vec::new(),
            done: Vec::new(),
            touched: Vec::new(),
        })
    };
}

impl Engine {
    /// Compile the prefilter for a rule set.
    pub fn new(rules: RuleSet) -> Result<Engine, Error> {
        let mut keywords: Vec<String> = Vec::new();
        let mut rules_of_keyword: Vec<Vec<(usize, usize)>> = Vec::new();
        for (ri, rule) in rules.rules.iter().enumerate() {
            for (ki, k) in rule.keywords.iter().enumerate() {
                match keywords.iter().position(|x| x == k) {
                    Some(pi) => rules_of_keyword[pi].push((ri, ki)),
                    None => {
                        keywords.push(k.clone());
                        rules_of_keyword.push(vec![(ri, ki)]);
                    }
                }
            }
        }
        let filter = Filter::new(&keywords)
            .ok_or_else(|| Error::Usage("a rule has an empty keyword".to_string()))?;
        Ok(Engine {
            rules,
            filter,
            rules_of_keyword,
            id: ENGINES.fetch_add(1, Ordering::Relaxed),
            max_keyword: keywords.iter().map(String::len).max().unwrap_or(0),
        })
    }

    /// The rules, indexed as in [`RawMatch::rule`].
    pub fn rules(&self) -> &[Rule] {
        &self.rules.rules
    }

    /// Every surviving match in `buf`, ordered by position, duplicates removed: one secret is
    /// reported once, by a provider rule over a generic one and by the rule loaded first among
    /// provider rules.
    pub fn find(&self, buf: &[u8]) -> Vec<RawMatch> {
        let mut out = self.find_each(buf, false);
        self.drop_shadows(&mut out);
        out
    }

    /// [`Engine::find`] with only the rules whose secret carries its own keyword (`ghp_…`,
    /// `AKIA…`): what a binary file is searched for. The other rules' regexes never run.
    ///
    /// Only the buffer's runs of text ([`text_spans`]) are searched for keywords: a token is
    /// text, and most of a binary file is not.
    pub fn find_self_identifying(&self, buf: &[u8]) -> Vec<RawMatch> {
        let batches = text_spans(buf)
            .into_iter()
            .flat_map(|(lo, hi)| self.occurrences_in(buf, lo, hi));
        let mut out = self.matches_at(buf, batches, true);
        self.drop_shadows(&mut out);
        out
    }

    /// Every rule's surviving matches in `buf`, ordered by position, including a secret that
    /// more than one rule finds (what `rules check` judges each rule by).
    fn find_each(&self, buf: &[u8], self_identifying_only: bool) -> Vec<RawMatch> {
        self.matches_at(
            buf,
            self.occurrences_in(buf, 0, buf.len()),
            self_identifying_only,
        )
    }

    /// Every keyword occurrence in `buf[lo..hi]`, one batch per [`SEGMENT`]. Segment k reports
    /// the keywords ending after its start; it is read from the longest keyword's length before
    /// that start, so they lie whole in what it reads.
    fn occurrences_in<'b>(
        &'b self,
        buf: &'b [u8],
        lo: usize,
        hi: usize,
    ) -> impl Iterator<Item = Vec<Occurrence>> + 'b {
        let back = self.max_keyword.saturating_sub(1);
        (lo..hi.max(lo + 1)).step_by(SEGMENT).map(move |start| {
            let from = start.saturating_sub(back).max(lo);
            let to = (start + SEGMENT).min(hi);
            let mut hits = self.filter.find(&buf[from..to]);
            hits.retain_mut(|o| {
                o.start += from;
                o.end += from;
                start == lo || o.end > start
            });
            hits
        })
    }

    /// The matches of the rules whose keywords occur at `batches` of hits.
    fn matches_at(
        &self,
        buf: &[u8],
        batches: impl IntoIterator<Item = Vec<Occurrence>>,
        self_identifying_only: bool,
    ) -> Vec<RawMatch> {
        SCRATCH.with_borrow_mut(|scratch| {
            let n = self.rules.rules.len();
            if scratch.engine != self.id {
                scratch.engine = self.id;
                scratch.searchers = std::iter::repeat_with(|| None).take(n).collect();
                scratch.windows = vec![Vec::new(); n];
                scratch.done = vec![None; n];
                scratch.touched.clear();
            }
            // Left over only when a search panicked.
            for ri in scratch.touched.drain(..) {
                scratch.windows[ri].clear();
                scratch.done[ri] = None;
            }
            let Scratch {
                searchers,
                windows,
                done,
                touched,
                ..
            } = scratch;
            let mut out = Vec::new();
            // Windows per rule, built in order of where hits start, so merging only looks at
            // the last one. Hits with one start may come in any order: their windows merge
            // alike. Across segments (and after a stretched run) a start can come late; such
            // windows are put in order before the search.
            let mut held = 0;
            for mut hits in batches {
                hits.sort_unstable_by_key(|o| o.start);
                // No later batch has a hit ending before this batch's last end, so none starts
                // more than the longest keyword before it.
                let settled = hits
                    .iter()
                    .map(|o| o.end)
                    .max()
                    .unwrap_or(0)
                    .saturating_sub(self.max_keyword);
                for hit in hits {
                    for &(ri, ki) in &self.rules_of_keyword[hit.keyword] {
                        let rule = &self.rules.rules[ri];
                        if self_identifying_only && !rule.self_identifying() {
                            continue;
                        }
                        let anchored = rule.reach().anchored;
                        // A search anchored where the bytes cannot start a match is not started.
                        if anchored && !rule.guard().admits(ki, buf, hit.start) {
                            continue;
                        }
                        if done[ri].is_none() {
                            done[ri] = Some(0);
                            touched.push(ri);
                        }
                        let span = window(rule, hit.start, hit.end, buf.len());
                        add_window(&mut windows[ri], span, anchored);
                        held += usize::from(anchored);
                    }
                }
                if held < FLUSH_WINDOWS {
                    continue;
                }
                held = 0;
                for &ri in touched.iter() {
                    let rule = &self.rules.rules[ri];
                    if !rule.reach().anchored {
                        continue;
                    }
                    let w = &mut windows[ri];
                    in_order(w, true);
                    let cut = w.partition_point(|x| x.0 < settled);
                    let searcher = searchers[ri].get_or_insert_with(|| Searcher::new(rule));
                    let done = done[ri].as_mut().expect("a touched rule");
                    self.search_at_hits(ri, &w[..cut], buf, searcher, done, &mut out);
                    w.drain(..cut);
                    held += w.len();
                }
            }
            touched.sort_unstable();
            for &ri in touched.iter() {
                in_order(&mut windows[ri], self.rules.rules[ri].reach().anchored);
            }
            for &ri in touched.iter() {
                let ws = &windows[ri];
                let rule = &self.rules.rules[ri];
                let searcher = searchers[ri].get_or_insert_with(|| Searcher::new(rule));
                if rule.reach().anchored {
                    let done = done[ri].as_mut().expect("a touched rule");
                    self.search_at_hits(ri, ws, buf, searcher, done, &mut out);
                    continue;
                }
                let (re, Searcher { cache, caps, .. }) = (rule.searched(), searcher);
                // Each search sees the bytes before its start: `\b` and `^` there mean what
                // they mean in the whole buffer.
                for (lo, hi) in merged_line_ends(buf, ws) {
                    let mut at = lo;
                    while at <= hi {
                        let input = Input::new(&buf[..hi]).span(at..hi);
                        re.search_captures_with(cache, &input, caps);
                        let Some(m) = caps.get_match() else { break };
                        at = if m.end() > m.start() {
                            m.end()
                        } else {
                            m.end() + 1
                        };
                        self.keep(&mut out, ri, buf, caps);
                    }
                }
            }
            for ri in touched.drain(..) {
                windows[ri].clear();
                // A buffer dense with keywords leaves no large list behind for the thread.
                windows[ri].shrink_to(KEPT_WINDOWS);
                done[ri] = None;
            }
            out.sort_by_key(|m| (m.start, m.end, m.rule));
            out.dedup_by(|a, b| a.rule == b.rule && a.start == b.start && a.end == b.end);
            out
        })
    }

    /// Search rule `ri`, whose matches start at its keywords, anchored at the starts of its
    /// windows `ws` (in order), skipping starts inside its last match (`done`, as the
    /// unanchored search resumes past a match). Each search sees the bytes before its start:
    /// `\b` and `^` there mean what they mean in the whole buffer.
    fn search_at_hits(
        &self,
        ri: usize,
        ws: &[(usize, usize)],
        buf: &[u8],
        searcher: &mut Searcher,
        done: &mut usize,
        out: &mut Vec<RawMatch>,
    ) {
        let rule = &self.rules.rules[ri];
        let split = rule.split();
        let re = rule.searched();
        let Searcher {
            cache,
            caps,
            exclusions,
        } = searcher;
        for &(start, hi) in ws {
            if start < *done {
                continue;
            }
            let hi = line_end(buf, hi);
            let input = Input::new(&buf[..hi])
                .span(start..hi)
                .anchored(Anchored::Yes);
            // Most hits start no match: the match's end alone is found first, which costs less
            // than a search for its groups.
            if re.search_half_with(cache, &input).is_none() {
                continue;
            }
            re.search_captures_with(cache, &input, caps);
            let Some(m) = caps.get_match() else { continue };
            // A match of a split rule's main branches stands unless an exclusion swallows its
            // start (looked for only then: most hits match nothing).
            if let (Some(split), Some(ex_cache)) = (split, exclusions.as_mut()) {
                let from = start.saturating_sub(rule.reach_before).max(*done);
                if let Some(end) = exclusion_over(&split.exclusions, ex_cache, buf, from, start) {
                    *done = end;
                    continue;
                }
            }
            *done = m.end().max(start + 1);
            self.keep(out, ri, buf, caps);
        }
    }

    /// Keep a match of rule `ri` when its secret (group 1) passes the rule's checks.
    fn keep(&self, out: &mut Vec<RawMatch>, ri: usize, buf: &[u8], caps: &Captures) {
        let (Some(m), Some(g)) = (caps.get_match(), caps.get_group(1)) else {
            return;
        };
        if self.accepts(&self.rules.rules[ri], &buf[g.range()]) {
            out.push(RawMatch {
                rule: ri,
                match_start: m.start(),
                match_end: m.end(),
                start: g.start,
                end: g.end,
            });
        }
    }

    /// A secret found by a provider rule is reported once, by that rule: matches of `generic`
    /// rules whose secret overlaps a specific rule's secret are dropped.
    fn drop_shadows(&self, out: &mut Vec<RawMatch>) {
        if out.len() < 2 {
            return;
        }
        let generic = |m: &RawMatch| self.rules.rules[m.rule].is_generic();
        // The same secret found by two provider rules (a service's token read in two spellings
        // of its assignment): the rule loaded first names it. `out` is sorted by start,
        // end, then rule, so the first of equal spans is kept.
        out.dedup_by(|later, kept| {
            later.start == kept.start && later.end == kept.end && !generic(later) && !generic(kept)
        });
        if !out.iter().any(generic) {
            return;
        }
        let specific: Vec<(usize, usize)> = out
            .iter()
            .filter(|m| !generic(m))
            .map(|m| (m.start, m.end))
            .collect();
        out.retain(|m| !generic(m) || !specific.iter().any(|&(s, e)| m.start < e && s < m.end));
    }

    /// Whether a captured secret passes the rule's entropy and allow checks.
    fn accepts(&self, rule: &Rule, secret: &[u8]) -> bool {
        if secret.is_empty() {
            return false;
        }
        if let Some(min) = rule.entropy
            && shannon_entropy(secret) < min
        {
            return false;
        }
        let placeholders: &[regex::bytes::Regex] = if self.rules.placeholders_apply(rule) {
            &self.rules.placeholder_allow
        } else {
            &[]
        };
        !rule.allow.iter().any(|a| a.get().is_match(secret))
            && !self
                .rules
                .global_allow
                .iter()
                .chain(placeholders)
                .any(|a| a.is_match(secret))
    }
}

/// Where a rule's match around a keyword hit (`start..end`) can lie: no further before it than
/// the rule's reach before, its longest match, or the literal its matches start with allows
/// (none when matches start at their keyword), and no further past it than its span or its
/// longest match allows.
fn window(rule: &Rule, start: usize, end: usize, len: usize) -> (usize, usize) {
    let reach = rule.reach();
    let longest = reach.max_len.unwrap_or(usize::MAX);
    let lo = if reach.anchored {
        start
    } else {
        let before = reach.before.unwrap_or(usize::MAX);
        start.saturating_sub(rule.reach_before.min(longest).min(before))
    };
    let hi = end.saturating_add(rule.max_span.min(longest)).min(len);
    (lo, hi)
}

/// The shortest run of text bytes a binary buffer is searched in.
const MIN_RUN: usize = 8;
// `text_spans` finds runs of MIN_RUN by and-ing shifts of 1, 2 and 4.
const _: () = assert!(MIN_RUN == 8);

/// Blocks (64 bytes) without such a run that still join the spans either side: a search costs
/// more to start than the bytes between.
const GAP_BLOCKS: usize = 1;

/// The spans of a binary buffer worth searching for tokens: they hold every run of at least
/// [`MIN_RUN`] text bytes (printable ASCII, tab, line ends, form feed), as `strings` finds them,
/// and little else. A token is text; a keyword in a shorter run cannot start one.
///
/// Found a 64-byte block at a time and without a branch per run: a block is kept when a run of
/// `MIN_RUN` starts in it (its text bits and-ed with themselves shifted by 1, 2 and 4, reading on
/// into the next block), and a span runs from its first kept block to the end of its last, plus
/// the `MIN_RUN - 1` bytes a run started there reaches into the next block.
fn text_spans(buf: &[u8]) -> Vec<(usize, usize)> {
    let blocks = buf.len().div_ceil(64);
    let mask = |k: usize| {
        if k < blocks {
            super::masks::mask(
                &buf[64 * k..(64 * k + 64).min(buf.len())],
                &super::masks::TEXT,
            )
        } else {
            0
        }
    };
    let end_of = |k: usize| (64 * k + 64 + MIN_RUN - 1).min(buf.len());
    let mut spans: Vec<(usize, usize)> = Vec::new();
    // The first and last kept blocks of the open span.
    let mut open: Option<(usize, usize)> = None;
    let mut cur = mask(0);
    for k in 0..blocks {
        let next = mask(k + 1);
        let bits = u128::from(cur) | (u128::from(next) << 64);
        let two = bits & (bits >> 1);
        let four = two & (two >> 2);
        let eight = four & (four >> 4);
        if eight as u64 != 0 {
            open = match open {
                Some((first, last)) if k - last <= GAP_BLOCKS + 1 => Some((first, k)),
                Some((first, last)) => {
                    spans.push((64 * first, end_of(last)));
                    Some((k, k))
                }
                None => Some((k, k)),
            };
        }
        cur = next;
    }
    if let Some((first, last)) = open {
        spans.push((64 * first, end_of(last)));
    }
    spans
}

/// Where a split rule's exclusion that covers a keyword hit at `start` ends, when one does: a
/// match of `exclusions` starting from `from` up to `start` and reaching past `start` (or
/// starting at it: there the exclusions come first). Exclusions that end before the hit are
/// passed over, as the whole regex's search resumes after them.
fn exclusion_over(
    exclusions: &meta::Regex,
    cache: &mut meta::Cache,
    buf: &[u8],
    from: usize,
    start: usize,
) -> Option<usize> {
    let to = start.saturating_add(EXCLUSION_REACH).min(buf.len());
    let mut at = from;
    while at <= start {
        let m = exclusions.search_with(cache, &Input::new(buf).span(at..to))?;
        if m.start() > start {
            return None;
        }
        if m.end() > start || m.start() == start {
            return Some(m.end().max(start + 1));
        }
        at = m.end().max(m.start() + 1);
    }
    None
}

/// A window's end stretched to the end of its line when it is near: a value running to the end
/// of its line is read whole.
fn line_end(buf: &[u8], hi: usize) -> usize {
    let ceil = (hi + LINE_SLACK).min(buf.len());
    match memchr::memchr(b'\n', &buf[hi..ceil]) {
        Some(i) => hi + i,
        None if ceil == buf.len() => ceil,
        None => hi,
    }
}

/// Windows stretched to the end of their line ([`line_end`]), then merged again where that made
/// them overlap.
fn merged_line_ends(buf: &[u8], ws: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(ws.len());
    for &(lo, hi) in ws {
        add_window(&mut out, (lo, line_end(buf, hi)), false);
    }
    out
}

/// Put a rule's windows in order of their starts, merged again, when a late start left them out
/// of order.
fn in_order(w: &mut Vec<(usize, usize)>, anchored: bool) {
    if !w.is_sorted_by_key(|x| x.0) {
        let mut spans = std::mem::take(w);
        spans.sort_unstable();
        for span in spans {
            add_window(w, span, anchored);
        }
    }
}

/// Add a window to a rule's list, whose last window starts no later: a rule whose matches start
/// at a keyword keeps each hit's start (it is searched anchored there); other rules' windows
/// merge where they touch.
fn add_window(w: &mut Vec<(usize, usize)>, (lo, hi): (usize, usize), anchored: bool) {
    match w.last_mut() {
        Some(last) if lo == last.0 || (!anchored && lo <= last.1) => last.1 = last.1.max(hi),
        _ => w.push((lo, hi)),
    }
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

impl Engine {
    /// Run every rule's examples and negative examples through the full engine (prefilter
    /// included). Returns one message per failure, naming the rule and its file.
    pub fn check_examples(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (ri, rule) in self.rules.rules.iter().enumerate() {
            // Rules compiled when first used are compiled here, before anything runs them.
            if let Err(e) = rule.check_compiles() {
                problems.push(format!("{}: rule `{}`: {e}", rule.origin, rule.id));
                continue;
            }
            for ex in &rule.examples {
                if !self
                    .find_each(ex.as_bytes(), false)
                    .iter()
                    .any(|m| m.rule == ri)
                {
                    problems.push(format!(
                        "{}: rule `{}`: example does not match (check the regex, keywords, entropy and allow lists): {}",
                        rule.origin,
                        rule.id,
                        preview(ex)
                    ));
                }
            }
            for ex in &rule.negative_examples {
                if self
                    .find_each(ex.as_bytes(), false)
                    .iter()
                    .any(|m| m.rule == ri)
                {
                    problems.push(format!(
                        "{}: rule `{}`: negative example matches: {}",
                        rule.origin,
                        rule.id,
                        preview(ex)
                    ));
                }
            }
        }
        problems
    }
}

fn preview(s: &str) -> String {
    let one: String = s.chars().map(|c| if c == '\n' { '⏎' } else { c }).collect();
    if one.chars().count() > 100 {
        format!("{}…", one.chars().take(100).collect::<String>())
    } else {
        one
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(toml: &str) -> Engine {
        let mut set = RuleSet::default();
        set.add_source("test.toml", toml).unwrap();
        Engine::new(set).unwrap()
    }

    /// A keyword of one repeated letter against long runs of it: the same matches as the
    /// rule's regex over the whole buffer, and a run of 4 MB is one window, not a search per byte.
    #[test]
    fn runs_of_a_repeated_keyword_letter() {
        // Built at run time so the repository holds no token-shaped literal.
        let token = format!(
            "{}yKRxL9EVLE7T5Ki4Gpq3AQSZaMA6hlTWqPBJ4hsVeLFljRfFb8yKfGXTr61KskEj6NOD2FQow49u2n4Nq",
            "A".repeat(22)
        );
        let e = engine(&format!(
            r#"
version = 1
[[rules]]
id = "bearer"
description = "a bearer token"
regex = '\b(A{{22}}[A-Za-z0-9%]{{80,120}})\b'
keywords = ["aaaaaaaaaaaaaaaaaaaaaa"]
severity = "high"
examples = ["{token}"]
negative_examples = ["{}"]
"#,
            "A".repeat(22)
        ));
        let regex = regex::bytes::Regex::new(r"\b(A{22}[A-Za-z0-9%]{80,120})\b").unwrap();
        for buf in [
            format!("{}\nT={token}\n", "a".repeat(100_000)),
            format!("{}{token} {}", "A".repeat(300), "A".repeat(30)),
            format!("x {token} {} {token}", "aA".repeat(5000)),
            "A".repeat(4 << 20),
        ] {
            let want: Vec<(usize, usize)> = regex
                .captures_iter(buf.as_bytes())
                .map(|c| (c.get(1).unwrap().start(), c.get(1).unwrap().end()))
                .collect();
            let got: Vec<(usize, usize)> = e
                .find(buf.as_bytes())
                .iter()
                .map(|m| (m.start, m.end))
                .collect();
            assert_eq!(got, want);
        }
    }

    /// Two provider rules finding the same secret report it once, by the rule loaded first; each
    /// still finds it for `rules check`.
    #[test]
    fn one_secret_two_provider_rules_one_report() {
        let e = engine(
            r#"
version = 1
[[rules]]
id = "acme-bare"
description = "an acme token"
regex = '\b(acme_[a-z0-9]{12})\b'
keywords = ["acme_"]
severity = "high"
tags = ["saas", "acme"]
examples = ["acme_q8w7e6r5t4y3"]
negative_examples = ["acme_short"]
[[rules]]
id = "acme-assigned"
description = "an acme token assigned"
regex = 'acme_token\s*=\s*(acme_[a-z0-9]{12})\b'
keywords = ["acme_token"]
severity = "high"
tags = ["saas", "acme"]
examples = ["acme_token = acme_q8w7e6r5t4y3"]
negative_examples = ["acme_token = x"]
"#,
        );
        let buf = b"acme_token = acme_z1x2c3v4b5n6\n";
        let found = e.find(buf);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(e.rules()[found[0].rule].id, "acme-bare");
        let each: Vec<&str> = e
            .find_each(buf, false)
            .iter()
            .map(|m| e.rules()[m.rule].id.as_str())
            .collect();
        assert_eq!(each, vec!["acme-bare", "acme-assigned"]);
        assert!(e.check_examples().is_empty(), "{:?}", e.check_examples());
    }

    /// `reach_before` bounds how far before its keyword a match may start, and a regex whose
    /// matches start at the keyword is searched there, `\b` seeing the byte before.
    #[test]
    fn reach_before_and_anchored_starts() {
        let rules = |reach: usize| {
            format!(
                r#"
version = 1
[[rules]]
id = "pair"
description = "a name then its key"
regex = 'name=[a-z]{{1,100}} key=([a-z0-9]{{10}})'
keywords = [" key="]
reach_before = {reach}
severity = "high"
examples = ["name=ab key=q8w7e6r5t4"]
negative_examples = ["name= key=q8w7e6r5t4"]
[[rules]]
id = "tok"
description = "a token"
regex = '\b(tok_[a-z0-9]{{8}})\b'
keywords = ["tok_"]
severity = "high"
examples = ["tok_q8w7e6r5"]
negative_examples = ["xtok_q8w7e6r5"]
"#
            )
        };
        let buf = format!("name={} key=q8w7e6r5t4\n", "a".repeat(60));
        assert_eq!(engine(&rules(80)).find(buf.as_bytes()).len(), 1);
        assert!(engine(&rules(20)).find(buf.as_bytes()).is_empty());
        let e = engine(&rules(80));
        assert!(e.rules()[1].reach().anchored);
        // A keyword inside a word: the anchored search sees the `x` before it.
        assert!(e.find(b"xtok_q8w7e6r5 ").is_empty());
        assert_eq!(e.find(b"(tok_q8w7e6r5)").len(), 1);
    }

    /// Placeholder shapes hide a secret only for the categories they are limited to.
    #[test]
    fn placeholder_categories_limit_the_placeholder_shapes() {
        let e = engine(
            r#"
version = 1
[allow]
placeholders = ['12345678']
placeholder_categories = ["generic"]
[[rules]]
id = "any-key"
description = "a key"
regex = 'key=([a-z0-9]{16})'
keywords = ["key="]
severity = "high"
tags = ["generic"]
examples = ["key=q8w7e6r5t4y3u2i1"]
negative_examples = ["key=short"]
[[rules]]
id = "acme-key"
description = "an acme key"
regex = 'acme=([a-z0-9]{16})'
keywords = ["acme="]
severity = "high"
tags = ["saas", "acme"]
examples = ["acme=q8w7e6r5t4y3u2i1"]
negative_examples = ["acme=short"]
"#,
        );
        assert!(e.find(b"key=12345678abcdefgh\n").is_empty());
        let found = e.find(b"acme=12345678abcdefgh\n");
        assert_eq!(found.len(), 1);
        assert_eq!(e.rules()[found[0].rule].id, "acme-key");
    }

    const ONE: &str = r#"
version = 1
[allow]
regexes = ['(?i)example']
[[rules]]
id = "tok"
description = "a token"
regex = '\b(tok_[a-z0-9]{8})\b'
keywords = ["tok_"]
entropy = 2.0
severity = "high"
examples = ["tok_a1b2c3d4"]
negative_examples = ["tok_aaaaaaaa"]
"#;

    #[test]
    fn finds_only_near_keywords_and_applies_entropy_and_allow() {
        let e = engine(ONE);
        let buf = b"x = TOK_a1b2c3d4 nope\ny = tok_a1b2c3d4\nz = tok_aaaaaaaa w = tok_examplex";
        let found = e.find(buf);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(&buf[found[0].start..found[0].end], b"tok_a1b2c3d4");
    }

    #[test]
    fn no_keyword_no_regex() {
        let e = engine(ONE);
        assert!(e.find(b"nothing here at all").is_empty());
    }

    #[test]
    fn overlapping_and_nested_keywords_all_count() {
        let toml = r#"
version = 1
[[rules]]
id = "short"
description = "s"
regex = '(sec_[0-9]{4})'
keywords = ["sec_"]
severity = "low"
examples = ["sec_1234"]
negative_examples = ["sec_12"]
[[rules]]
id = "long"
description = "l"
regex = 'xsec_(k[0-9]{4})'
keywords = ["xsec_k"]
severity = "low"
examples = ["xsec_k1234"]
negative_examples = ["xsec_k12"]
[[rules]]
id = "overlap"
description = "o"
regex = '(c_k[0-9]{4})'
keywords = ["c_k"]
severity = "low"
examples = ["c_k1234"]
negative_examples = ["c_k12"]
"#;
        let e = engine(toml);
        let ids: Vec<&str> = e
            .find(b"xsec_k1234 sec_5678")
            .iter()
            .map(|m| e.rules()[m.rule].id.as_str())
            .collect();
        assert_eq!(ids, ["overlap", "long", "short"]);
    }

    #[test]
    fn overlapping_windows_report_once() {
        let e = engine(ONE);
        let buf = b"tok_a1b2c3d4 tok_a1b2c3d5 tok_a1b2c3d6";
        assert_eq!(e.find(buf).len(), 3);
    }

    #[test]
    fn invalid_utf8_is_fine() {
        let e = engine(ONE);
        let mut buf = vec![0xff, 0xfe, b' '];
        buf.extend_from_slice(b"tok_z9y8x7w6 \xc3");
        assert_eq!(e.find(&buf).len(), 1);
    }

    #[test]
    fn provider_rules_shadow_generic_ones_on_the_same_secret() {
        let e = engine(&format!(
            "{ONE}{}",
            r#"
[[rules]]
id = "generic"
description = "generic"
regex = '(?i)token\s*=\s*(\S{8,})'
keywords = ["token"]
severity = "medium"
tags = ["generic"]
examples = ["token = zz9x8c7v6b"]
negative_examples = ["token = a"]
"#
        ));
        let found = e.find(b"token = tok_a1b2c3d4\nother_token = zz9x8c7v6b\n");
        let ids: Vec<&str> = found
            .iter()
            .map(|m| e.rules()[m.rule].id.as_str())
            .collect();
        assert_eq!(ids, ["tok", "generic"]);
    }

    /// Every occurrence of every rule keyword of `e` in `buf`, by an automaton over the whole
    /// buffer: what the segmented filter must find.
    fn every_occurrence(e: &Engine, buf: &[u8]) -> Vec<Occurrence> {
        let mut keywords: Vec<&str> = Vec::new();
        for rule in e.rules() {
            for k in &rule.keywords {
                if !keywords.contains(&k.as_str()) {
                    keywords.push(k);
                }
            }
        }
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&keywords)
            .unwrap()
            .find_overlapping_iter(buf)
            .map(|m| Occurrence {
                keyword: m.pattern().as_usize(),
                start: m.start(),
                end: m.end(),
            })
            .collect()
    }

    #[test]
    fn the_shift_or_filter_changes_no_match_of_the_builtin_rules() {
        // Every example and negative example of the built-in rules, in varied case, between
        // lines of ordinary code: the filtered engine finds exactly what it finds from every
        // keyword occurrence an automaton lists over the whole buffer.
        let filtered = Engine::new(RuleSet::builtin().unwrap()).unwrap();
        let mut buf = String::new();
        for (i, rule) in filtered.rules().iter().enumerate() {
            for ex in rule.examples.iter().chain(&rule.negative_examples) {
                buf.push_str("let value = compute(input, 42); // ordinary code\n");
                let ex = if i % 3 == 0 {
                    ex.to_uppercase()
                } else {
                    ex.clone()
                };
                buf.push_str(&ex);
                buf.push(if i % 2 == 0 { '\n' } else { ' ' });
            }
        }
        let every = every_occurrence(&filtered, buf.as_bytes());
        let mut b = filtered.matches_at(buf.as_bytes(), [every], false);
        filtered.drop_shadows(&mut b);
        let a = filtered.find(buf.as_bytes());
        assert!(a.len() > 100, "{}", a.len());
        assert_eq!(a, b);
    }

    #[test]
    fn guards_admit_every_match_start_and_turn_words_away() {
        // At every occurrence of a keyword in the examples and negative examples of each
        // built-in rule searched at its hits (as written, in upper case, and between words), a
        // search anchored there that matches must be one the guard lets start.
        let e = Engine::new(RuleSet::builtin().unwrap()).unwrap();
        let mut checked = 0;
        for rule in e.rules().iter().filter(|r| r.reach().anchored) {
            let re = rule.searched();
            for ex in rule.examples.iter().chain(&rule.negative_examples) {
                for text in [ex.clone(), ex.to_uppercase(), format!("x {ex} y")] {
                    let buf = text.as_bytes();
                    let lower = buf.to_ascii_lowercase();
                    for (ki, k) in rule.keywords.iter().enumerate() {
                        for at in 0..buf.len() {
                            if !lower[at..].starts_with(k.as_bytes()) {
                                continue;
                            }
                            let input = Input::new(buf).span(at..buf.len()).anchored(Anchored::Yes);
                            if re.search_half(&input).is_some() {
                                assert!(
                                    rule.guard().admits(ki, buf, at),
                                    "{} turns away {text:?} at {at} ({k})",
                                    rule.id
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 500, "{checked}");
        let rule = |id: &str| e.rules().iter().find(|r| r.id == id).unwrap();
        let keyword = |id: &str, k: &str| rule(id).keywords.iter().position(|x| x == k).unwrap();
        let pat = keyword("airtable-personal-access-token", "pat");
        let airtable = rule("airtable-personal-access-token").guard();
        assert!(!airtable.admits(pat, b"pattern = compile(x)", 0));
        assert!(!airtable.admits(pat, b"pat", 0), "too short to match");
        let token = keyword("generic-secret-quoted", "token");
        let generic = rule("generic-secret-quoted").guard();
        for word in ["tokens = []", "token)", "tokenizer", "token, x"] {
            assert!(!generic.admits(token, word.as_bytes(), 0), "{word}");
        }
        assert!(generic.admits(token, b"token = \"abcdefgh1234\"", 0));
        assert!(generic.admits(token, b"TOKEN: 'abcdefgh1234'", 0));
    }

    #[test]
    fn split_rules_find_what_their_whole_regex_finds() {
        // Each built-in rule whose regex opens with exclusions is searched at its hits, with the
        // exclusions looked for around them. On its examples and negative examples, alone and
        // behind the prefixes its exclusions name, it must find what its whole regex finds
        // searched leftmost-first over the buffer.
        let e = Engine::new(RuleSet::builtin().unwrap()).unwrap();
        let split: Vec<usize> = (0..e.rules().len())
            .filter(|&ri| e.rules()[ri].split().is_some())
            .collect();
        assert!(split.len() >= 3, "{split:?}");
        let prefixes = ["", "next_", "Config::", "pagination-", "x", "::", "input."];
        let mut compared = 0;
        for &ri in &split {
            let rule = &e.rules()[ri];
            let mut buf = String::new();
            for ex in rule.examples.iter().chain(&rule.negative_examples) {
                for p in prefixes {
                    buf.push_str("let value = compute(input, 42);\n");
                    buf.push_str(p);
                    buf.push_str(ex);
                    buf.push('\n');
                }
            }
            let buf = buf.as_bytes();
            let re = rule.regex.get();
            let mut caps = re.create_captures();
            let mut whole = Vec::new();
            let mut at = 0;
            while at <= buf.len() {
                re.search_captures(&Input::new(buf).span(at..buf.len()), &mut caps);
                let Some(m) = caps.get_match() else { break };
                at = m.end().max(m.start() + 1);
                e.keep(&mut whole, ri, buf, &caps);
            }
            let found: Vec<RawMatch> = e
                .find_each(buf, false)
                .into_iter()
                .filter(|m| m.rule == ri)
                .collect();
            assert_eq!(found, whole, "rule {}", rule.id);
            compared += found.len();
        }
        assert!(compared > 10, "{compared}");
    }

    #[test]
    fn text_spans_hold_every_run_of_text_and_little_else() {
        fn is_text(b: u8) -> bool {
            matches!(b, 0x09..=0x0D | 0x20..=0x7E)
        }
        fn runs(buf: &[u8]) -> Vec<(usize, usize)> {
            let mut runs = Vec::new();
            let mut i = 0;
            while i < buf.len() {
                if is_text(buf[i]) {
                    let lo = i;
                    while i < buf.len() && is_text(buf[i]) {
                        i += 1;
                    }
                    runs.push((lo, i));
                } else {
                    i += 1;
                }
            }
            runs.retain(|(lo, hi)| hi - lo >= MIN_RUN);
            runs
        }
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for len in (0..300).chain([4095, 4096, 4097, 70_000]) {
            // Mostly text, or mostly binary, in runs of varied length.
            let text_share = [2u64, 50, 98][len % 3];
            let mut buf = Vec::with_capacity(len);
            while buf.len() < len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let run = (seed >> 8) as usize % 40 + 1;
                let text = seed % 100 < text_share;
                for k in 0..run.min(len - buf.len()) {
                    let r = (seed >> (k % 48)) as u8;
                    buf.push(if text {
                        b' ' + r % 95
                    } else {
                        [0, 0x80, 0xFF, 0x1B, r][k % 5]
                    });
                }
            }
            let spans = text_spans(&buf);
            let runs = runs(&buf);
            // Ordered, apart, inside the buffer.
            assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "length {len}");
            assert!(spans.iter().all(|&(lo, hi)| lo < hi && hi <= len));
            // Every run inside a span, and every span around a run.
            for &(lo, hi) in &runs {
                assert!(
                    spans.iter().any(|&(a, b)| a <= lo && hi <= b),
                    "length {len}: run {lo}..{hi} outside {spans:?}"
                );
            }
            for &(a, b) in &spans {
                assert!(runs.iter().any(|&(lo, hi)| a <= lo && hi <= b));
            }
        }
        assert_eq!(text_spans(&[0u8; 1000]), []);
        assert_eq!(text_spans(&[b'a'; 1000]), [(0, 1000)]);
        assert_eq!(text_spans(b"abcdefg"), []);
        assert_eq!(text_spans(b"abcdefgh"), [(0, 8)]);
    }

    #[test]
    fn binary_buffers_are_searched_in_their_text() {
        // A token between binary bytes, at the very start and at the very end of the buffer,
        // and one in a run of text too short to be searched (it cannot be a token).
        let e = engine(ONE);
        let token = b"tok_a1b2c3d4"; // sluice:allow
        let mut buf = token.to_vec();
        let mut at = vec![0];
        buf.extend_from_slice(&[0, 0xFF, 1, 2, 0x80].repeat(100));
        buf.push(0);
        at.push(buf.len());
        buf.extend_from_slice(token);
        buf.extend_from_slice(&[0u8; 500]);
        buf.extend_from_slice(b"\0tok_a1\0");
        buf.extend_from_slice(&[7u8; 300]);
        at.push(buf.len());
        buf.extend_from_slice(token);
        let found = e.find_self_identifying(&buf);
        let starts: Vec<usize> = found.iter().map(|m| m.start).collect();
        assert_eq!(starts, at);
        assert_eq!(found, e.find(&buf));
    }

    #[test]
    fn a_buffer_dense_with_hits_is_searched_in_flushes_and_finds_the_same() {
        // 16 MB of `token ` (a hit of several rules searched at their hits every 6 bytes, so
        // their windows are searched and let go many times on the way), with assignments
        // planted on lines of their own, some right at segment ends: each is found as it is
        // found alone, and nothing else is.
        let e = Engine::new(RuleSet::builtin().unwrap()).unwrap();
        let lines = [
            "API_TOKEN = \"q7Rk2Vb9Xz4Lm8Nw3Tp6\"",     // sluice:allow
            "ghp_4kP9sW2xQ7vN1mB8cR5tY3hJ6dF0gL2aZ9eX", // sluice:allow
            "secret_key: Zx8Qw2Er6Ty4Ui0Op3As",         // sluice:allow
        ];
        let mut buf = b"token ".repeat((16 << 20) / 6);
        let mut planted = Vec::new();
        for (k, at) in [
            1000,
            SEGMENT - 3,
            2 * SEGMENT + 1,
            3 * SEGMENT - 20,
            11 << 20,
        ]
        .into_iter()
        .enumerate()
        {
            let line = format!("\n{}\n", lines[k % lines.len()]);
            buf[at..at + line.len()].copy_from_slice(line.as_bytes());
            planted.push((at, line));
        }
        let mut expected: Vec<RawMatch> = Vec::new();
        for (at, line) in &planted {
            let alone = e.find(line.as_bytes());
            assert!(!alone.is_empty(), "{line}");
            expected.extend(alone.into_iter().map(|m| RawMatch {
                match_start: m.match_start + at,
                match_end: m.match_end + at,
                start: m.start + at,
                end: m.end + at,
                ..m
            }));
        }
        expected.sort_by_key(|m| (m.start, m.end, m.rule));
        assert_eq!(e.find(&buf), expected);
    }

    #[test]
    fn keywords_across_segment_ends_are_found_once() {
        // A buffer of three segments with secrets planted across each segment end, keywords
        // cut by it at every offset: the segmented search finds what one pass over every
        // keyword occurrence finds.
        let e = Engine::new(RuleSet::builtin().unwrap()).unwrap();
        let mut buf = Vec::with_capacity(4 * SEGMENT);
        let line = b"let value = compute(input, 42); // ordinary code\n";
        while buf.len() < 4 * SEGMENT {
            buf.extend_from_slice(line);
        }
        let token = ["gh", "p_", "Zq8w7E6r5T4y3U2i1O0pA9s8D7f6G5h4J3k2"].concat();
        // Each across its own segment end: the token's keyword cut after its first byte, the
        // password's keyword after its fourth, and a long run of `A` across the end.
        let planted = [
            (11, format!("\ntoken = \"{token}\"\n")),
            (5, "\npassword = \"Vq3x!t9Lm2#w\"\n".to_string()), // sluice:allow (a test value)
            (300, format!("\nbearer {}\n", "A".repeat(600))),
        ];
        for (k, (back, text)) in planted.iter().enumerate() {
            let start = (k + 1) * SEGMENT - back;
            buf[start..start + text.len()].copy_from_slice(text.as_bytes());
        }
        let every = every_occurrence(&e, &buf);
        // Every occurrence once, none lost at a segment end (the run of `A` is reported
        // stretched, so it is left out of this count).
        let mut seen: Vec<Occurrence> = e.occurrences_in(&buf, 0, buf.len()).flatten().collect();
        let in_run = |o: &Occurrence| {
            buf[o.start..o.end.min(buf.len())]
                .iter()
                .all(|&b| b == b'A')
        };
        seen.retain(|o| !in_run(o));
        seen.sort_by_key(|o| (o.start, o.end, o.keyword));
        let mut all = every.clone();
        all.retain(|o| !in_run(o));
        all.sort_by_key(|o| (o.start, o.end, o.keyword));
        assert_eq!(seen, all);
        let mut want = e.matches_at(&buf, [every], false);
        e.drop_shadows(&mut want);
        let got = e.find(&buf);
        assert!(got.len() >= 2, "{got:?}");
        assert_eq!(got, want);
    }

    #[test]
    fn entropy_of_uniform_and_constant() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
