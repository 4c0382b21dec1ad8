//! The closure's pending work under a memory budget. Work items (rows and the key values read
//! with them) stay in memory while they fit; beyond the budget they are written to a temporary
//! file and read back when their turn comes. The values are production data, so the file is
//! encrypted (AES-256-GCM, a random key that lives only in this process), created with mode
//! 0600 and unlinked at once: nothing readable is left behind, even after a crash.
//!
//! In: [`Work`] items in queue order. Out: the same items in the same order.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::data::pg::catalog::QualifiedName;
use crate::data::subset::Work;
use crate::error::Error;

/// The default budget: 256 MiB of pending work.
pub(crate) const DEFAULT_BUDGET: usize = 256 << 20;

/// What identifies a batch of work for merging: table, expand, depth, reason, and whether it
/// carries values.
type Kind = (QualifiedName, bool, u32, String, bool);

fn kind(w: &Work) -> Kind {
    (
        w.table.clone(),
        w.expand,
        w.depth,
        w.reason.clone(),
        w.values.is_some(),
    )
}

enum Entry {
    Memory(Work, usize),
    Disk {
        offset: u64,
        len: usize,
        seq: u64,
        kind: Kind,
        rows: usize,
    },
}

impl Entry {
    fn rows(&self) -> usize {
        match self {
            Entry::Memory(w, _) => w.rows.len(),
            Entry::Disk { rows, .. } => *rows,
        }
    }

    fn same_kind(&self, k: &Kind) -> bool {
        match self {
            Entry::Memory(w, _) => {
                w.table == k.0
                    && w.expand == k.1
                    && w.depth == k.2
                    && w.reason == k.3
                    && w.values.is_some() == k.4
            }
            Entry::Disk { kind, .. } => kind == k,
        }
    }
}

struct SpillFile {
    file: File,
    cipher: Aes256Gcm,
    end: u64,
    seq: u64,
}

/// A FIFO of work that spills beyond a memory budget.
pub(crate) struct SpillQueue {
    entries: VecDeque<Entry>,
    in_memory: usize,
    budget: usize,
    file: Option<SpillFile>,
    /// Bytes written to the spill file (encrypted), in all.
    pub spilled_bytes: u64,
    /// Items written to the spill file.
    pub spilled_items: u64,
}

/// Bytes an item takes in memory, roughly: what the budget counts.
fn footprint(w: &Work) -> usize {
    let values: usize = w.values.as_ref().map_or(0, |vs| {
        vs.iter()
            .map(|v| {
                24 + v
                    .iter()
                    .map(|c| 24 + c.as_ref().map_or(0, String::len))
                    .sum::<usize>()
            })
            .sum()
    });
    128 + w.rows.len() * 16 + values
}

fn io_error(e: std::io::Error) -> Error {
    Error::External {
        what: "spill file".into(),
        detail: format!(
            "{e} (in {}; set TMPDIR to a directory with room, or raise the subset's `memory`)",
            std::env::temp_dir().display()
        ),
    }
}

impl SpillQueue {
    /// A queue holding `items`, spilling what does not fit in `budget` bytes.
    pub(crate) fn new(budget: usize, items: Vec<Work>) -> Result<SpillQueue, Error> {
        let mut q = SpillQueue {
            entries: VecDeque::new(),
            in_memory: 0,
            budget,
            file: None,
            spilled_bytes: 0,
            spilled_items: 0,
        };
        for w in items {
            q.push_back(w)?;
        }
        Ok(q)
    }

