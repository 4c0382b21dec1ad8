//! PostgreSQL's COPY binary format, for tables whose columns all have a portable binary form.
//!
//! A stream is a 19-byte header (signature, flags, extension length) plus the extension, then
//! tuples (a big-endian `int16` field count, then per field an `int32` length, `-1` for NULL, and
//! that many bytes), then the trailer (`int16` −1). Binary COPY skips the text conversions on
//! both servers, so a table moves faster; it is only used between servers of one major version
//! and one encoding, for built-in types (a type of the database's own, such as an enum or a
//! domain, embeds OIDs or is not built in: it travels as text). Masked columns are decoded from
//! their binary form only for string and integer types ([`Wire`]). Nothing here knows about
//! connections.

pub(crate) use crate::data::pg::copy::CopyError;

/// The signature every binary COPY stream starts with.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// How a column can travel in COPY's binary format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wire {
    /// Only as text: a type of the database's own (enum, domain, composite, extension type) or
    /// one without binary I/O.
    #[default]
    Text,
    /// A built-in type: its binary bytes pass through unchanged (never decoded).
    Builtin,
    /// A built-in string type (`text`, `varchar`, `char`, `name`): binary is the text itself.
    String,
    /// A built-in integer of this many bytes (2, 4 or 8).
    Int(u8),
}

impl Wire {
    /// What the catalog's wire class name (see `catalog::load`) means.
    pub fn from_class(class: &str) -> Wire {
        match class {
            "builtin" => Wire::Builtin,
            "string" => Wire::String,
            "int2" => Wire::Int(2),
            "int4" => Wire::Int(4),
            "int8" => Wire::Int(8),
            _ => Wire::Text,
        }
    }

    /// Whether a column can go binary: kept, any built-in type; masked, a type whose value
    /// sluice can read and write.
    pub fn carries(self, masked: bool) -> bool {
        match self {
            Wire::Text => false,
            Wire::Builtin => !masked,
            Wire::String | Wire::Int(_) => true,
        }
    }

    /// The value's text, from its binary form.
    pub fn decode(self, raw: &[u8]) -> Result<String, &'static str> {
        match self {
            Wire::Int(n) => {
                let v = match (n, raw.len()) {
                    (2, 2) => i16::from_be_bytes([raw[0], raw[1]]) as i64,
                    (4, 4) => i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as i64,
                    (8, 8) => i64::from_be_bytes(raw.try_into().unwrap_or([0; 8])),
                    _ => return Err("an integer of the wrong size"),
                };
                Ok(v.to_string())
            }
            _ => String::from_utf8(raw.to_vec()).map_err(|_| "not UTF-8 text"),
        }
    }

    /// A (masked) value's text into its binary form, length word first, onto `out`.
    pub fn encode(self, text: &str, out: &mut Vec<u8>) -> Result<(), &'static str> {
        match self {
            Wire::Int(n) => {
                let v: i64 = text
                    .trim()
                    .parse()
                    .map_err(|_| "the masked value is not an integer")?;
                let out_of_range = "the masked value is out of the column's integer range";
                match n {
                    2 => {
                        let v = i16::try_from(v).map_err(|_| out_of_range)?;
                        out.extend_from_slice(&2i32.to_be_bytes());
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    4 => {
                        let v = i32::try_from(v).map_err(|_| out_of_range)?;
                        out.extend_from_slice(&4i32.to_be_bytes());
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                    _ => {
                        out.extend_from_slice(&8i32.to_be_bytes());
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                }
                Ok(())
            }
            _ => {
                let len = i32::try_from(text.len()).map_err(|_| "the masked value is too long")?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(text.as_bytes());
                Ok(())
            }
        }
    }
}

/// The header sluice writes: signature, no flags (no OIDs), no extension.
pub(crate) fn header() -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.extend_from_slice(&0i32.to_be_bytes());
    h.extend_from_slice(&0i32.to_be_bytes());
    h
}

/// The trailer that ends a stream.
pub(crate) const TRAILER: [u8; 2] = [0xff, 0xff];

fn error(message: &'static str) -> CopyError {
    CopyError { field: 0, message }
}

/// The length of a complete header at the start of `buf` (signature, flags, extension), `None`
/// when more bytes are needed.
pub(crate) fn header_len(buf: &[u8]) -> Result<Option<usize>, CopyError> {
    let n = buf.len().min(11);
    if buf[..n] != SIGNATURE[..n] {
        return Err(error("the binary COPY signature is missing"));
    }
    if buf.len() < 19 {
        return Ok(None);
    }
    let flags = u32::from_be_bytes([buf[11], buf[12], buf[13], buf[14]]);
    if flags & (1 << 16) != 0 {
        return Err(error("binary COPY with OIDs is not supported"));
    }
    let ext = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
    Ok((buf.len() >= 19 + ext).then_some(19 + ext))
}

