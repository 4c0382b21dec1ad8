//! Archives that scan enters: zip (and jar, war, whl, apk: zip by content), tar, and gzip (so
//! `.tar.gz`/`.tgz` too), recognised by their first bytes, never by name.
//!
//! Bytes in, members out: each regular member is handed on with its name inside the archive,
//! so findings read `bundle.zip!config/app.env`, and nested archives are entered in turn up to
//! a depth. A budget shared by everything under one input bounds what a bomb can cost: bytes
//! expanded in all, members in all, and the expansion ratio of each member. What the budget
//! or a corrupt archive stops becomes a note (a warning), never a silent skip.

use std::io::Read;

/// Bytes all members under one input may expand to.
pub(crate) const MAX_TOTAL: u64 = 256 << 20;
/// Members under one input.
pub(crate) const MAX_ENTRIES: usize = 100_000;
/// A member expanding more than this many times its compressed size (and above 1 MiB) is a
/// bomb, not content.
pub(crate) const MAX_RATIO: u64 = 200;
/// Below this size a member's ratio is not checked (a small file of one repeated byte
/// compresses very well and harms nobody).
const RATIO_FLOOR: u64 = 1 << 20;

/// Archive formats, by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `PK\x03\x04` (or an empty archive's `PK\x05\x06`).
    Zip,
    /// `ustar` at offset 257.
    Tar,
    /// `\x1f\x8b`.
    Gzip,
}

/// The archive format of `buf`, if any.
pub(crate) fn kind(buf: &[u8]) -> Option<Kind> {
    if buf.starts_with(b"PK\x03\x04") || buf.starts_with(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if buf.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(Kind::Gzip)
    } else if buf.get(257..262) == Some(b"ustar") {
        Some(Kind::Tar)
    } else {
        None
    }
}

/// What is left to expand under one input.
#[derive(Debug)]
pub(crate) struct Budget {
    bytes: u64,
    entries: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            bytes: MAX_TOTAL,
            entries: MAX_ENTRIES,
        }
    }
}

/// Read at most what the budget allows from `r`; `Err` names the limit hit. `expected` is the
/// size the archive states for the member (the buffer starts that large, never larger than the
/// limit, so a member is not copied as its buffer grows).
fn read_bounded(
    r: impl Read,
    budget: &mut Budget,
    compressed: u64,
    expected: u64,
    shown: &str,
) -> Result<Vec<u8>, String> {
    let cap = budget.bytes.min(
        compressed
            .saturating_mul(MAX_RATIO)
            .max(RATIO_FLOOR)
            .saturating_add(1),
    );
    let mut out = Vec::with_capacity(usize::try_from(expected.min(cap)).unwrap_or(0));
    r.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("skipped {shown}: cannot expand ({e})"))?;
    let n = out.len() as u64;
    if n > budget.bytes {
        budget.bytes = 0;
        return Err(format!(
            "stopped at {shown}: the archive expands beyond {} MiB in all (an archive bomb?); the rest is not scanned",
            MAX_TOTAL >> 20
        ));
    }
    if n >= RATIO_FLOOR && n > compressed.saturating_mul(MAX_RATIO) {
        return Err(format!(
            "skipped {shown}: expands more than {MAX_RATIO} times its compressed size (an archive bomb?)"
        ));
    }
    budget.bytes -= n;
    Ok(out)
}

/// A gzip file of one member expanded in one call by libdeflate, when the size its trailer
/// states is within what [`read_bounded`] allows (what it takes is then charged alike). `None`
/// sends the file down the streaming path, which reads every other case (several members,
/// bytes after the member, a misstated size, damage) and says what stopped it.
fn gunzip_whole(buf: &[u8], budget: &mut Budget, stated: u64) -> Option<Vec<u8>> {
    use libdeflate_sys::{
        libdeflate_alloc_decompressor, libdeflate_free_decompressor, libdeflate_gzip_decompress_ex,
        libdeflate_result_LIBDEFLATE_SUCCESS,
    };
    let compressed = buf.len() as u64;
    if stated > budget.bytes
        || (stated >= RATIO_FLOOR && stated > compressed.saturating_mul(MAX_RATIO))
    {
        return None;
    }
    let n = usize::try_from(stated).ok()?;
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut used_in, mut used_out) = (0usize, 0usize);
    // SAFETY: the decompressor is checked for null and freed before the block ends; libdeflate
    // reads `buf.len()` bytes of `buf` and writes at most `n` bytes into `out`'s spare capacity
    // (at least `n`), and on success says how many it wrote (`used_out`, at most `n`).
    let done = unsafe {
        let d = libdeflate_alloc_decompressor();
        if d.is_null() {
            return None;
        }
        let result = libdeflate_gzip_decompress_ex(
            d,
            buf.as_ptr().cast(),
            buf.len(),
            out.spare_capacity_mut().as_mut_ptr().cast(),
            n,
            &raw mut used_in,
            &raw mut used_out,
        );
        libdeflate_free_decompressor(d);
        result == libdeflate_result_LIBDEFLATE_SUCCESS
    };
    if !done || used_in != buf.len() || used_out != n {
        return None;
    }
    // SAFETY: libdeflate wrote the first `used_out` bytes, within the capacity.
    unsafe { out.set_len(used_out) };
    budget.bytes -= stated;
    Some(out)
}