    fn entry(&mut self, w: Work) -> Result<Entry, Error> {
        let size = footprint(&w);
        if self.in_memory + size <= self.budget {
            self.in_memory += size;
            return Ok(Entry::Memory(w, size));
        }
        let f = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(open()?),
        };
        f.seq += 1;
        let seq = f.seq;
        let sealed = f
            .cipher
            .encrypt(&nonce(seq), encode(&w).as_slice())
            .map_err(|_| Error::External {
                what: "spill file".into(),
                detail: "encrypting a work item failed".into(),
            })?;
        let offset = f.end;
        f.file.write_all_at(&sealed, offset).map_err(io_error)?;
        f.end += sealed.len() as u64;
        self.spilled_bytes += sealed.len() as u64;
        self.spilled_items += 1;
        Ok(Entry::Disk {
            offset,
            len: sealed.len(),
            seq,
            kind: kind(&w),
            rows: w.rows.len(),
        })
    }

    /// Add `w` at the end.
    pub(crate) fn push_back(&mut self, w: Work) -> Result<(), Error> {
        let e = self.entry(w)?;
        self.entries.push_back(e);
        Ok(())
    }

    /// Add `w` at the front (it is next).
    pub(crate) fn push_front(&mut self, w: Work) -> Result<(), Error> {
        let e = self.entry(w)?;
        self.entries.push_front(e);
        Ok(())
    }

    /// The next item, with the items right behind it of the same kind (table, reason, depth)
    /// merged in while the rows stay within `limit`: lookups arrive in small batches, and one
    /// step over many rows costs one query where many small steps would cost many.
    pub(crate) fn pop_merged(&mut self, limit: usize) -> Result<Option<Work>, Error> {
        let Some(mut w) = self.pop_front()? else {
            return Ok(None);
        };
        let k = kind(&w);
        while self
            .entries
            .front()
            .is_some_and(|e| e.same_kind(&k) && w.rows.len() + e.rows() <= limit)
        {
            let Some(next) = self.pop_front()? else { break };
            w.rows.extend(next.rows);
            if let (Some(a), Some(b)) = (w.values.as_mut(), next.values) {
                a.extend(b);
            }
        }
        Ok(Some(w))
    }

    /// The next item.
    pub(crate) fn pop_front(&mut self) -> Result<Option<Work>, Error> {
        match self.entries.pop_front() {
            None => Ok(None),
            Some(Entry::Memory(w, size)) => {
                self.in_memory -= size;
                Ok(Some(w))
            }
            Some(Entry::Disk {
                offset, len, seq, ..
            }) => {
                let bad = || Error::External {
                    what: "spill file".into(),
                    detail: "a spilled work item does not decrypt; the temporary file was changed"
                        .into(),
                };
                let f = self.file.as_ref().ok_or_else(bad)?;
                let mut sealed = vec![0u8; len];
                f.file
                    .read_exact_at(&mut sealed, offset)
                    .map_err(io_error)?;
                let plain = f
                    .cipher
                    .decrypt(&nonce(seq), sealed.as_slice())
                    .map_err(|_| bad())?;
                decode(&plain).map(Some).ok_or_else(bad)
            }
        }
    }
}

fn nonce(seq: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    *Nonce::from_slice(&n)
}

