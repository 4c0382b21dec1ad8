//! Masking transforms: a source value in, its masked form out, deterministic under a key.
//!
//! Every fake value is drawn from a stream seeded by HMAC-SHA256(key, domain ‖ 0 ‖ normalised
//! input), so one source value maps to one masked value in every table, column and night that
//! shares the key and the domain (emails compare case-insensitively). Transforms keep what the
//! column needs: an IBAN keeps its country and a valid checksum, a card number passes Luhn and
//! keeps its brand digit, a phone keeps its shape, a shifted date stays a date, noisy numbers
//! keep their scale. Pure functions: no database here.

pub(crate) mod key;
pub(crate) mod parse;
pub(crate) mod presets;
pub mod rows;
pub mod scrub;
pub(crate) mod structured;

use regex::Regex;

use crate::data::mask::structured::{Step, apply_path, parse_array, write_array};
use crate::keyed::HmacKey;

/// The masking key, prepared once (see [`HmacKey`]).
pub type MaskKey = HmacKey;

/// A deterministic stream of pseudo-random draws for one (key, domain, input): the seed is the
/// keyed hash, the stream xoshiro256** from it. The stream need not be cryptographic: knowing
/// it reveals only the keyed hash of the input, never the input or the key.
struct Draws {
    s: [u64; 4],
    bits: u64,
    left: u32,
}

impl Draws {
    fn new(key: &MaskKey, domain: &str, input: &[u8]) -> Draws {
        let seed = key.mac(&[domain.as_bytes(), b"\0", input]);
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&seed[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let mut s = [word(0), word(1), word(2), word(3)];
        if s == [0; 4] {
            s[0] = 1;
        }
        Draws {
            s,
            bits: 0,
            left: 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    fn byte(&mut self) -> u8 {
        if self.left == 0 {
            self.bits = self.u64();
            self.left = 8;
        }
        self.left -= 1;
        let b = self.bits as u8;
        self.bits >>= 8;
        b
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }

    fn digit(&mut self) -> u8 {
        b'0' + self.below(10) as u8
    }

    fn letter(&mut self, upper: bool) -> u8 {
        (if upper { b'A' } else { b'a' }) + self.below(26) as u8
    }
}

/// A masking transform.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// SQL NULL.
    Null,
    /// A fixed value.
    Constant(String),
    /// The value unchanged (declared safe).
    Keep,
    /// `x` for letters and `0` for digits, other characters kept (same length and shape).
    Redact,
    /// Keyed hash, hex, `len` characters (1..=64).
    Hash {
        /// Output length in characters.
        len: usize,
        /// Base64 (URL-safe alphabet, no padding) instead of hex.
        base64: bool,
    },
    /// A valid-looking e-mail at a reserved domain.
    Email,
    /// Digits replaced, shape kept (`+`, country code, separators).
    Phone,
    /// Same country and length, valid checksum.
    Iban,
    /// Same length and brand digit, Luhn-valid; optionally the last four kept.
    Card {
        /// Keep the last four digits.
        keep_last4: bool,
    },
    /// An IPv4 or IPv6 address, keeping the first `keep_prefix_bits` bits (multiples of 8 for v4,
    /// of 16 for v6).
    Ip {
        /// Bits of the original prefix to keep.
        keep_prefix_bits: u8,
    },
    /// A random-looking version-4 UUID.
    Uuid,
    /// A date (`YYYY-MM-DD`, anything after it kept) shifted by 1..=`max_days` days, either way,
    /// staying within `within` (days since 1970-01-01, both ends included) when the column's
    /// CHECK constraints bound it.
    DateShift {
        /// The largest shift.
        max_days: u32,
        /// The range a shifted date must stay in.
        within: Option<(i64, i64)>,
    },
    /// A number moved by up to ±`percent` %, same sign rules, same number of decimals.
    NumberNoise {
        /// The largest relative change, in percent.
        percent: f64,
    },
    /// Free text with every e-mail, phone number, card, IBAN, national id, IP address, street
    /// line and known person name inside it replaced by its masked form (the one the column
    /// transforms give); see [`scrub`].
    Scrub(Names),
    /// A person's or a place's name from `fake`'s lists for a locale.
    Fake {
        /// Which kind of value.
        kind: FakeKind,
        /// Whose lists.
        locale: Locale,
    },
    /// Every digit replaced by a keyed digit and every letter by a keyed letter of the same case;
    /// separators kept (national ids, account numbers, licence plates).
    Shape,
    /// Every match of a regex replaced (`$1`, `${name}` refer to groups).
    Regex {
        /// The pattern.
        pattern: Pattern,
        /// The replacement.
        replace: String,
    },
    /// A JSON document whose leaves at each path are masked by that path's transform (the
    /// transform's own domain, so a phone inside JSON masks like a phone column).
    Json {
        /// Each masked path and its transform.
        paths: Vec<JsonPath>,
    },
    /// A PostgreSQL array whose every element is masked by `element`.
    Array {
        /// The element transform.
        element: Box<Transform>,
    },
    /// Text built from other columns of the same row, after their masking:
    /// `{first_name} {last_name}`. NULL when a column it names is NULL.
    Template(String),
}

/// The person names a [`Transform::Scrub`] looks for: those the run masks in its name columns
/// (none until the run has read them). Run data, not part of the rule: any two compare equal.
#[derive(Debug, Clone, Default)]
pub struct Names(pub Option<std::sync::Arc<scrub::KnownNames>>);

impl PartialEq for Names {
    fn eq(&self, _: &Names) -> bool {
        true
    }
}

/// One masked path of a [`Transform::Json`].
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    /// The path as written (`$.contact.email`).
    pub path: String,
    /// The parsed path.
    pub steps: Vec<Step>,
    /// The leaves' transform.
    pub transform: Transform,
    /// The leaves' determinism domain (default: the transform's own, so a phone inside JSON
    /// masks like a phone column; a named one joins a column's consistency group).
    pub domain: String,
}

/// A compiled regex that compares by its pattern.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Names and places `fake` provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeKind {
    /// A first name.
    FirstName,
    /// A last name.
    LastName,
    /// A full name.
    FullName,
    /// A building number and a street.
    Street,
    /// A city.
    City,
    /// A postcode.
    Postcode,
}