/// Call `each(member name, contents, budget)` for every regular member of `buf` (of `kind`),
/// in archive order. `shown` names the archive in notes; problems are pushed onto `notes`.
pub(crate) fn members(
    shown: &str,
    buf: &[u8],
    kind: Kind,
    budget: &mut Budget,
    notes: &mut Vec<String>,
    each: &mut dyn FnMut(&str, &[u8], &mut Budget),
) {
    let take_entry = |budget: &mut Budget, notes: &mut Vec<String>| {
        if budget.entries == 0 {
            notes.push(format!(
                "stopped in {shown}: more than {MAX_ENTRIES} archive members in all; the rest is not scanned"
            ));
            return false;
        }
        budget.entries -= 1;
        true
    };
    match kind {
        Kind::Zip => {
            let mut zip = match zip::ZipArchive::new(std::io::Cursor::new(buf)) {
                Ok(z) => z,
                Err(e) => {
                    notes.push(format!("skipped {shown}: not a readable zip archive ({e})"));
                    return;
                }
            };
            for i in 0..zip.len() {
                if !take_entry(budget, notes) {
                    return;
                }
                let mut file = match zip.by_index(i) {
                    Ok(f) => f,
                    Err(e) => {
                        notes.push(format!("skipped member {i} of {shown}: {e}"));
                        continue;
                    }
                };
                if !file.is_file() {
                    continue;
                }
                let name = String::from_utf8_lossy(file.name_raw()).into_owned();
                let member = format!("{shown}!{name}");
                if file.encrypted() {
                    notes.push(format!("skipped {member}: encrypted"));
                    continue;
                }
                let (compressed, size) = (file.compressed_size(), file.size());
                let read = read_bounded(&mut file, budget, compressed, size, &member);
                if !hand_on(&name, read, budget, notes, each) {
                    return;
                }
            }
        }
        Kind::Tar => {
            let mut archive = tar::Archive::new(buf);
            let entries = match archive.entries() {
                Ok(e) => e,
                Err(e) => {
                    notes.push(format!("skipped {shown}: not a readable tar archive ({e})"));
                    return;
                }
            };
            for entry in entries {
                let mut entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        notes.push(format!("stopped in {shown}: corrupt tar archive ({e})"));
                        return;
                    }
                };
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                if !take_entry(budget, notes) {
                    return;
                }
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let member = format!("{shown}!{name}");
                let size = entry.size();
                // Stored, not compressed: its size is what it costs.
                let read = read_bounded(&mut entry, budget, size, size, &member);
                if !hand_on(&name, read, budget, notes, each) {
                    return;
                }
            }
        }
        Kind::Gzip => {
            let decoder = flate2::read::MultiGzDecoder::new(buf);
            // The trailer states the (last member's) size modulo 4 GiB: a hint only.
            let stated = buf
                .last_chunk::<4>()
                .map_or(0, |t| u64::from(u32::from_le_bytes(*t)));
            let whole = gunzip_whole(buf, budget, stated).map(Ok);
            let bytes = match whole
                .unwrap_or_else(|| read_bounded(decoder, budget, buf.len() as u64, stated, shown))
            {
                Ok(b) => b,
                Err(note) => {
                    notes.push(note);
                    return;
                }
            };
            // A compressed tar is entered as one archive: `a.tar.gz!member`.
            if kind_of_tar(&bytes) {
                members(shown, &bytes, Kind::Tar, budget, notes, each);
                return;
            }
            if take_entry(budget, notes) {
                each(&gzip_member_name(shown, buf), &bytes, budget);
            }
        }
    }
}

/// Hand a member read within the budget to `each`, or note why it was not; `false` when the
/// budget is spent and nothing more of the archive may be read.
fn hand_on(
    name: &str,
    read: Result<Vec<u8>, String>,
    budget: &mut Budget,
    notes: &mut Vec<String>,
    each: &mut dyn FnMut(&str, &[u8], &mut Budget),
) -> bool {
    match read {
        Ok(bytes) => {
            each(name, &bytes, budget);
            true
        }
        Err(note) => {
            notes.push(note);
            budget.bytes > 0
        }
    }
}

