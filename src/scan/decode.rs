//! Encoded text: UTF-16 files, and base64-encoded values (Kubernetes Secret `data:` entries and
//! similar `key: <base64>` values).
//!
//! Bytes in, decoded candidates out. Each candidate is re-presented as `key: <decoded>` so that
//! rules keyed on the name (`password: …`) still apply, and remembers where the encoded value
//! sits so findings point at it.

use std::sync::LazyLock;

use base64::Engine as _;
use regex::bytes::Regex;

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

/// `key: value`, `key=value`, `"key": "value"` with a base64-looking value.
static VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?m)([A-Za-z0-9_.\-]{1,64})["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9+/]{12,}={0,2})(?:["',]|[ \t]*$)"#)
        .expect("static regex")
});

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
    VALUE.captures_iter(buf).filter_map(|caps| {
        let (key, val) = (caps.get(1)?, caps.get(2)?);
        let text = decode_printable(val.as_bytes())?;
        let mut synth = Vec::with_capacity(key.len() + 2 + text.len());
        synth.extend_from_slice(key.as_bytes());
        synth.extend_from_slice(b": ");
        synth.extend_from_slice(&text);
        Some(Decoded {
            start: val.start(),
            end: val.end(),
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
            let zeros = |parity: usize| {
                head.iter()
                    .skip(parity)
                    .step_by(2)
                    .filter(|&&b| b == 0)
                    .count()
            };
            let (even, odd) = (zeros(0), zeros(1));
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