impl FakeKind {
    /// The name in sluice.yaml.
    pub fn name(self) -> &'static str {
        match self {
            FakeKind::FirstName => "first_name",
            FakeKind::LastName => "last_name",
            FakeKind::FullName => "full_name",
            FakeKind::Street => "street",
            FakeKind::City => "city",
            FakeKind::Postcode => "postcode",
        }
    }

    /// Parse the name in sluice.yaml.
    pub fn parse(s: &str) -> Option<FakeKind> {
        [
            FakeKind::FirstName,
            FakeKind::LastName,
            FakeKind::FullName,
            FakeKind::Street,
            FakeKind::City,
            FakeKind::Postcode,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// The locales of `fake`'s lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    /// English (the default).
    #[default]
    En,
    /// German.
    DeDe,
    /// French.
    FrFr,
    /// Italian.
    ItIt,
    /// Brazilian Portuguese.
    PtBr,
    /// Portuguese.
    PtPt,
    /// Japanese.
    JaJp,
    /// Simplified Chinese.
    ZhCn,
    /// Traditional Chinese.
    ZhTw,
    /// Arabic.
    ArSa,
    /// Welsh.
    CyGb,
}

impl Locale {
    /// Every locale with its name in sluice.yaml.
    pub const ALL: [(&'static str, Locale); 11] = [
        ("en", Locale::En),
        ("de_de", Locale::DeDe),
        ("fr_fr", Locale::FrFr),
        ("it_it", Locale::ItIt),
        ("pt_br", Locale::PtBr),
        ("pt_pt", Locale::PtPt),
        ("ja_jp", Locale::JaJp),
        ("zh_cn", Locale::ZhCn),
        ("zh_tw", Locale::ZhTw),
        ("ar_sa", Locale::ArSa),
        ("cy_gb", Locale::CyGb),
    ];

    /// The name in sluice.yaml.
    pub fn name(self) -> &'static str {
        Locale::ALL
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("en", |(n, _)| n)
    }
}

impl fake::rand::RngCore for Draws {
    fn next_u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for b in dst {
            *b = self.byte();
        }
    }
}

