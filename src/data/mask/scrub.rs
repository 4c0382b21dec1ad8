//! `scrub`: personal data found inside free text and replaced by the masked form its column
//! transform gives (an e-mail in a note masks like the e-mail column). Every detector reads the
//! original text; overlaps go to the more specific kind (an IPv4 inside an IPv6 address is part
//! of it, a surname inside a street line part of the street), then all replacements are made at
//! once. Structured kinds are checked, not just shaped: cards pass Luhn, IBANs mod-97, national
//! ids their check digits. Person names are the ones this run masks in its name columns
//! ([`KnownNames`]): a known-values scrub, case-sensitive, whole words only.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::data::mask::values::{
    Draws, FakeKind, Locale, card, email, fake_name, fake_value, iban, iban_mod97, ip, luhn_valid,
    phone, shape,
};
use crate::keyed::HmacKey as MaskKey;

/// The person names of one run: every value of the masked name columns, with how its column
/// masks it, so a name in free text masks as it does in its column.
#[derive(Debug, Default)]
pub struct KnownNames {
    /// Known text (a full value, or one word of it) → its kind, locale and domain.
    known: HashMap<String, (FakeKind, Locale, String)>,
    /// Every known text, longest first at each position.
    finder: Option<aho_corasick::AhoCorasick>,
    patterns: Vec<String>,
}

/// Which name column a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A first-name column.
    First,
    /// A last-name column.
    Last,
    /// A full-name column (its first and last words are known alone too).
    Full,
}

impl KnownNames {
    /// Collect names: each `(value, kind, locale, domain)` as its column masks it. Words of one
    /// letter are ignored (initials), and so are values with no letter.
    pub fn new<'a>(
        values: impl IntoIterator<Item = (&'a str, NameKind, Locale, &'a str)>,
    ) -> KnownNames {
        let mut known: HashMap<String, (FakeKind, Locale, String)> = HashMap::new();
        let fake = |kind, locale| (kind, locale);
        let mut add = |text: &str, (kind, locale): (FakeKind, Locale), domain: &str| {
            let text = text.trim();
            if text.chars().filter(|c| c.is_alphabetic()).count() >= 2 {
                known
                    .entry(text.to_string())
                    .or_insert_with(|| (kind, locale, domain.to_string()));
            }
        };
        for (value, kind, locale, domain) in values {
            let words: Vec<&str> = value.split_whitespace().collect();
            match kind {
                NameKind::First => add(value, fake(FakeKind::FirstName, locale), domain),
                NameKind::Last => add(value, fake(FakeKind::LastName, locale), domain),
                NameKind::Full => {
                    add(value, fake(FakeKind::FullName, locale), domain);
                    if words.len() > 1 {
                        add(words[0], fake(FakeKind::FirstName, locale), "first_name");
                        add(
                            words[words.len() - 1],
                            fake(FakeKind::LastName, locale),
                            "last_name",
                        );
                    }
                }
            }
        }
        // Title case too: `ANNA MEIER` in a column is `Anna Meier` in a sentence.
        let titled: Vec<(String, (FakeKind, Locale, String))> = known
            .iter()
            .filter_map(|(k, v)| {
                let t = title_case(k);
                (t != *k).then(|| (t, v.clone()))
            })
            .collect();
        for (k, v) in titled {
            known.entry(k).or_insert(v);
        }
        let mut patterns: Vec<String> = known.keys().cloned().collect();
        patterns.sort();
        let finder = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok();
        KnownNames {
            known,
            finder,
            patterns,
        }
    }

    /// How many distinct names (and their words) are known.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// No name is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = !c.is_alphabetic() && c != '\'';
    }
    out
}

/// One piece of found personal data: where, and what replaces it.
struct Span {
    start: usize,
    end: usize,
    rank: u8,
    masked: String,
}

/// A detector's regex. Its `\b` are ASCII word boundaries: Unicode ones keep the regex engine
/// off its fast path on non-ASCII text (ten times slower), and every detector starts and ends
/// at ASCII letters, digits or punctuation.
fn re(pattern: &str) -> Regex {
    Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).expect("static regex")
}

