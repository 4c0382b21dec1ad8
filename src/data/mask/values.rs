//! The masking of single values: the keyed draws every fake value comes from, and the e-mail,
//! phone, IBAN, card, IP, shape and `fake` name and place maskers that [`Transform`] and
//! [`scrub`] share.
//!
//! [`Transform`]: crate::data::mask::Transform
//! [`scrub`]: crate::data::mask::scrub

use crate::keyed::HmacKey as MaskKey;

/// A deterministic stream of pseudo-random draws for one (key, domain, input): the seed is the
/// keyed hash, the stream xoshiro256** from it. The stream need not be cryptographic: knowing
/// it reveals only the keyed hash of the input, never the input or the key.
pub(crate) struct Draws {
    s: [u64; 4],
    bits: u64,
    left: u32,
}

impl Draws {
    pub(crate) fn new(key: &MaskKey, domain: &str, input: &[u8]) -> Draws {
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

    pub(crate) fn u64(&mut self) -> u64 {
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

    pub(crate) fn byte(&mut self) -> u8 {
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
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }

    pub(crate) fn digit(&mut self) -> u8 {
        b'0' + self.below(10) as u8
    }

    pub(crate) fn letter(&mut self, upper: bool) -> u8 {
        (if upper { b'A' } else { b'a' }) + self.below(26) as u8
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

pub(crate) fn fake_value(kind: FakeKind, locale: Locale, d: &mut Draws) -> String {
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

pub(crate) fn shape(key: &MaskKey, domain: &str, input: &str) -> String {
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

pub(crate) const MAIL_DOMAINS: [&str; 3] = ["example.com", "example.net", "example.org"];

pub(crate) fn email(key: &MaskKey, domain: &str, input: &str) -> String {
    let norm = input.trim().to_lowercase();
    let mut d = Draws::new(key, domain, norm.as_bytes());
    let local: String = (0..10)
        .map(|i| if i == 0 { d.letter(false) } else if d.below(3) == 0 { d.digit() } else { d.letter(false) } as char)
        .collect();
    format!("{local}@{}", MAIL_DOMAINS[d.below(3) as usize])
}

pub(crate) fn phone(key: &MaskKey, domain: &str, input: &str) -> String {
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
pub(crate) fn iban_mod97(s: &str) -> u32 {
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

pub(crate) fn iban(key: &MaskKey, domain: &str, input: &str) -> Result<String, MaskError> {
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

pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
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

pub(crate) fn card(
    key: &MaskKey,
    domain: &str,
    input: &str,
    keep_last4: bool,
) -> Result<String, MaskError> {
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

pub(crate) fn ip(
    key: &MaskKey,
    domain: &str,
    input: &str,
    keep_prefix_bits: u8,
) -> Result<String, MaskError> {
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

/// A person's or place's fake name for `input`, as a name column masks it: inputs compare case-
/// and space-insensitively (`ALICE ` masks like `alice`).
pub(crate) fn fake_name(
    key: &MaskKey,
    kind: FakeKind,
    locale: Locale,
    domain: &str,
    input: &str,
) -> String {
    let norm = input.trim().to_lowercase();
    fake_value(kind, locale, &mut Draws::new(key, domain, norm.as_bytes()))
}
