//! The masking key's strength: refused below 128 bits of material, since anyone holding a
//! masked copy can try likely inputs (e-mails, names) under every key of a smaller space.

/// Bits of material a masking key must carry: anyone holding the masked data can try likely
/// inputs (e-mails, names) under every key of a smaller space.
pub(crate) const KEY_MIN_BITS: u32 = 128;

/// Whether `key` carries at least [`KEY_MIN_BITS`] of material, estimated from its length and
/// the alphabet it is written in (digits ~3.3 bits a character, hex 4, base64 and the like ~6,
/// other printable text ~6.5, raw bytes 8), and not a repetition of a few characters (its
/// bytes' Shannon entropy under 3 bits). The error says why and how to make a good key; it
/// never quotes the key.
pub(crate) fn check_key(key: &[u8]) -> Result<(), String> {
    let all = |f: fn(&u8) -> bool| key.iter().all(f);
    let per_char = if all(u8::is_ascii_digit) {
        3.32
    } else if all(u8::is_ascii_hexdigit) {
        4.0
    } else if all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        5.17
    } else if all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(b)) {
        5.95
    } else if all(|b| b.is_ascii_graphic() || *b == b' ') {
        6.55
    } else {
        8.0
    };
    let bits = key.len() as f64 * per_char;
    let mut counts = [0u32; 256];
    for b in key {
        counts[*b as usize] += 1;
    }
    let n = key.len().max(1) as f64;
    let shannon: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum();
    let how = "make one with `openssl rand -base64 32` (or `sluice secrets set` into the age store) and store it where the plan's masking.key points";
    if key.len() < 16 || bits < f64::from(KEY_MIN_BITS) {
        return Err(format!(
            "the masking key is too weak: {} byte(s), about {} bits of material where at least {KEY_MIN_BITS} are needed (16 random bytes); with a weak key anyone can undo the masking by trying likely values. {how}",
            key.len(),
            bits as u32
        ));
    }
    if shannon < 3.0 {
        return Err(format!(
            "the masking key is too weak: it repeats a few characters ({shannon:.1} bits of entropy per byte); with a weak key anyone can undo the masking by trying likely values. {how}"
        ));
    }
    Ok(())
}