fn fake_value(kind: FakeKind, locale: Locale, d: &mut Draws) -> String {
    use fake::Fake;
    use fake::faker::address::raw::{BuildingNumber, CityName, PostCode, StreetName};
    use fake::faker::name::raw::{FirstName, LastName, Name};
    use fake::locales::*;
    macro_rules! draw {
        ($l:expr) => {
            match kind {
                FakeKind::FirstName => FirstName($l).fake_with_rng(d),
                FakeKind::LastName => LastName($l).fake_with_rng(d),
                FakeKind::FullName => Name($l).fake_with_rng(d),
                FakeKind::Street => {
                    let n: String = BuildingNumber($l).fake_with_rng(d);
                    let s: String = StreetName($l).fake_with_rng(d);
                    format!("{n} {s}")
                }
                FakeKind::City => CityName($l).fake_with_rng(d),
                FakeKind::Postcode => PostCode($l).fake_with_rng(d),
            }
        };
    }
    match locale {
        Locale::En => draw!(EN),
        Locale::DeDe => draw!(DE_DE),
        Locale::FrFr => draw!(FR_FR),
        Locale::ItIt => draw!(IT_IT),
        Locale::PtBr => draw!(PT_BR),
        Locale::PtPt => draw!(PT_PT),
        Locale::JaJp => draw!(JA_JP),
        Locale::ZhCn => draw!(ZH_CN),
        Locale::ZhTw => draw!(ZH_TW),
        Locale::ArSa => draw!(AR_SA),
        Locale::CyGb => draw!(CY_GB),
    }
}

fn shape(key: &MaskKey, domain: &str, input: &str) -> String {
    let mut d = Draws::new(key, domain, input.as_bytes());
    input
        .chars()
        .map(|c| match c {
            c if c.is_ascii_digit() => char::from(d.digit()),
            c if c.is_ascii_uppercase() => char::from(d.letter(true)),
            c if c.is_alphabetic() => char::from(d.letter(false)),
            c => c,
        })
        .collect()
}

/// Why a value could not be masked by a transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskError(pub String);

impl std::fmt::Display for MaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Transform {
    /// The shortest column (in characters) the transform's values fit without losing their
    /// form: an e-mail shortened below `x@example.com` is no e-mail, a cut UUID no UUID.
    /// `None`: any length works (the value keeps the input's length, or a cut value is still
    /// one of its kind).
    pub fn min_len(&self) -> Option<usize> {
        match self {
            Transform::Email => {
                Some(1 + 1 + MAIL_DOMAINS.iter().map(|d| d.len()).max().unwrap_or(0))
            }
            Transform::Uuid => Some(36),
            Transform::Ip { .. } => Some(15),
            Transform::Hash { len, .. } => Some(*len),
            Transform::Constant(c) => Some(c.chars().count()),
            _ => None,
        }
    }

    /// Whether distinct inputs always give distinct outputs (NULLs never collide), so the
    /// transform may mask a unique column. Names, redaction, noise and short hashes repeat by
    /// design.
    pub fn can_be_unique(&self) -> bool {
        !matches!(
            self,
            Transform::Constant(_)
                | Transform::Redact
                | Transform::DateShift { .. }
                | Transform::NumberNoise { .. }
                | Transform::Scrub(_)
                | Transform::Fake { .. }
                | Transform::Regex { .. }
                | Transform::Json { .. }
                | Transform::Array { .. }
                | Transform::Template(_)
        ) && !matches!(self, Transform::Hash { len, .. } if *len < 12)
    }

