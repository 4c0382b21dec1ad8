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
pub(crate) mod values;

use regex::Regex;

use crate::data::mask::structured::{Step, apply_path, parse_array, write_array};
use crate::keyed::HmacKey;
use values::{Draws, MAIL_DOMAINS, card, email, fake_name, iban, ip, phone, shape};
pub use values::{FakeKind, Locale, MaskError};
#[cfg(test)]
use values::{iban_mod97, luhn_valid};

/// The masking key, prepared once (see [`HmacKey`]).
pub type MaskKey = HmacKey;

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
            Transform::Fake { kind, locale } => fake_name(key, *kind, *locale, domain, input),
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
