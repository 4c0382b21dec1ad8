//! Row masking, the pure core of a refresh's stream: a batch of COPY rows (text or binary) in,
//! the same rows with the planned columns masked out, in parallel on the rayon pool. Unique
//! columns re-draw collisions, values are fitted to `varchar(n)`, templates see their row's
//! masked values. No database here.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use crate::data::mask::{MaskKey, Transform};
use crate::data::pg::binary::{self, Step, Wire};
use crate::data::pg::copy::{decode_field, encode_field};

/// How one column is treated.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// The column.
    pub name: String,
    /// Its transform (None: copied as is, declared safe).
    pub transform: Option<Transform>,
    /// Determinism domain (values sharing it mask alike across tables).
    pub domain: String,
    /// Masked values must stay distinct (a unique key): a collision is re-drawn.
    pub unique: bool,
    /// The column's length limit (`varchar(n)`, `char(n)`): longer masked values are fitted.
    pub max_len: Option<usize>,
    /// How it can travel in binary COPY.
    pub wire: Wire,
}

/// Whether a table with these columns moves as binary COPY when the servers allow it.
pub fn travels_binary(columns: &[ColumnPlan]) -> bool {
    !columns.is_empty()
        && columns.iter().all(|c| {
            !matches!(c.transform, Some(Transform::Template(_)))
                && c.wire.carries(c.transform.is_some())
        })
}

/// Masked values already given out in one unique column, as 64-bit digests, sharded so that
/// parallel batches rarely wait on each other.
#[derive(Default)]
pub(crate) struct Seen {
    shards: [Mutex<HashSet<u64>>; 16],
}

impl Seen {
    /// Record `v`; false if it was already there.
    fn insert(&self, v: &[u8]) -> bool {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        v.hash(&mut h);
        let d = h.finish();
        match self.shards[(d >> 60) as usize].lock() {
            Ok(mut s) => s.insert(d),
            Err(p) => p.into_inner().insert(d),
        }
    }
}

/// Shorten a masked value to `max` characters: an e-mail keeps its domain and shortens its
/// local part (still a valid-looking address); anything else is cut.
pub(crate) fn fit_length(t: &Transform, v: String, max: usize) -> String {
    if let (Transform::Email, Some((local, domain))) = (t, v.split_once('@'))
        && domain.len() + 2 <= max
    {
        let keep = max - domain.len() - 1;
        return format!("{}@{domain}", &local[..keep.min(local.len())]);
    }
    v.chars().take(max).collect()
}

/// Everything a masking batch needs, shared by all batches of one table.
pub(crate) struct Masker {
    columns: Vec<ColumnPlan>,
    key: MaskKey,
    seen: Vec<Option<Seen>>,
    templates: bool,
}

impl Masker {
    pub(crate) fn new(columns: &[ColumnPlan], key: &[u8]) -> Masker {
        Masker {
            seen: columns
                .iter()
                .map(|c| (c.unique && c.transform.is_some()).then(Seen::default))
                .collect(),
            columns: columns.to_vec(),
            key: MaskKey::new(key),
            templates: columns
                .iter()
                .any(|c| matches!(c.transform, Some(Transform::Template(_)))),
        }
    }

    /// Mask one value of column `i`, re-drawing (domain `d#1`, `d#2`, …) while a unique column
    /// already holds the result.
    fn value(&self, i: usize, t: &Transform, text: &str) -> Result<Option<String>, String> {
        let c = &self.columns[i];
        let fit = |v: Option<String>| match (v, c.max_len) {
            (Some(v), Some(max)) if v.chars().count() > max => Some(fit_length(t, v, max)),
            (v, _) => v,
        };
        let mut out = fit(t
            .apply(&self.key, &c.domain, text)
            .map_err(|e| format!("column {}: {e}", c.name))?);
        if let (Some(seen), Some(v)) = (&self.seen[i], &out) {
            let mut attempt = 0;
            let mut current = v.clone();
            while !seen.insert(current.as_bytes()) {
                attempt += 1;
                if attempt > 64 {
                    return Err(format!(
                        "column {}: {} cannot produce enough distinct values for this unique column",
                        c.name,
                        crate::data::mask::parse::transform_name(t)
                    ));
                }
                current = fit(t
                    .apply(&self.key, &format!("{}#{attempt}", c.domain), text)
                    .map_err(|e| format!("column {}: {e}", c.name))?)
                .unwrap_or_default();
            }
            out = Some(current);
        }
        Ok(out)
    }

