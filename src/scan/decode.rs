//! Encoded text: UTF-16 files, and base64-encoded values (Kubernetes Secret `data:` entries and
//! similar `key: <base64>` values).
//!
//! Bytes in, decoded candidates out. Each candidate is re-presented as `key: <decoded>` so that
//! rules keyed on the name (`password: …`) still apply, and remembers where the encoded value
//! sits so findings point at it.

use base64::Engine as _;

/// Extensions of config-like files whose values are decoded.
const CONFIG_EXTENSIONS: [&str; 15] = [
    "yaml",
    "yml",
    "json",
    "env",
    "properties",
    "toml",
    "ini",
    "conf",
    "cfg",
    "tf",
    "tfvars",
    "xml",
    "hcl",
    "secret",
    "txt",
];

/// The longest key a value is decoded with (a longer run of key bytes keeps its last 64).
const MAX_KEY: usize = 64;

/// The shortest base64 run taken for a value.
const MIN_VALUE: usize = 12;

fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')
}

fn blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Every `key: value`, `key=value` or `"key": "value"` whose value looks like base64, as
/// (key, value) byte ranges, left to right without overlap: what the pattern
/// `([A-Za-z0-9_.\-]{1,64})["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9+/]{12,}={0,2})(?:["',]|[ \t]*$)`
/// (multi-line `$`) finds, read by hand. A value is a whole run of at least [`MIN_VALUE`]
/// base64 bytes (the byte before it, a quote, blank or separator, is not one), so only such
/// runs are looked at: each is followed back through an optional quote and blanks to its
/// separator, and read from there. Runs that long are rare in most text, separators are not.
fn values(
    buf: &[u8],
) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> + '_ {
    // `done`: where the last value's match ended; nothing before it is looked at again.
    let mut done = 0;
    let mut runs = long_runs(buf);
    std::iter::from_fn(move || {
        loop {
            let run = runs.next()?;
            let mut p = run;
            if p > 0 && matches!(buf[p - 1], b'"' | b'\'') {
                p -= 1;
            }
            while p > 0 && blank(buf[p - 1]) {
                p -= 1;
            }
            if p == 0 || !matches!(buf[p - 1], b':' | b'=') || p - 1 < done {
                continue;
            }
            if let Some((key, value, end)) = value_at(buf, done, p - 1) {
                done = end;
                return Some((key, value));
            }
        }
    })
}

/// Where each run of at least [`MIN_VALUE`] base64 bytes starts, in order, found 64 bytes at a
/// time: `m`, the block's base64 bytes as bits (and the next block's above them), and-ed with
/// itself shifted by 1, 2, 4 and 4 keeps the bits that start twelve base64 bytes in a row.
fn long_runs(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    const _: () = assert!(MIN_VALUE == 12, "the shifts below find runs of twelve");
    let mut at = 0;
    let mut cur = base64_mask(buf, 0);
    let mut carry = 0u64;
    let mut pending = 0u64;
    let mut block = 0;
    std::iter::from_fn(move || {
        loop {
            if pending != 0 {
                let i = pending.trailing_zeros() as usize;
                pending &= pending - 1;
                return Some(block + i);
            }
            if at >= buf.len() {
                return None;
            }
            let next = if at + 64 < buf.len() {
                base64_mask(buf, at + 64)
            } else {
                0
            };
            let x = (u128::from(next) << 64) | u128::from(cur);
            let mut r = x & (x >> 1);
            r &= r >> 2;
            r &= r >> 4;
            r &= r >> 4;
            pending = r as u64 & !((cur << 1) | carry);
            carry = cur >> 63;
            block = at;
            at += 64;
            cur = next;
        }
    })
}

/// Bit `i` set when byte `at + i` of `buf` is a base64 byte (none past the end).
fn base64_mask(buf: &[u8], at: usize) -> u64 {
    let block = &buf[at.min(buf.len())..(at + 64).min(buf.len())];
    super::masks::mask(block, &super::masks::BASE64)
}

/// The value whose separator is at `sep`, when the bytes around it make one, with no byte before
/// `floor` in it: (key, value, end of the match).
fn value_at(
    buf: &[u8],
    floor: usize,
    sep: usize,
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>, usize)> {
    // The value first (most separators fail there within a few bytes): blanks, an optional
    // quote, a base64 run and up to two `=`.
    let mut v = sep + 1;
    while v < buf.len() && blank(buf[v]) {
        v += 1;
    }
    if v < buf.len() && matches!(buf[v], b'"' | b'\'') {
        v += 1;
    }
    let start = v;
    while v < buf.len() && base64_byte(buf[v]) {
        v += 1;
    }
    if v - start < MIN_VALUE {
        return None;
    }
    let run = v;
    while v < buf.len() && buf[v] == b'=' {
        v += 1;
    }
    if v - run > 2 {
        return None;
    }
    // The key: blanks, an optional quote and key bytes, back from the separator.
    let mut k = sep;
    while k > floor && blank(buf[k - 1]) {
        k -= 1;
    }
    if k > floor && matches!(buf[k - 1], b'"' | b'\'') {
        k -= 1;
    }
    let key_end = k;
    let lowest = floor.max(key_end.saturating_sub(MAX_KEY));
    while k > lowest && key_byte(buf[k - 1]) {
        k -= 1;
    }
    if k == key_end {
        return None;
    }
    let value = start..v;
    // Then a closing quote or comma, or blanks to the end of the line.
    if v < buf.len() && matches!(buf[v], b'"' | b'\'' | b',') {
        return Some((k..key_end, value, v + 1));
    }
    while v < buf.len() && blank(buf[v]) {
        v += 1;
    }
    (v == buf.len() || buf[v] == b'\n').then_some((k..key_end, value, v))
}