pub(crate) static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"));
static IBAN: LazyLock<Regex> = LazyLock::new(|| re(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b"));
static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\b[2-6](?:[ -]?[0-9]){12,18}\b"));
static SSN: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b([0-9]{3})([- ])([0-9]{2})([- ])([0-9]{4})\b"));
static NINO: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b")
});
static CODICE_FISCALE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b",
    )
});
static NIR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b[12] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b",
    )
});
static STEUER_ID: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b[1-9][0-9] ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}\b"));
static CPF: LazyLock<Regex> = LazyLock::new(|| re(r"\b[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}\b"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\b")
});
/// Digit groups, each optionally in parentheses, joined by at most one separator (or a `(0)`).
static PHONE_RUN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:\(\+?[0-9]{1,5}\)|\+?[0-9]+)(?:(?:[ .\-/]|[ ]?\(0\)[ ]?|[ ]?-[ ]?)?(?:\([0-9]{1,5}\)|[0-9]+))*",
    )
});
static STREETS: LazyLock<Vec<(Regex, Locale)>> = LazyLock::new(|| {
    vec![
        (
            re(
                r"\b[0-9]{1,5}[A-Z]?(?:\s+\p{Lu}[\p{Ll}'’]+){1,3}\s+(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Lane|Ln\.?|Drive|Dr\.?|Boulevard|Blvd\.?|Court|Ct\.?|Way|Place|Pl\.?|Terrace|Close|Crescent|Square|Parkway|Pkwy\.?|Highway|Hwy\.?|Row|Gardens|Hill|Grove|Mews|Walk)(?:\b|\.)",
            ),
            Locale::En,
        ),
        (
            re(
                r"\b(?:\p{Lu}\p{Ll}+\s+)?\p{Lu}[\p{L}-]*(?:straße|strasse|str\.|weg|gasse|allee|platz|ring|damm|ufer|chaussee|pfad|steig|markt)\s+[0-9]{1,4}\s?[a-z]?\b|\b(?:\p{Lu}\p{Ll}+\s+)(?:Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|Damm)\s+[0-9]{1,4}[a-z]?\b|\b(?:Am|An der|Im|In der|Auf dem|Auf der|Zum|Zur|Unter den)\s+\p{Lu}\p{Ll}+\s+[0-9]{1,4}[a-z]?\b",
            ),
            Locale::DeDe,
        ),
        (
            re(
                r"\b[0-9]{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|impasse|allée|chemin|quai|route|cours|square|passage)\s+(?:(?:de la|de l'|des|du|de|d'|l')\s*)?\p{Lu}[\p{L}'-]*(?:\s+(?:\p{Lu}[\p{L}'-]*|de|du|des|la|le))*",
            ),
            Locale::FrFr,
        ),
        (
            re(
                r"\b(?:Via|Viale|Piazza|Piazzale|Corso|Largo|Vicolo|Strada)\s+(?:(?:del|della|dei|delle|di|da)\s+)?\p{Lu}[\p{L}']*(?:\s+\p{Lu}[\p{L}']*){0,3},?\s*[0-9]{1,4}[A-Za-z]?\b",
            ),
            Locale::ItIt,
        ),
        (
            re(
                r"\b(?:Rua|Avenida|Av\.|Alameda|Travessa|Praça|Estrada|Rodovia)\s+(?:(?:das|dos|da|do|de)\s+)?\p{Lu}[\p{L}']*(?:\s+(?:\p{Lu}[\p{L}']*|das|dos|da|do|de)){0,4},?\s*(?:n[º°o]\.?\s*)?[0-9]{1,5}\b",
            ),
            Locale::PtBr,
        ),
    ]
});

/// An IBAN's length in its country (ISO 13616 registry); `None` for a country not listed here.
fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VG", 24),
        ("XK", 20),
    ];
    LENGTHS.iter().find(|(c, _)| *c == country).map(|(_, n)| *n)
}

/// Whether the byte before `start` and the one at `end` leave the match standing alone: no
/// letter, digit or joining punctuation (`ORD-2024-001234`, `v2.1.3`, `1Z99…`) around it.
fn alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let joins = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | '#' | '.' | '@');
    before.is_none_or(|c| !joins(c))
        && after.is_none_or(|c| {
            let decimal = c == '.' && text[end + 1..].starts_with(|d: char| d.is_ascii_digit());
            !(c.is_alphanumeric() || c == '_' || c == '-' || c == '@' || decimal)
        })
}

