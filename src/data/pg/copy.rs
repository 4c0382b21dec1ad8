//! PostgreSQL's COPY text format: bytes in, rows of optional field bytes out, and back.
//!
//! Rows end at a newline; fields are separated by tabs; `\N` is NULL; inside a field a backslash
//! starts an escape: `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\v`, `\` + 1–3 octal digits, `\x` + 1–2
//! hex digits, and any other character stands for itself. Writing produces what
//! `COPY … TO STDOUT` produces, so a row that is read and written unchanged is byte-identical.
//! Nothing here knows about connections; the codec works on any buffer.

use std::fmt;

/// A field: `None` is SQL NULL.
pub type Field = Option<Vec<u8>>;

/// A malformed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyError {
    /// 0-based field index.
    pub field: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "COPY field {}: {}", self.field + 1, self.message)
    }
}

impl std::error::Error for CopyError {}

fn octal(b: u8) -> Option<u8> {
    (b'0'..=b'7').contains(&b).then(|| b - b'0')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decode one field's text (between tabs).
/// Decode one raw field (the bytes between tabs); `index` is for the error.
pub fn decode_field(raw: &[u8], index: usize) -> Result<Field, CopyError> {
    if raw == b"\\N" {
        return Ok(None);
    }
    if memchr::memchr(b'\\', raw).is_none() {
        return Ok(Some(raw.to_vec()));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            return Err(CopyError {
                field: index,
                message: "ends with a lone backslash",
            });
        };
        i += 2;
        match e {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'x' => match raw.get(i).copied().and_then(hex) {
                Some(h1) => {
                    i += 1;
                    let mut v = h1;
                    if let Some(h2) = raw.get(i).copied().and_then(hex) {
                        v = v * 16 + h2;
                        i += 1;
                    }
                    out.push(v);
                }
                // `\x` without a hex digit is an `x`, as PostgreSQL reads it.
                None => out.push(b'x'),
            },
            d if octal(d).is_some() => {
                let mut v = u32::from(d - b'0');
                for _ in 0..2 {
                    match raw.get(i).copied().and_then(octal) {
                        Some(o) => {
                            v = v * 8 + u32::from(o);
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
    Ok(Some(out))
}

/// Parse one row (without its trailing newline).
pub fn parse_row(line: &[u8]) -> Result<Vec<Field>, CopyError> {
    line.split(|&b| b == b'\t')
        .enumerate()
        .map(|(i, raw)| decode_field(raw, i))
        .collect()
}

/// Append one row, newline included, in the form `COPY … TO STDOUT` writes it.
pub fn write_row<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = Option<&'a [u8]>>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        encode_field(out, f);
    }
    out.push(b'\n');
}

/// Append one field in COPY text form (`\N` for NULL, specials escaped).
pub fn encode_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    let Some(bytes) = field else {
        out.extend_from_slice(b"\\N");
        return;
    };
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x0b => b"\\v",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Splits a stream of COPY text into rows as chunks arrive (a raw newline always ends a row:
/// newlines inside data are escaped).
#[derive(Debug, Default)]
pub struct RowSplitter {
    pending: Vec<u8>,
}

impl RowSplitter {
    /// Feed a chunk; `each` gets every complete row (without its newline).
    pub fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(&[u8])) {
        let mut data = chunk;
        if !self.pending.is_empty() {
            match memchr::memchr(b'\n', data) {
                None => {
                    self.pending.extend_from_slice(data);
                    return;
                }
                Some(i) => {
                    self.pending.extend_from_slice(&data[..i]);
                    each(&self.pending);
                    self.pending.clear();
                    data = &data[i + 1..];
                }
            }
        }
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', data) {
            each(&data[start..i]);
            start = i + 1;
        }
        self.pending.extend_from_slice(&data[start..]);
    }

    /// Bytes after the last newline (a row without its newline is incomplete).
    pub fn remainder(&self) -> &[u8] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        write_row(&mut out, fields.iter().copied());
        out
    }

    #[test]
    fn escapes_and_nulls() {
        let r = row(&[
            Some(b"a\tb"),
            None,
            Some(b"line1\nline2\r"),
            Some(b"back\\slash"),
            Some(b""),
            Some("ünï".as_bytes()),
        ]);
        assert_eq!(
            r,
            "a\\tb\t\\N\tline1\\nline2\\r\tback\\\\slash\t\tünï\n".as_bytes()
        );
        let parsed = parse_row(&r[..r.len() - 1]).unwrap();
        assert_eq!(parsed[0].as_deref(), Some(&b"a\tb"[..]));
        assert_eq!(parsed[1], None);
        assert_eq!(parsed[2].as_deref(), Some(&b"line1\nline2\r"[..]));
        assert_eq!(parsed[3].as_deref(), Some(&b"back\\slash"[..]));
        assert_eq!(parsed[4].as_deref(), Some(&b""[..]));
    }

    #[test]
    fn reads_every_escape_postgres_accepts() {
        let f = parse_row(b"\\b\\f\\v\\101\\x41\\x4a\\7\\xZ\\q").unwrap();
        assert_eq!(f[0].as_deref(), Some(&b"\x08\x0c\x0bAAJ\x07xZq"[..]));
        assert!(parse_row(b"abc\\").is_err());
        // A literal "\N" inside a longer field is not NULL.
        assert_eq!(
            parse_row(b"\\\\N").unwrap()[0].as_deref(),
            Some(&b"\\N"[..])
        );
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (1..=255u8).collect();
        let r = row(&[Some(&all), None, Some(b"\\N")]);
        let back = parse_row(&r[..r.len() - 1]).unwrap();
        assert_eq!(back[0].as_deref(), Some(&all[..]));
        assert_eq!(back[1], None);
        assert_eq!(back[2].as_deref(), Some(&b"\\N"[..]));
    }

    #[test]
    fn splitter_handles_rows_across_chunks() {
        let mut s = RowSplitter::default();
        let mut rows = Vec::new();
        for chunk in [&b"a\tb\nc"[..], b"d\te", b"f\n", b"\n", b"tail"] {
            s.feed(chunk, |r| rows.push(r.to_vec()));
        }
        assert_eq!(
            rows,
            vec![b"a\tb".to_vec(), b"cd\tef".to_vec(), b"".to_vec()]
        );
        assert_eq!(s.remainder(), b"tail");
    }
}