    /// The default determinism domain: values masked by the same transform under the same key
    /// agree across tables and columns.
    pub fn default_domain(&self) -> &'static str {
        match self {
            Transform::Email => "email",
            Transform::Phone => "phone",
            Transform::Iban => "iban",
            Transform::Card { .. } => "card",
            Transform::Ip { .. } => "ip",
            Transform::Uuid => "uuid",
            Transform::DateShift { .. } => "date",
            Transform::NumberNoise { .. } => "number",
            Transform::Hash { .. } => "hash",
            Transform::Json { .. } => "json",
            Transform::Array { element } => element.default_domain(),
            Transform::Template(_) => "template",
            Transform::Fake { kind, .. } => kind.name(),
            Transform::Shape => "shape",
            _ => "text",
        }
    }

    /// Mask one non-NULL value. `Ok(None)` is NULL.
    pub fn apply(
        &self,
        key: &MaskKey,
        domain: &str,
        input: &str,
    ) -> Result<Option<String>, MaskError> {
        Ok(Some(match self {
            Transform::Null => return Ok(None),
            Transform::Constant(c) => c.clone(),
            Transform::Keep => input.to_string(),
            Transform::Redact => input
                .chars()
                .map(|c| match c {
                    c if c.is_ascii_digit() => '0',
                    c if c.is_alphabetic() => 'x',
                    c => c,
                })
                .collect(),
            Transform::Hash { len, base64 } => {
                let h = key.mac(&[domain.as_bytes(), b"\0", input.as_bytes()]);
                let len = (*len).clamp(1, if *base64 { 43 } else { 64 });
                if *base64 {
                    use base64::Engine;
                    let mut s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h);
                    s.truncate(len);
                    s
                } else {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    h.iter()
                        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
                        .take(len)
                        .map(char::from)
                        .collect()
                }
            }
            Transform::Email => email(key, domain, input),
            Transform::Phone => phone(key, domain, input),
            Transform::Iban => iban(key, domain, input)?,
            Transform::Card { keep_last4 } => card(key, domain, input, *keep_last4)?,
            Transform::Ip { keep_prefix_bits } => ip(key, domain, input, *keep_prefix_bits)?,
            Transform::Uuid => uuid(key, domain, input),
            Transform::DateShift { max_days, within } => {
                date_shift(key, domain, input, *max_days, *within)?
            }
            Transform::NumberNoise { percent } => number_noise(key, domain, input, *percent)?,
            Transform::Scrub(names) => scrub::scrub_text(key, input, names.0.as_deref()),
            Transform::Fake { kind, locale } => {
                // Names compare case- and space-insensitively: `ALICE ` masks like `alice`.
                let norm = input.trim().to_lowercase();
                fake_value(
                    *kind,
                    *locale,
                    &mut Draws::new(key, domain, norm.as_bytes()),
                )
            }
            Transform::Shape => shape(key, domain, input),
            Transform::Regex { pattern, replace } => {
                pattern.0.replace_all(input, replace.as_str()).into_owned()
            }
            Transform::Json { paths } => {
                let mut doc: serde_json::Value = serde_json::from_str(input)
                    .map_err(|e| MaskError(format!("not JSON ({e})")))?;
                for p in paths {
                    apply_path(&mut doc, &p.steps, &mut |leaf| {
                        p.transform.apply(key, &p.domain, leaf).map_err(|e| e.0)
                    })
                    .map_err(MaskError)?;
                }
                serde_json::to_string(&doc).map_err(|e| MaskError(e.to_string()))?
            }
            Transform::Array { element } => {
                let items = parse_array(input).map_err(MaskError)?;
                let masked = items
                    .iter()
                    .map(|i| match i {
                        None => Ok(None),
                        Some(v) => element.apply(key, domain, v),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                write_array(&masked)
            }
            Transform::Template(_) => {
                return Err(MaskError(
                    "a template is filled from its row; it cannot mask a lone value".into(),
                ));
            }
        }))
    }
}