/// A new spill file: random name, mode 0600, unlinked at once; a random key.
fn open() -> Result<SpillFile, Error> {
    let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    let mut name = [0u8; 8];
    random
        .fill(&mut *key)
        .and_then(|()| random.fill(&mut name))
        .map_err(|_| Error::External {
            what: "spill file".into(),
            detail: "the system's random source failed".into(),
        })?;
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("sluice-spill-{}-{hex}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error)?;
    std::fs::remove_file(&path).map_err(io_error)?;
    let cipher = Aes256Gcm::new_from_slice(&*key).map_err(|_| Error::External {
        what: "spill file".into(),
        detail: "bad key length".into(),
    })?;
    Ok(SpillFile {
        file,
        cipher,
        end: 0,
        seq: 0,
    })
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(w: &Work) -> Vec<u8> {
    let mut out = Vec::with_capacity(footprint(w));
    put(&mut out, &w.table.schema);
    put(&mut out, &w.table.name);
    out.push(u8::from(w.expand));
    out.extend_from_slice(&w.depth.to_le_bytes());
    put(&mut out, &w.reason);
    out.extend_from_slice(&(w.rows.len() as u64).to_le_bytes());
    for (leaf, ctid) in &w.rows {
        out.extend_from_slice(&leaf.to_le_bytes());
        out.extend_from_slice(&ctid.to_le_bytes());
    }
    match &w.values {
        None => out.push(0),
        Some(vs) => {
            out.push(1);
            for v in vs {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                for c in v {
                    match c {
                        None => out.push(0),
                        Some(s) => {
                            out.push(1);
                            put(&mut out, s);
                        }
                    }
                }
            }
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode(bytes: &[u8]) -> Option<Work> {
    let mut r = Reader(bytes);
    let table = QualifiedName {
        schema: r.str()?,
        name: r.str()?,
    };
    let expand = r.u8()? == 1;
    let depth = r.u32()?;
    let reason = r.str()?;
    let n = r.u64()? as usize;
    let mut rows = Vec::with_capacity(n.min(bytes.len() / 12));
    for _ in 0..n {
        rows.push((r.u32()?, r.u64()?));
    }
    let values = match r.u8()? {
        0 => None,
        _ => {
            let mut vs = Vec::with_capacity(n);
            for _ in 0..n {
                let cols = r.u32()? as usize;
                let mut v = Vec::with_capacity(cols.min(r.0.len()));
                for _ in 0..cols {
                    v.push(match r.u8()? {
                        0 => None,
                        _ => Some(r.str()?),
                    });
                }
                vs.push(v);
            }
            Some(vs)
        }
    };
    r.0.is_empty().then_some(Work {
        table,
        rows,
        expand,
        depth,
        reason,
        values,
    })
}

/// A size such as `256MB`, `1GiB`, `512kB` or `1000000` (bytes).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: usize = n
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 256MB or 1GiB"))?;
    let m: usize = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size; units are B, kB, MB, GB, KiB, MiB, GiB"
            ));
        }
    };
    n.checked_mul(m)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(i: u32, marker: &str) -> Work {
        Work {
            table: QualifiedName {
                schema: "app".into(),
                name: format!("t{i}"),
            },
            rows: (0..50u64).map(|r| (i, (r << 11) | 1)).collect(),
            expand: i.is_multiple_of(2),
            depth: i,
            reason: format!("child of t{}", i + 1),
            values: (!i.is_multiple_of(3)).then(|| {
                (0..50)
                    .map(|r| vec![Some(format!("{marker}-{i}-{r}")), None])
                    .collect()
            }),
        }
    }

    fn same(a: &Work, b: &Work) -> bool {
        a.table == b.table
            && a.rows == b.rows
            && a.expand == b.expand
            && a.depth == b.depth
            && a.reason == b.reason
            && a.values == b.values
    }

    #[test]
    fn spilled_work_comes_back_in_order_and_is_unreadable_on_disk() {
        let marker = "person@example.test";
        let mut q = SpillQueue::new(5000, (0..6).map(|i| work(i, marker)).collect()).unwrap();
        q.push_front(work(100, marker)).unwrap();
        q.push_back(work(101, marker)).unwrap();
        assert!(q.spilled_items >= 4, "{}", q.spilled_items);
        // The file holds no plain value.
        let f = q.file.as_ref().unwrap();
        let mut raw = vec![0u8; f.end as usize];
        f.file.read_exact_at(&mut raw, 0).unwrap();
        assert!(!raw.windows(marker.len()).any(|w| w == marker.as_bytes()));
        let mut order = vec![100];
        order.extend(0..6);
        order.push(101);
        for i in order {
            let got = q.pop_front().unwrap().unwrap();
            assert!(same(&got, &work(i, marker)), "item {i}");
        }
        assert!(q.pop_front().unwrap().is_none());
        assert_eq!(q.in_memory, 0);
    }

    #[test]
    fn consecutive_work_of_one_kind_merges_up_to_the_limit() {
        let same = |rows: u64| Work {
            rows: (0..rows).map(|r| (1, r)).collect(),
            values: Some((0..rows).map(|r| vec![Some(r.to_string())]).collect()),
            ..work(1, "m")
        };
        // A budget that keeps the first in memory and spills the rest.
        let mut q =
            SpillQueue::new(3000, vec![same(10), same(10), same(10), work(2, "m")]).unwrap();
        q.push_back(same(10)).unwrap();
        assert!(q.spilled_items > 0);
        let first = q.pop_merged(25).unwrap().unwrap();
        assert_eq!(first.rows.len(), 20, "two of ten fit under 25");
        assert_eq!(first.values.as_ref().map(Vec::len), Some(20));
        let second = q.pop_merged(25).unwrap().unwrap();
        assert_eq!(second.rows.len(), 10, "the next kind stops the merge");
        assert!(same_kind_as(
            &q.pop_merged(25).unwrap().unwrap(),
            &work(2, "m")
        ));
        assert_eq!(q.pop_merged(25).unwrap().unwrap().rows.len(), 10);
        assert!(q.pop_merged(25).unwrap().is_none());
    }

    fn same_kind_as(a: &Work, b: &Work) -> bool {
        kind(a) == kind(b)
    }

    #[test]
    fn encoding_round_trips_and_rejects_truncation() {
        let w = work(4, "x");
        let bytes = encode(&w);
        assert!(same(&decode(&bytes).unwrap(), &w));
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("256MB"), Ok(256_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