/// A decoded value and where its encoded form is.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// Byte offset of the encoded value in the scanned buffer.
    pub start: usize,
    /// End of the encoded value.
    pub end: usize,
    /// `key: <decoded>` text to scan.
    pub text: Vec<u8>,
}

/// Whether a buffer is worth the decoding pass: config-like files, stdin, and any file that
/// declares a Kubernetes Secret.
pub(crate) fn worth_decoding(path: &str, buf: &[u8]) -> bool {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    if name == "-" || name.starts_with(".env") {
        return true;
    }
    if let Some((_, ext)) = name.rsplit_once('.')
        && CONFIG_EXTENSIONS
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e))
    {
        return true;
    }
    memchr::memmem::find(buf, b"kind: Secret").is_some()
}

/// Every value that decodes to printable text, one at a time (a file of a million values is
/// never held decoded at once).
pub(crate) fn base64_values(buf: &[u8]) -> impl Iterator<Item = Decoded> + '_ {
    values(buf).filter_map(|(key, val)| {
        let text = decode_printable(&buf[val.clone()])?;
        let mut synth = Vec::with_capacity(key.len() + 2 + text.len());
        synth.extend_from_slice(&buf[key]);
        synth.extend_from_slice(b": ");
        synth.extend_from_slice(&text);
        Some(Decoded {
            start: val.start,
            end: val.end,
            text: synth,
        })
    })
}

/// How much of a buffer's head decides whether unmarked UTF-16 text is UTF-16.
const UTF16_PROBE: usize = 8192;