const MAIL_DOMAINS: [&str; 3] = ["example.com", "example.net", "example.org"];

fn email(key: &MaskKey, domain: &str, input: &str) -> String {
    let norm = input.trim().to_lowercase();
    let mut d = Draws::new(key, domain, norm.as_bytes());
    let local: String = (0..10)
        .map(|i| if i == 0 { d.letter(false) } else if d.below(3) == 0 { d.digit() } else { d.letter(false) } as char)
        .collect();
    format!("{local}@{}", MAIL_DOMAINS[d.below(3) as usize])
}

fn phone(key: &MaskKey, domain: &str, input: &str) -> String {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    let mut d = Draws::new(key, domain, digits.as_bytes());
    // Keep a leading `+` with the first two digits (country code), or a national trunk `0`.
    let keep = if input.trim_start().starts_with('+') {
        2
    } else if digits.starts_with('0') {
        1
    } else {
        0
    };
    let mut seen = 0;
    input
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= keep { c } else { d.digit() as char }
        })
        .collect()
}

/// ISO 13616 check: move the first four characters to the end, letters as 10..35, mod 97.
fn iban_mod97(s: &str) -> u32 {
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    rearranged.chars().fold(0u32, |acc, c| {
        let v = c.to_digit(36).unwrap_or(0);
        if v >= 10 {
            (acc * 100 + v) % 97
        } else {
            (acc * 10 + v) % 97
        }
    })
}

fn iban(key: &MaskKey, domain: &str, input: &str) -> Result<String, MaskError> {
    let compact: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if compact.len() < 5
        || !compact.is_char_boundary(2)
        || !compact[..2].chars().all(|c| c.is_ascii_uppercase())
    {
        return Err(MaskError(
            "not an IBAN: it must start with a two-letter country code".into(),
        ));
    }
    let mut d = Draws::new(key, domain, compact.as_bytes());
    let bban: String = compact[4..]
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                d.letter(true) as char
            } else {
                d.digit() as char
            }
        })
        .collect();
    let country = &compact[..2];
    let check = 98 - iban_mod97(&format!("{country}00{bban}"));
    let out = format!("{country}{check:02}{bban}");
    // Keep the input's grouping in fours when it had spaces.
    if input.contains(' ') {
        Ok(out
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" "))
    } else {
        Ok(out)
    }
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn card(key: &MaskKey, domain: &str, input: &str, keep_last4: bool) -> Result<String, MaskError> {
    let digits: Vec<u8> = input.bytes().filter(u8::is_ascii_digit).collect();
    if !(12..=19).contains(&digits.len()) {
        return Err(MaskError(
            "not a card number: it needs 12 to 19 digits".into(),
        ));
    }
    let mut d = Draws::new(key, domain, &digits);
    let n = digits.len();
    let mut out: Vec<u8> = (0..n).map(|_| d.digit()).collect();
    out[0] = digits[0];
    if keep_last4 {
        out[n - 4..].copy_from_slice(&digits[n - 4..]);
        // Fix the checksum with the digit just before the kept four.
        let fix = n - 5;
        for v in b'0'..=b'9' {
            out[fix] = v;
            if luhn_valid(&out) {
                break;
            }
        }
    } else {
        for v in b'0'..=b'9' {
            out[n - 1] = v;
            if luhn_valid(&out) {
                break;
            }
        }
    }
    let mut it = out.into_iter();
    Ok(input
        .bytes()
        .map(|b| {
            if b.is_ascii_digit() {
                it.next().unwrap_or(b) as char
            } else {
                b as char
            }
        })
        .collect())
}