    /// Mask one COPY row (without its newline) into `out`, newline included. Fields without a
    /// transform are copied as raw bytes, never decoded.
    fn row(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if self.templates {
            return self.row_with_templates(line, out);
        }
        let mut n = 0;
        for (i, raw) in line.split(|&b| b == b'\t').enumerate() {
            if i >= self.columns.len() {
                return Err(format!(
                    "COPY row has more than the {} planned fields",
                    self.columns.len()
                ));
            }
            if i > 0 {
                out.push(b'\t');
            }
            n = i + 1;
            self.field(i, raw, out)?;
        }
        if n != self.columns.len() {
            return Err(format!(
                "COPY row has {n} fields, expected {}",
                self.columns.len()
            ));
        }
        out.push(b'\n');
        Ok(())
    }

    /// One field of column `i` from its raw COPY bytes into `out`, masked if planned.
    fn field(&self, i: usize, raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let c = &self.columns[i];
        let Some(t) = &c.transform else {
            out.extend_from_slice(raw);
            return Ok(());
        };
        match decode_field(raw, i).map_err(|e| e.to_string())? {
            // NULL stays NULL.
            None => out.extend_from_slice(b"\\N"),
            Some(bytes) => {
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| format!("column {} is not UTF-8 text", c.name))?;
                let masked = self.value(i, t, text)?;
                encode_field(out, masked.as_deref().map(str::as_bytes));
            }
        }
        Ok(())
    }

    /// A row with template columns: every other field first, then the templates from those
    /// fields' masked values.
    fn row_with_templates(&self, line: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let raws: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        if raws.len() != self.columns.len() {
            return Err(format!(
                "COPY row has {} fields, expected {}",
                raws.len(),
                self.columns.len()
            ));
        }
        let mut fields: Vec<Vec<u8>> = Vec::with_capacity(raws.len());
        for (i, raw) in raws.iter().enumerate() {
            let mut f = Vec::new();
            if !matches!(self.columns[i].transform, Some(Transform::Template(_))) {
                self.field(i, raw, &mut f)?;
            }
            fields.push(f);
        }
        for (i, c) in self.columns.iter().enumerate() {
            let Some(Transform::Template(tpl)) = &c.transform else {
                continue;
            };
            if raws[i] == b"\\N" {
                fields[i] = b"\\N".to_vec();
                continue;
            }
            let mut missing = None;
            let rendered = crate::data::mask::structured::render_template(tpl, &mut |name| {
                let Some(j) = self.columns.iter().position(|c| c.name == name) else {
                    missing = Some(name.to_string());
                    return None;
                };
                decode_field(&fields[j], j)
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            })
            .map_err(|e| format!("column {}: {e}", c.name))?;
            if let Some(m) = missing {
                return Err(format!(
                    "column {}: the template names `{m}`, which is not copied",
                    c.name
                ));
            }
            let mut f = Vec::new();
            encode_field(&mut f, rendered.as_deref().map(str::as_bytes));
            fields[i] = f;
        }
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            out.extend_from_slice(f);
        }
        out.push(b'\n');
        Ok(())
    }

    /// One binary COPY tuple: fields without a transform are copied as raw bytes; masked
    /// ones are decoded by their [`Wire`], masked and encoded back.
    fn tuple(&self, tuple: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(&tuple[..2]);
        let mut p = 2;
        for (i, c) in self.columns.iter().enumerate() {
            let len = i32::from_be_bytes([tuple[p], tuple[p + 1], tuple[p + 2], tuple[p + 3]]);
            let end = p + 4 + len.max(0) as usize;
            match &c.transform {
                // NULL stays NULL.
                Some(t) if len >= 0 => {
                    let text = c
                        .wire
                        .decode(&tuple[p + 4..end])
                        .map_err(|e| format!("column {}: {e}", c.name))?;
                    match self.value(i, t, &text)? {
                        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                        Some(v) => c
                            .wire
                            .encode(&v, out)
                            .map_err(|e| format!("column {}: {e}", c.name))?,
                    }
                }
                _ => out.extend_from_slice(&tuple[p..end]),
            }
            p = end;
        }
        Ok(())
    }

    /// Mask a batch of whole rows (text: each ending in a newline; binary: whole tuples) on the
    /// rayon pool, in parallel slices, preserving order.
    pub(crate) fn batch(&self, input: &[u8], binary: bool) -> Result<Vec<u8>, String> {
        use rayon::prelude::*;
        const SLICE: usize = 64 << 10;
        let n = self.columns.len();
        // Cut at row ends near every SLICE bytes.
        let mut cuts = vec![0];
        let mut at = 0;
        if binary {
            let mut last = 0;
            while let Step::Tuple(end) = binary::step(input, at, n).map_err(|e| e.to_string())? {
                at = end;
                if at - last >= SLICE {
                    cuts.push(at);
                    last = at;
                }
            }
        } else {
            while at + SLICE < input.len() {
                match memchr::memchr(b'\n', &input[at + SLICE..]) {
                    Some(i) => {
                        at = at + SLICE + i + 1;
                        cuts.push(at);
                    }
                    None => break,
                }
            }
        }
        if *cuts.last().unwrap_or(&0) != input.len() {
            cuts.push(input.len());
        }
        let parts: Vec<Result<Vec<u8>, String>> = cuts
            .par_windows(2)
            .map(|w| {
                let slice = &input[w[0]..w[1]];
                let mut out = Vec::with_capacity(slice.len() + slice.len() / 4);
                if binary {
                    let mut at = 0;
                    while let Ok(Step::Tuple(end)) = binary::step(slice, at, n) {
                        self.tuple(&slice[at..end], &mut out)?;
                        at = end;
                    }
                } else {
                    for line in slice
                        .strip_suffix(b"\n")
                        .unwrap_or(slice)
                        .split(|&b| b == b'\n')
                    {
                        self.row(line, &mut out)?;
                    }
                }
                Ok(out)
            })
            .collect();
        let mut out = Vec::with_capacity(input.len() + input.len() / 4);
        for p in parts {
            out.extend_from_slice(&p?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: Option<Transform>, unique: bool) -> ColumnPlan {
        ColumnPlan {
            name: name.into(),
            domain: t
                .as_ref()
                .map(|t| t.default_domain().to_string())
                .unwrap_or_default(),
            transform: t,
            unique,
            max_len: None,
            wire: Wire::String,
        }
    }

    #[test]
    fn batches_mask_only_planned_fields_and_keep_raw_bytes_elsewhere() {
        let m = Masker::new(
            &[
                col("id", None, false),
                col("email", Some(Transform::Email), true),
                col("note", None, false),
            ],
            b"k",
        );
        let mut input = Vec::new();
        for i in 0..5000 {
            input.extend_from_slice(
                format!("{i}\tUser{i}@Corp.example\tline\\none\\ttab \\N\n").as_bytes(),
            );
        }
        input.extend_from_slice(b"5000\t\\N\t\\N\n");
        let out = m.batch(&input, false).unwrap();
        let lines: Vec<&[u8]> = out
            .strip_suffix(b"\n")
            .unwrap()
            .split(|&b| b == b'\n')
            .collect();
        assert_eq!(lines.len(), 5001);
        assert!(lines[7].starts_with(b"7\t"));
        assert!(lines[7].ends_with(b"\tline\\none\\ttab \\N"));
        assert!(!String::from_utf8_lossy(&out).contains("Corp.example"));
        assert_eq!(lines[5000], b"5000\t\\N\t\\N");
        let emails: HashSet<&[u8]> = lines
            .iter()
            .map(|l| l.split(|&b| b == b'\t').nth(1).unwrap())
            .collect();
        assert_eq!(emails.len(), 5001);
        // Deterministic: a fresh masker gives the same bytes.
        let again = Masker::new(&m.columns, b"k").batch(&input, false).unwrap();
        assert_eq!(out, again);
    }

    #[test]
    fn binary_batches_mask_like_text_batches() {
        let mut cols = vec![
            col("id", None, false),
            col("email", Some(Transform::Email), true),
            col("note", None, false),
            col("n", Some(Transform::NumberNoise { percent: 10.0 }), false),
        ];
        cols[0].wire = Wire::Int(4);
        cols[2].wire = Wire::Builtin;
        cols[3].wire = Wire::Int(8);
        assert!(travels_binary(&cols));
        let m = Masker::new(&cols, b"k");
        let (mut text, mut bin) = (Vec::new(), Vec::new());
        for i in 0..5000i64 {
            let email = format!("User{i}@Corp.example");
            let null = i % 7 == 0;
            text.extend_from_slice(
                format!(
                    "{i}\t{}\tnote {i}\t{}\n",
                    if null {
                        "\\N".to_string()
                    } else {
                        email.clone()
                    },
                    i * 1000 - 7
                )
                .as_bytes(),
            );
            bin.extend_from_slice(&4i16.to_be_bytes());
            bin.extend_from_slice(&4i32.to_be_bytes());
            bin.extend_from_slice(&(i as i32).to_be_bytes());
            if null {
                bin.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                bin.extend_from_slice(&(email.len() as i32).to_be_bytes());
                bin.extend_from_slice(email.as_bytes());
            }
            let note = format!("note {i}");
            bin.extend_from_slice(&(note.len() as i32).to_be_bytes());
            bin.extend_from_slice(note.as_bytes());
            bin.extend_from_slice(&8i32.to_be_bytes());
            bin.extend_from_slice(&(i * 1000 - 7).to_be_bytes());
        }
        let from_text = m.batch(&text, false).unwrap();
        let from_binary = Masker::new(&cols, b"k").batch(&bin, true).unwrap();
        assert!(bin.len() > 3 * (64 << 10), "several slices");
        // Decode the binary output back to text rows and compare with the text path.
        let mut rows = Vec::new();
        let mut at = 0;
        while let Ok(Step::Tuple(end)) = binary::step(&from_binary, at, 4) {
            let f: Vec<String> = binary::fields(&from_binary[at..end])
                .zip([Wire::Int(4), Wire::String, Wire::String, Wire::Int(8)])
                .map(|(v, w)| v.map_or("\\N".to_string(), |v| w.decode(v).unwrap()))
                .collect();
            rows.push(f.join("\t"));
            at = end;
        }
        assert_eq!(at, from_binary.len());
        assert_eq!(rows.len(), 5000);
        let text_rows: Vec<String> = String::from_utf8(from_text)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(rows, text_rows, "one row, one masked value, either format");
        assert!(rows[0].contains("\\N") && !rows.iter().any(|r| r.contains("Corp.example")));
    }

    #[test]
    fn unique_columns_redraw_collisions() {
        // A 1-character hash has 16 possible values: the 17th distinct input cannot fit.
        let m = Masker::new(
            &[col(
                "h",
                Some(Transform::Hash {
                    len: 1,
                    base64: false,
                }),
                true,
            )],
            b"k",
        );
        let mut outs = HashSet::new();
        for i in 0..16 {
            let mut o = Vec::new();
            m.row(format!("v{i}").as_bytes(), &mut o).unwrap();
            outs.insert(o);
        }
        assert_eq!(
            outs.len(),
            16,
            "collisions were re-drawn into distinct values"
        );
        let mut o = Vec::new();
        let e = m.row(b"v16", &mut o).unwrap_err();
        assert!(e.contains("cannot produce enough distinct values"), "{e}");
    }

    #[test]
    fn templates_use_the_masked_values_of_their_row() {
        use crate::data::mask::{FakeKind, Locale};
        let first = Transform::Fake {
            kind: FakeKind::FirstName,
            locale: Locale::En,
        };
        let last = Transform::Fake {
            kind: FakeKind::LastName,
            locale: Locale::En,
        };
        let m = Masker::new(
            &[
                col("first", Some(first), false),
                col("last", Some(last), false),
                col(
                    "display",
                    Some(Transform::Template("{last}, {first}".into())),
                    false,
                ),
                col("id", None, false),
            ],
            b"k",
        );
        let mut o = Vec::new();
        m.row(b"Ann\tLee\tAnn Lee\t7", &mut o).unwrap();
        let text = String::from_utf8(o).unwrap();
        let f: Vec<&str> = text.trim_end().split('\t').collect();
        assert_eq!(f[2], format!("{}, {}", f[1], f[0]));
        assert_eq!(f[3], "7");
        assert!(!text.contains("Ann") && !text.contains("Lee"), "{text}");
        let mut o = Vec::new();
        m.row(b"Ann\t\\N\tx\t8", &mut o).unwrap();
        assert!(
            o.ends_with(b"\t\\N\t8\n"),
            "a NULL part makes the template NULL"
        );
    }

    #[test]
    fn masked_values_fit_the_column_length() {
        let mut c = col("email", Some(Transform::Email), true);
        c.max_len = Some(16);
        let mut h = col(
            "h",
            Some(Transform::Hash {
                len: 32,
                base64: false,
            }),
            false,
        );
        h.max_len = Some(5);
        let m = Masker::new(&[c, h], b"k");
        for i in 0..200 {
            let mut o = Vec::new();
            m.row(
                format!("someone.long{i}@corp.example\tv{i}").as_bytes(),
                &mut o,
            )
            .unwrap();
            let text = String::from_utf8(o).unwrap();
            let (email, hash) = text.trim_end().split_once('\t').unwrap();
            assert!(email.len() <= 16 && email.contains("@example."), "{email}");
            assert_eq!(hash.len(), 5);
        }
    }

    #[test]
    fn rows_with_the_wrong_field_count_are_errors() {
        let m = Masker::new(
            &[
                col("a", None, false),
                col("b", Some(Transform::Redact), false),
            ],
            b"k",
        );
        let mut o = Vec::new();
        assert!(
            m.row(b"1", &mut o)
                .unwrap_err()
                .contains("1 fields, expected 2")
        );
        assert!(
            m.row(b"1\t2\t3", &mut o)
                .unwrap_err()
                .contains("more than the 2")
        );
    }
}