/// UTF-16 text (little- or big-endian, with or without a byte-order mark) as UTF-8, or `None`
/// when `buf` is not UTF-16 text. Without a mark, the head must look like UTF-16 text: most
/// code units with a zero high byte on one side only, few on the other, and nearly every unit a
/// character.
pub(crate) fn utf16_text(buf: &[u8]) -> Option<Vec<u8>> {
    let (body, little) = match buf {
        [0xFF, 0xFE, rest @ ..] => (rest, true),
        [0xFE, 0xFF, rest @ ..] => (rest, false),
        _ => {
            let head = &buf[..buf.len().min(UTF16_PROBE) & !1];
            if head.len() < 16 {
                return None;
            }
            let units = head.len() / 2;
            let (even, odd) = zero_bytes_by_parity(head);
            if odd * 10 >= units * 6 && even * 20 <= units {
                (buf, true)
            } else if even * 10 >= units * 6 && odd * 20 <= units {
                (buf, false)
            } else {
                return None;
            }
        }
    };
    let units = body.chunks_exact(2).map(|c| {
        if little {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let mut out = Vec::with_capacity(body.len() / 2 + 16);
    let mut bad = 0usize;
    let mut total = 0usize;
    let mut tmp = [0u8; 4];
    for ch in char::decode_utf16(units) {
        total += 1;
        let ch = ch.unwrap_or_else(|_| {
            bad += 1;
            char::REPLACEMENT_CHARACTER
        });
        if ch == '\0' || (ch.is_control() && !matches!(ch, '\n' | '\r' | '\t')) {
            bad += 1;
        }
        out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
    (bad * 20 <= total.max(1)).then_some(out)
}

/// How many bytes of `head` are zero at even offsets and at odd offsets, eight bytes at a time.
fn zero_bytes_by_parity(head: &[u8]) -> (usize, usize) {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // The high bit of each byte of a word, at even and at odd offsets (little-endian).
    const EVEN: u64 = 0x0080_0080_0080_0080;
    const ODD: u64 = 0x8000_8000_8000_8000;
    let (mut even, mut odd) = (0, 0);
    let mut words = head.chunks_exact(8);
    for w in words.by_ref() {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        // High bit set exactly in the zero bytes (no carry crosses a byte).
        let zero = !(((x & LOW7) + LOW7) | x) & !LOW7;
        even += (zero & EVEN).count_ones() as usize;
        odd += (zero & ODD).count_ones() as usize;
    }
    let done = head.len() - words.remainder().len();
    for (i, &b) in words.remainder().iter().enumerate() {
        if b == 0 {
            if (done + i).is_multiple_of(2) {
                even += 1;
            } else {
                odd += 1;
            }
        }
    }
    (even, odd)
}

/// Decode standard base64 (padded or not) when the result is mostly printable text.
fn decode_printable(val: &[u8]) -> Option<Vec<u8>> {
    let engine = if val.ends_with(b"=") {
        &base64::engine::general_purpose::STANDARD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    let text = engine.decode(val).ok()?;
    if text.len() < 8 {
        return None;
    }
    let printable = text
        .iter()
        .filter(|&&b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r' || b == b'\t')
        .count();
    (printable * 100 >= text.len() * 95).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn decodes_kubernetes_secret_data() {
        let doc = format!(
            "apiVersion: v1\nkind: Secret\ndata:\n  password: {}\n  other: {}\n",
            b64("hunter2-but-longer"),
            "AAECAwQFBgcICQoLDA0ODw=="
        );
        let found: Vec<Decoded> = base64_values(doc.as_bytes()).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].text, b"password: hunter2-but-longer");
        assert_eq!(
            &doc.as_bytes()[found[0].start..found[0].end],
            b64("hunter2-but-longer").as_bytes()
        );
    }

    #[test]
    fn utf16_in_both_orders_with_and_without_a_mark() {
        let text = "token = ghp_x\r\nname: \u{e9}t\u{e9} \u{1F511}\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for (bytes, mark) in [(le, [0xFF, 0xFE]), (be, [0xFE, 0xFF])] {
            assert_eq!(utf16_text(&bytes).unwrap(), text.as_bytes());
            let marked = [&mark[..], &bytes].concat();
            assert_eq!(utf16_text(&marked).unwrap(), text.as_bytes());
        }
        // Binary with NULs is not UTF-16 text.
        let binary: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8 & 0xF0).collect();
        assert!(utf16_text(&binary).is_none());
        assert!(utf16_text(b"plain ascii text here, no nuls").is_none());
    }

    /// The pattern [`values`] reads by hand.
    const VALUE: &str = r#"(?m)([A-Za-z0-9_.\-]{1,64})["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9+/]{12,}={0,2})(?:["',]|[ \t]*$)"#;

    #[test]
    fn values_are_what_the_pattern_finds() {
        let re = regex::bytes::Regex::new(VALUE).unwrap();
        let by_pattern = |buf: &[u8]| -> Vec<_> {
            re.captures_iter(buf)
                .map(|c| (c.get(1).unwrap().range(), c.get(2).unwrap().range()))
                .collect()
        };
        let mut seed = 0x853c49e6748fea9bu64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Pieces that start, end and break keys and values, in random order.
        let pieces: [&[u8]; 16] = [
            b"a",
            b"Zq9",
            b"key",
            b"_.-",
            b"+/",
            b"\"",
            b"'",
            b" ",
            b"\t",
            b":",
            b"=",
            b"==",
            b",",
            b"\n",
            b"\r\n",
            b"QUJDREVGR0hJSktM",
        ];
        let mut found = 0;
        for round in 0..20000 {
            let mut buf = Vec::new();
            // Most texts are short; some cross several of the 64-byte blocks runs are found in.
            let pieces_in = if round % 4 == 0 { 200 } else { 24 };
            for _ in 0..(next() % pieces_in) {
                buf.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if round % 50 == 0 {
                // Keys longer than 64 bytes.
                buf.splice(0..0, std::iter::repeat_n(b'k', 70 + round % 7));
            }
            let mine: Vec<_> = values(&buf).collect();
            found += mine.len();
            assert_eq!(
                mine,
                by_pattern(&buf),
                "{:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        assert!(found > 300, "only {found} values in the random texts");
        for text in [
            &b"password: QUJDREVGR0hJSktMTU5P\n"[..],
            b"\"pw\": \"QUJDREVGR0hJSktMTU5P==\", x=QUJDREVGR0hJSktM===\n",
            b"k=QUJDREVGR0hJSktM=next=QUJDREVGR0hJSktMTU5P \t",
        ] {
            assert_eq!(values(text).collect::<Vec<_>>(), by_pattern(text));
        }
    }

    #[test]
    fn zero_bytes_are_counted_by_parity() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        for len in 0..300 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    [0u8, 0x80, 0x01, 0xFF, 0x7F, b'a'][(seed % 6) as usize]
                })
                .collect();
            let count = |p: usize| buf.iter().skip(p).step_by(2).filter(|&&b| b == 0).count();
            assert_eq!(zero_bytes_by_parity(&buf), (count(0), count(1)), "{buf:?}");
        }
    }

    #[test]
    fn hex_and_binary_are_not_text() {
        assert!(decode_printable(b"0123456789abcdef0123456789abcdef").is_none());
    }

    #[test]
    fn gating() {
        assert!(worth_decoding("k8s/secret.yaml", b""));
        assert!(worth_decoding("deploy/.env.prod", b""));
        assert!(!worth_decoding("src/main.rs", b"fn main() {}"));
        assert!(worth_decoding("manifest", b"kind: Secret"));
    }
}