/// One step of walking tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A complete tuple ends at this offset.
    Tuple(usize),
    /// The trailer: the stream ends here (offset just past it).
    End(usize),
    /// The bytes stop inside a tuple.
    More,
}

/// The tuple starting at `at` in `buf`, which must hold `fields` fields.
pub(crate) fn step(buf: &[u8], at: usize, fields: usize) -> Result<Step, CopyError> {
    let Some(count) = buf.get(at..at + 2) else {
        return Ok(Step::More);
    };
    let count = i16::from_be_bytes([count[0], count[1]]);
    if count == -1 {
        return Ok(Step::End(at + 2));
    }
    if count < 0 || count as usize != fields {
        return Err(error("a binary COPY tuple has the wrong number of fields"));
    }
    let mut p = at + 2;
    for _ in 0..fields {
        let Some(len) = buf.get(p..p + 4) else {
            return Ok(Step::More);
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        p += 4;
        if len > 0 {
            p += len as usize;
        } else if len < -1 {
            return Err(error("a binary COPY field has a negative length"));
        }
    }
    Ok(if p <= buf.len() {
        Step::Tuple(p)
    } else {
        Step::More
    })
}

/// The fields of the complete tuple at the start of `tuple` (`None`: NULL), in order.
#[cfg(test)]
pub(crate) fn fields(tuple: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let count = tuple
        .get(..2)
        .map_or(0, |c| i16::from_be_bytes([c[0], c[1]]).max(0) as usize);
    let mut p = 2;
    (0..count).map(move |_| {
        let len = i32::from_be_bytes([tuple[p], tuple[p + 1], tuple[p + 2], tuple[p + 3]]);
        p += 4;
        if len < 0 {
            None
        } else {
            let v = &tuple[p..p + len as usize];
            p += len as usize;
            Some(v)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut t = (fields.len() as i16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => t.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    t.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    t.extend_from_slice(v);
                }
            }
        }
        t
    }

    #[test]
    fn walks_tuples_across_any_cut() {
        let mut stream = header();
        let a = tuple(&[Some(b"one"), None]);
        let b = tuple(&[Some(b""), Some(&[0, 1, 2, 255])]);
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&TRAILER);
        let h = header_len(&stream).unwrap().unwrap();
        assert_eq!(h, 19);
        for cut in 0..stream.len() {
            let part = &stream[..cut];
            let mut at = match header_len(part).unwrap() {
                Some(h) => h,
                None => continue,
            };
            let mut seen = 0;
            loop {
                match step(part, at, 2).unwrap() {
                    Step::Tuple(end) => {
                        seen += 1;
                        at = end;
                    }
                    Step::End(end) => {
                        assert_eq!(end, stream.len());
                        assert_eq!(seen, 2);
                        break;
                    }
                    Step::More => {
                        assert!(cut < stream.len());
                        assert!(seen <= 2);
                        break;
                    }
                }
            }
        }
        let got: Vec<Option<&[u8]>> = fields(&b).collect();
        assert_eq!(got, vec![Some(&b""[..]), Some(&[0u8, 1, 2, 255][..])]);
        assert_eq!(fields(&a).nth(1), Some(None));
    }

    #[test]
    fn rejects_what_is_not_binary_copy() {
        assert!(header_len(b"1\tabc\n").is_err());
        assert_eq!(header_len(b"PGCO").unwrap(), None);
        assert!(step(&tuple(&[Some(b"x")]), 0, 2).is_err());
        let mut bad = 1i16.to_be_bytes().to_vec();
        bad.extend_from_slice(&(-7i32).to_be_bytes());
        assert!(step(&bad, 0, 1).is_err());
    }

    #[test]
    fn integers_and_strings_round_trip_through_text() {
        for (wire, raw) in [
            (Wire::Int(2), (-32768i16).to_be_bytes().to_vec()),
            (Wire::Int(4), 123456i32.to_be_bytes().to_vec()),
            (Wire::Int(8), i64::MAX.to_be_bytes().to_vec()),
            (Wire::String, "ünï\tcode".as_bytes().to_vec()),
        ] {
            let text = wire.decode(&raw).unwrap();
            let mut out = Vec::new();
            wire.encode(&text, &mut out).unwrap();
            assert_eq!(&out[4..], &raw[..], "{wire:?}");
            assert_eq!(
                i32::from_be_bytes(out[..4].try_into().unwrap()) as usize,
                raw.len()
            );
        }
        assert_eq!(Wire::Int(4).decode(&[0, 0, 0, 42]).unwrap(), "42");
        let mut out = Vec::new();
        assert!(Wire::Int(2).encode("70000", &mut out).is_err());
        assert!(Wire::Int(4).encode("4.5", &mut out).is_err());
        assert!(Wire::Int(4).decode(&[1, 2]).is_err());
        assert!(Wire::String.decode(&[0xff]).is_err());
        assert!(Wire::Builtin.carries(false) && !Wire::Builtin.carries(true));
        assert!(!Wire::Text.carries(false) && Wire::String.carries(true));
    }
}