/// The digits of `s` as numbers (0–9).
fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// The German tax id's check digit (ISO 7064 MOD 11,10).
fn steuer_id_valid(d: &[u8]) -> bool {
    if d.len() != 11 {
        return false;
    }
    let mut product = 10u32;
    for &x in &d[..10] {
        let mut sum = (u32::from(x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == u32::from(d[10])
}

/// The French social security number's key: 97 minus the first 13 digits mod 97 (Corsica's
/// `2A`/`2B` counted as 19/18 after subtracting).
fn nir_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() != 15 {
        return false;
    }
    let (body, key) = compact.split_at(13);
    let Ok(key) = key.parse::<u64>() else {
        return false;
    };
    let n = if body.contains("2A") {
        body.replace("2A", "19")
            .parse::<u64>()
            .map(|v| v - 1_000_000)
    } else if body.contains("2B") {
        body.replace("2B", "18")
            .parse::<u64>()
            .map(|v| v - 2_000_000)
    } else {
        body.parse::<u64>()
    };
    n.is_ok_and(|n| 97 - n % 97 == key)
}

/// The Brazilian CPF's two check digits.
fn cpf_valid(d: &[u8]) -> bool {
    if d.len() != 11 || d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let check = |n: usize| {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, x)| u32::from(*x) * (n as u32 + 1 - i as u32))
            .sum();
        let r = (sum * 10) % 11;
        (if r == 10 { 0 } else { r }) as u8
    };
    check(9) == d[9] && check(10) == d[10]
}

/// A phone number: international (`+49 …`, `0049 …`, `(+49) …`) with 8–15 digits, or national
/// with a trunk `0` or an area code in parentheses (9–12 digits), or the North American and
/// Italian `3-3-4` and Brazilian `2 4/5-4` groupings.
fn phone_like(s: &str) -> bool {
    let groups: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let n: usize = groups.iter().map(|g| g.len()).sum();
    let t = s.trim_start_matches('(');
    if t.starts_with('+') {
        let n = n - usize::from(s.contains("(0)"));
        return (8..=15).contains(&n);
    }
    if let Some(rest) = s.strip_prefix("00") {
        // `0049 89 1234567`: the country code stands apart, as people write it.
        let cc = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        return !rest.starts_with('0')
            && (1..=3).contains(&cc)
            && rest[cc..].starts_with(' ')
            && (8..=15).contains(&(n - 2));
    }
    if (s.starts_with('0') || s.starts_with('(')) && (9..=12).contains(&n) {
        return s.starts_with("(0") || s.starts_with('0') || groups[0].len() <= 3;
    }
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let seps_ok = !s.contains(['/', '(']) || s.starts_with('(');
    (lens == [3, 3, 4] && seps_ok) || (lens == [2, 4, 4] || lens == [2, 5, 4]) && s.contains('-')
}

fn find_phones(text: &str, out: &mut Vec<Span>, key: &MaskKey) {
    for m in PHONE_RUN.find_iter(text) {
        // A run may carry a number after the phone (`… 1234567 2024`): try it whole, then
        // without trailing groups.
        let mut end = m.end();
        loop {
            let s = &text[m.start()..end];
            if alone(text, m.start(), end) && phone_like(s) {
                out.push(Span {
                    start: m.start(),
                    end,
                    rank: 6,
                    masked: phone(key, "phone", s),
                });
                break;
            }
            match s.rfind(|c: char| !c.is_ascii_digit() && c != ')') {
                Some(i) if i > 0 => {
                    end = m.start() + s[..i].trim_end_matches([' ', '.', '-', '/', '(']).len()
                }
                _ => break,
            }
            if end <= m.start() {
                break;
            }
        }
    }
}