fn ip(key: &MaskKey, domain: &str, input: &str, keep_prefix_bits: u8) -> Result<String, MaskError> {
    let addr: std::net::IpAddr = input
        .trim()
        .parse()
        .map_err(|_| MaskError("not an IP address".into()))?;
    let mut d = Draws::new(key, domain, addr.to_string().as_bytes());
    Ok(match addr {
        std::net::IpAddr::V4(v4) => {
            let keep = usize::from(keep_prefix_bits.min(32) / 8);
            let mut o = v4.octets();
            for (i, b) in o.iter_mut().enumerate().skip(keep) {
                *b = if i == 3 {
                    1 + d.below(254) as u8
                } else {
                    d.byte()
                };
            }
            std::net::Ipv4Addr::from(o).to_string()
        }
        std::net::IpAddr::V6(v6) => {
            let keep = usize::from(keep_prefix_bits.min(128) / 16);
            let mut s = v6.segments();
            for seg in s.iter_mut().skip(keep) {
                *seg = u16::from(d.byte()) << 8 | u16::from(d.byte());
            }
            std::net::Ipv6Addr::from(s).to_string()
        }
    })
}

fn uuid(key: &MaskKey, domain: &str, input: &str) -> String {
    let mut d = Draws::new(key, domain, input.trim().to_lowercase().as_bytes());
    let mut b: Vec<u8> = (0..16).map(|_| d.byte()).collect();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a count of days since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn date_shift(
    key: &MaskKey,
    domain: &str,
    input: &str,
    max_days: u32,
    within: Option<(i64, i64)>,
) -> Result<String, MaskError> {
    let bad = || MaskError("not a date: expected YYYY-MM-DD at the start".into());
    let head = input.get(..10).ok_or_else(bad)?;
    let parts: Vec<&str> = head.split('-').collect();
    if parts.len() != 3 || parts[0].len() != 4 || parts[1].len() != 2 || parts[2].len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (i64, i64, i64) = (
        parts[0].parse().map_err(|_| bad())?,
        parts[1].parse().map_err(|_| bad())?,
        parts[2].parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || civil_from_days(days_from_civil(y, m, d)) != (y, m, d)
    {
        return Err(bad());
    }
    let mut dr = Draws::new(key, domain, head.as_bytes());
    let max = i64::from(max_days.max(1));
    let mut shift = 1 + dr.below(max as u64) as i64;
    if dr.below(2) == 0 {
        shift = -shift;
    }
    let day = days_from_civil(y, m, d);
    let mut moved = day + shift;
    if let Some((lo, hi)) = within
        && !(lo..=hi).contains(&moved)
    {
        // The other way, else the nearest end of the range: still a function of the input, so
        // one date keeps one shifted date.
        moved = day - shift;
        if !(lo..=hi).contains(&moved) {
            moved = moved.clamp(lo, hi.max(lo));
        }
    }
    let (ny, nm, nd) = civil_from_days(moved);
    Ok(format!("{ny:04}-{nm:02}-{nd:02}{}", &input[10..]))
}

fn number_noise(
    key: &MaskKey,
    domain: &str,
    input: &str,
    percent: f64,
) -> Result<String, MaskError> {
    let t = input.trim();
    let value: f64 = t.parse().map_err(|_| MaskError("not a number".into()))?;
    let scale = t.split_once('.').map_or(0, |(_, f)| f.len());
    if value == 0.0 {
        // Noise relative to zero is zero: nothing to draw.
        return Ok(t.to_string());
    }
    let mut d = Draws::new(key, domain, t.as_bytes());
    let unit = (d.u64() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    let factor = 1.0 + (unit * 2.0 - 1.0) * percent / 100.0;
    let noisy = value * factor;
    Ok(format!("{noisy:.scale$}"))
}

#[cfg(test)]
mod tests;