fn kind_of_tar(bytes: &[u8]) -> bool {
    kind(bytes) == Some(Kind::Tar)
}

/// The name of a gzip file's one member: the name its header stores, else the file's own name
/// without `.gz` (`app.log.gz` holds `app.log`).
fn gzip_member_name(shown: &str, buf: &[u8]) -> String {
    let header = flate2::read::GzDecoder::new(buf);
    if let Some(name) = header.header().and_then(|h| h.filename()) {
        return String::from_utf8_lossy(name).into_owned();
    }
    let base = shown.rsplit(['/', '!']).next().unwrap_or(shown);
    base.strip_suffix(".gz")
        .or_else(|| base.strip_suffix(".GZ"))
        .unwrap_or(base)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn list(buf: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
        let mut out = Vec::new();
        let mut notes = Vec::new();
        let mut budget = Budget::default();
        members(
            "a",
            buf,
            kind(buf).unwrap(),
            &mut budget,
            &mut notes,
            &mut |n, b, _| out.push((n.to_string(), b.to_vec())),
        );
        (out, notes)
    }

    #[test]
    fn zip_tar_and_gzip_members() {
        let z = zip_of(&[("dir/x.env", b"X=1\n"), ("y.txt", b"why\n")]);
        assert_eq!(kind(&z), Some(Kind::Zip));
        let (m, notes) = list(&z);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(m[0], ("dir/x.env".to_string(), b"X=1\n".to_vec()));
        assert_eq!(m.len(), 2);
        let t = tar_of(&[("etc/app.conf", b"k=v\n")]);
        assert_eq!(kind(&t), Some(Kind::Tar));
        assert_eq!(list(&t).0[0].0, "etc/app.conf");
        let tgz = gz(&t);
        assert_eq!(kind(&tgz), Some(Kind::Gzip));
        assert_eq!(list(&tgz).0[0].0, "etc/app.conf");
        assert_eq!(gzip_member_name("logs/app.log.gz", &gz(b"x")), "app.log");
    }

    #[test]
    fn gzip_of_one_member_is_expanded_whole_and_every_other_is_streamed() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i} key=value\n").into_bytes())
            .collect();
        let one = gz(&text);
        let stated = |b: &[u8]| u64::from(u32::from_le_bytes(*b.last_chunk::<4>().unwrap()));
        let mut budget = Budget::default();
        assert_eq!(
            gunzip_whole(&one, &mut budget, stated(&one)).as_deref(),
            Some(&text[..])
        );
        assert_eq!(budget.bytes, MAX_TOTAL - text.len() as u64);
        assert_eq!(list(&one).0[0].1, text);
        // Two members: the trailer states the last one's size; both are read, streamed.
        let two = [gz(b"first member\n"), gz(b"second member\n")].concat();
        assert!(gunzip_whole(&two, &mut Budget::default(), stated(&two)).is_none());
        assert_eq!(list(&two).0[0].1, b"first member\nsecond member\n");
        // A trailer that misstates the size either way, and bytes after the member.
        for lie in [1u32, 7, u32::MAX] {
            let mut bad = one.clone();
            let at = bad.len() - 4;
            bad[at..].copy_from_slice(&lie.to_le_bytes());
            assert!(gunzip_whole(&bad, &mut Budget::default(), u64::from(lie)).is_none());
        }
        let tail = [&one[..], b"trailing"].concat();
        assert!(gunzip_whole(&tail, &mut Budget::default(), stated(&one)).is_none());
        // A stated size beyond what is left of the budget is never allocated.
        let mut low = Budget {
            bytes: 10,
            entries: 1,
        };
        assert!(gunzip_whole(&one, &mut low, stated(&one)).is_none());
        assert_eq!(low.bytes, 10);
    }

    #[test]
    fn bombs_are_stopped_with_a_note() {
        // 64 MiB of zeros compresses about 1000-fold.
        let zeros = vec![0u8; 64 << 20];
        let (m, notes) = list(&gz(&zeros));
        assert!(m.is_empty());
        assert!(notes[0].contains("times its compressed size"), "{notes:?}");
        let z = zip_of(&[("big.bin", &zeros)]);
        let (m, notes) = list(&z);
        assert!(
            m.is_empty() && notes[0].contains("archive bomb"),
            "{notes:?}"
        );
        // Corrupt input is a note, not a panic.
        let mut broken = z.clone();
        broken.truncate(z.len() / 2);
        let (_, notes) = list(&broken);
        assert!(!notes.is_empty());
    }
}