/// Replace every e-mail, phone number, card, IBAN, national id, IP address, street line and
/// known person name inside `input` with its masked form.
pub fn scrub_text(key: &MaskKey, input: &str, names: Option<&KnownNames>) -> String {
    let mut spans: Vec<Span> = Vec::new();
    let mut push = |start, end, rank, masked: String| {
        spans.push(Span {
            start,
            end,
            rank,
            masked,
        })
    };
    if names.is_none_or(KnownNames::is_empty)
        && !input.bytes().any(|b| b.is_ascii_digit() || b == b'@')
    {
        // Every kind but a name holds a digit or an `@`.
        return input.to_string();
    }
    for m in EMAIL.find_iter(input) {
        push(m.start(), m.end(), 0, email(key, "email", m.as_str()));
    }
    for m in IBAN.find_iter(input) {
        // The longest prefix that is a valid IBAN, ending where a group ends.
        let s = m.as_str();
        let ends: Vec<(usize, char)> = s.char_indices().filter(|(_, c)| *c != ' ').collect();
        let compact: String = ends.iter().map(|(_, c)| *c).collect();
        let lengths: Vec<usize> = match iban_length(&compact[..2]) {
            Some(n) if n <= compact.len() => vec![n],
            Some(_) => Vec::new(),
            None => vec![compact.len()],
        };
        let valid = lengths.into_iter().find_map(|len| {
            let end = ends[len - 1].0 + 1;
            let group_end = end == s.len() || s[end..].starts_with(' ');
            (group_end && iban_mod97(&compact[..len]) == 1).then_some(end)
        });
        match valid {
            Some(end) => {
                let v = &s[..end];
                push(
                    m.start(),
                    m.start() + end,
                    1,
                    iban(key, "iban", v).unwrap_or_else(|_| v.to_string()),
                );
            }
            // IBAN-shaped with a wrong checksum: a reference number, whose digit groups are
            // no phone either. It stays as it is.
            None => push(m.start(), m.end(), 1, s.to_string()),
        }
    }
    for m in CARD.find_iter(input) {
        let ascii: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
        if luhn_valid(&ascii) && alone(input, m.start(), m.end()) {
            let v = m.as_str();
            push(
                m.start(),
                m.end(),
                2,
                card(key, "card", v, false).unwrap_or_else(|_| v.to_string()),
            );
        }
    }
    for c in SSN.captures_iter(input) {
        let m = c.get(0).expect("whole match");
        let (area, group, serial) = (&c[1], &c[3], &c[5]);
        if c[2] == c[4]
            && area != "000"
            && area != "666"
            && !area.starts_with('9')
            && group != "00"
            && serial != "0000"
            && alone(input, m.start(), m.end())
        {
            push(m.start(), m.end(), 3, shape(key, "shape", m.as_str()));
        }
    }
    type Check = fn(&str) -> bool;
    let ids: [(&Regex, Check); 5] = [
        (&NINO, |_| true),
        (&CODICE_FISCALE, |_| true),
        (&NIR, nir_valid),
        (&STEUER_ID, |s| steuer_id_valid(&digits(s))),
        (&CPF, |s| cpf_valid(&digits(s))),
    ];
    for (re, valid) in ids {
        for m in re.find_iter(input) {
            if valid(m.as_str()) && alone(input, m.start(), m.end()) {
                push(m.start(), m.end(), 3, shape(key, "shape", m.as_str()));
            }
        }
    }
    // IPv6: the run of hex digits, colons and dots around each colon.
    let bytes = input.as_bytes();
    let v6 = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut from = 0;
    while let Some(i) = memchr::memchr(b':', &bytes[from..]).map(|i| from + i) {
        let mut start = i;
        while start > 0 && v6(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = i;
        while end < bytes.len() && v6(bytes[end]) {
            end += 1;
        }
        from = end.max(i + 1);
        let s = input[start..end].trim_end_matches('.');
        let end = start + s.len();
        if s.matches(':').count() >= 2
            && s.parse::<std::net::Ipv6Addr>().is_ok()
            && s.chars().any(|c| c.is_ascii_hexdigit())
            && alone(input, start, end)
        {
            push(
                start,
                end,
                4,
                ip(key, "ip", s, 0).unwrap_or_else(|_| s.to_string()),
            );
        }
    }
    for m in IPV4.find_iter(input) {
        if alone(input, m.start(), m.end()) {
            let v = m.as_str();
            push(
                m.start(),
                m.end(),
                5,
                ip(key, "ip", v, 0).unwrap_or_else(|_| v.to_string()),
            );
        }
    }
    find_phones(input, &mut spans, key);
    let mut push = |start, end, rank, masked: String| {
        spans.push(Span {
            start,
            end,
            rank,
            masked,
        })
    };
    for (re, locale) in STREETS.iter() {
        for m in re.find_iter(input) {
            let norm = m.as_str().trim().to_lowercase();
            let masked = fake_value(
                FakeKind::Street,
                *locale,
                &mut Draws::new(key, "street", norm.as_bytes()),
            );
            push(m.start(), m.end(), 7, masked);
        }
    }
    if let Some(names) = names
        && let Some(finder) = &names.finder
    {
        for m in finder.find_iter(input) {
            let (start, end) = (m.start(), m.end());
            let before = input[..start].chars().next_back();
            let after = input[end..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if word(before) || word(after) {
                continue;
            }
            let text = &names.patterns[m.pattern().as_usize()];
            if let Some((kind, locale, domain)) = names.known.get(text) {
                push(start, end, 8, fake_name(key, *kind, *locale, domain, text));
            }
        }
    }
    if spans.is_empty() {
        return input.to_string();
    }
    // The most specific kind wins an overlap; among equals, the longer and earlier.
    spans.sort_by(|a, b| {
        a.rank
            .cmp(&b.rank)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut taken: Vec<Span> = Vec::new();
    for s in spans {
        if taken.iter().all(|t| s.end <= t.start || s.start >= t.end) {
            taken.push(s);
        }
    }
    taken.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(input.len() + 16);
    let mut at = 0;
    for s in taken {
        out.push_str(&input[at..s.start]);
        out.push_str(&s.masked);
        at = s.end;
    }
    out.push_str(&input[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> MaskKey {
        MaskKey::new(b"scrub test key, long enough")
    }

    #[test]
    fn check_digit_validators() {
        // Built from the algorithms: a German tax id, a French NIR, a Brazilian CPF.
        assert!(steuer_id_valid(&digits("86095742719")));
        assert!(!steuer_id_valid(&digits("86095742718")));
        assert!(nir_valid("1 84 12 76 451 089 46"));
        assert!(!nir_valid("1 84 12 76 451 089 47"));
        assert!(cpf_valid(&digits("529.982.247-25")));
        assert!(!cpf_valid(&digits("529.982.247-26")));
    }

    #[test]
    fn free_text_loses_every_kind_and_keeps_the_rest() {
        let names = KnownNames::new([
            ("Jonas Becker", NameKind::Full, Locale::DeDe, "full_name"),
            ("Price", NameKind::Last, Locale::En, "last_name"),
        ]);
        let text = "Hi Jonas, Becker here: call (+49) 1555 1234567 or 0157-12345678, \
                    (415) 555-0132, SSN 219-09-9999, IBAN DE89 3704 0044 0532 0130 00, \
                    card 4111 1111 1111 1111 from 2001:db8::1 and 192.0.2.7; ship to \
                    Hauptstraße 5 and 221B Baker Street. Order ORD-2024-001234 on \
                    2024-03-05 at 12:52, price 1.234,56 €, v2.10.3, Price agreed.";
        let out = scrub_text(&k(), text, Some(&names));
        for gone in [
            "Jonas",
            "Becker",
            "1555 1234567",
            "0157-12345678",
            "555-0132",
            "219-09-9999",
            "DE89 3704",
            "4111 1111",
            "2001:db8::1",
            "192.0.2.7",
            "Hauptstraße 5",
            "Baker Street",
            "Price agreed",
        ] {
            assert!(!out.contains(gone), "{gone} left in: {out}");
        }
        for kept in [
            "ORD-2024-001234",
            "2024-03-05",
            "12:52",
            "price 1.234,56 €",
            "v2.10.3",
        ] {
            assert!(out.contains(kept), "{kept} lost: {out}");
        }
        // Deterministic, and a name masks in text as in its column.
        assert_eq!(out, scrub_text(&k(), text, Some(&names)));
        let column = crate::data::mask::Transform::Fake {
            kind: FakeKind::FirstName,
            locale: Locale::DeDe,
        }
        .apply(&k(), "first_name", "Jonas")
        .unwrap()
        .unwrap();
        assert!(out.starts_with(&format!("Hi {column},")), "{out}");
    }
}
