//! SOPS files encrypted to age keys, read natively: a file in, its decrypted leaves out.
//!
//! The data key is age-decrypted from `sops.age[].enc`; every `ENC[AES256_GCM,data:…,iv:…,
//! tag:…,type:…]` value is AES-256-GCM with a 32-byte IV and its key path (`a:b:`) as additional
//! data; the MAC (SHA-512 over the values in document order, encrypted with the last-modified
//! time as additional data) is verified, so a tampered file is rejected. YAML, JSON and dotenv.
//!
//! Partial encryption is read as sops writes it: which values are encrypted is decided by the
//! file's own rule (`unencrypted_suffix`, default `_unencrypted`; `encrypted_suffix`,
//! `unencrypted_regex`, `encrypted_regex`), tested against every key on the value's path, so a
//! match on a parent covers its subtree. A value the rule says is plain is taken as written
//! (even one that looks like `ENC[…]`); one it says is encrypted must decrypt. The MAC covers
//! every value, or with `mac_only_encrypted` only the encrypted ones: plain values of such a
//! file are not authenticated, and sluice refuses to hand them out.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::SecretValue;
use super::age_store::AgeStore;
use crate::config::yaml;

type SopsCipher = AesGcm<Aes256, U32>;

/// A decrypted SOPS file: dotted key path (`db.password`, list items as `list.0`) to value, or
/// to why it cannot be used (a plain value no MAC covers).
pub(crate) type Leaves = BTreeMap<String, Result<SecretValue, String>>;

/// What sops feeds its hash first when `mac_only_encrypted` is set: SHA-256("sops").
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// A file's partial-encryption rule (at most one is set; none means `_unencrypted`).
enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(regex::Regex),
    EncryptedRegex(regex::Regex),
}

impl Rule {
    fn from_meta(meta: &yaml::Node) -> Result<Rule, String> {
        let keys = [
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
            "unencrypted_comment_regex",
            "encrypted_comment_regex",
        ];
        let set: Vec<(&str, &str)> = keys
            .iter()
            .filter_map(|k| {
                text_of(get(meta, k))
                    .filter(|v| !v.is_empty())
                    .map(|v| (*k, v))
            })
            .collect();
        let regex = |k: &str, v: &str| {
            regex::Regex::new(v).map_err(|e| format!("its `{k}` does not compile ({e})"))
        };
        match set.as_slice() {
            [] => Ok(Rule::UnencryptedSuffix("_unencrypted".into())),
            [("unencrypted_suffix", v)] => Ok(Rule::UnencryptedSuffix(v.to_string())),
            [("encrypted_suffix", v)] => Ok(Rule::EncryptedSuffix(v.to_string())),
            [(k @ "unencrypted_regex", v)] => Ok(Rule::UnencryptedRegex(regex(k, v)?)),
            [(k @ "encrypted_regex", v)] => Ok(Rule::EncryptedRegex(regex(k, v)?)),
            [(k, _)] => Err(format!(
                "`{k}` (comment-based partial encryption) is not supported; re-create the file with --encrypted-regex or --encrypted-suffix"
            )),
            _ => Err(format!(
                "it sets {} at once; sops allows only one",
                set.iter()
                    .map(|(k, _)| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }

    /// Whether sops encrypted the value at `path` (its map keys from the root).
    fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Rule::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !path.iter().any(|k| r.is_match(k)),
            Rule::EncryptedRegex(r) => path.iter().any(|k| r.is_match(k)),
        }
    }
}

/// A boolean as sops reads one (Go's `strconv.ParseBool`; dotenv files hold it as text).
fn flag_of(node: Option<&yaml::Node>) -> Result<bool, String> {
    match node.map(|n| &n.value) {
        None | Some(yaml::Value::Null) => Ok(false),
        Some(yaml::Value::Bool(b)) => Ok(*b),
        Some(yaml::Value::Str(s)) => match s.as_str() {
            "1" | "t" | "T" | "true" | "True" | "TRUE" => Ok(true),
            "0" | "f" | "F" | "false" | "False" | "FALSE" => Ok(false),
            _ => Err(format!(
                "`mac_only_encrypted: {}` is not a boolean",
                s.escape_debug()
            )),
        },
        Some(_) => Err("`mac_only_encrypted` is not a boolean".into()),
    }
}

/// One leaf as found in the file, in document order.
struct Leaf {
    /// Keys from the root (list indices excluded, as SOPS does for additional data).
    aad_path: Vec<String>,
    /// Dotted lookup path (list indices included).
    lookup: String,
    /// The raw text (an `ENC[…]` value, or a plain one).
    text: String,
}

fn collect(node: &yaml::Node, aad: &mut Vec<String>, lookup: &str, out: &mut Vec<Leaf>) {
    let join = |k: &str| {
        if lookup.is_empty() {
            k.to_string()
        } else {
            format!("{lookup}.{k}")
        }
    };
    match &node.value {
        yaml::Value::Map(entries) => {
            for (k, v) in entries {
                let key = k.key_text();
                if aad.is_empty() && key == "sops" {
                    continue;
                }
                aad.push(key.clone());
                collect(v, aad, &join(&key), out);
                aad.pop();
            }
        }
        yaml::Value::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, aad, &join(&i.to_string()), out);
            }
        }
        yaml::Value::Str(s) => out.push(Leaf {
            aad_path: aad.clone(),
            lookup: lookup.to_string(),
            text: s.clone(),
        }),
        yaml::Value::Int(i) => out.push(Leaf {
            aad_path: aad.clone(),
            lookup: lookup.to_string(),
            text: i.to_string(),
        }),
        yaml::Value::Float(f) => out.push(Leaf {
            aad_path: aad.clone(),
            lookup: lookup.to_string(),
            // As Go's FormatFloat(f, 'f', -1, 64), which sops hashes.
            text: match f {
                f if f.is_nan() => "NaN".into(),
                f if f.is_infinite() && *f > 0.0 => "+Inf".into(),
                f if f.is_infinite() => "-Inf".into(),
                f => f.to_string(),
            },
        }),
        yaml::Value::Bool(b) => out.push(Leaf {
            aad_path: aad.clone(),
            lookup: lookup.to_string(),
            text: if *b { "True".into() } else { "False".into() },
        }),
        yaml::Value::Null => {}
    }
}

/// The parts of an `ENC[…]` value.
struct Enc {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
}

fn parse_enc(text: &str) -> Option<Enc> {
    let inner = text.strip_prefix("ENC[AES256_GCM,")?.strip_suffix(']')?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (mut data, mut iv, mut tag) = (None, None, None);
    for part in inner.split(',') {
        let (k, v) = part.split_once(':')?;
        match k {
            "data" => data = Some(b64.decode(v).ok()?),
            "iv" => iv = Some(b64.decode(v).ok()?),
            "tag" => tag = Some(b64.decode(v).ok()?),
            _ => {}
        }
    }
    Some(Enc {
        data: data?,
        iv: iv?,
        tag: tag?,
    })
}

fn decrypt_value(key: &[u8], enc: &Enc, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if enc.iv.len() != 32 || enc.tag.len() != 16 {
        return None;
    }
    let cipher = SopsCipher::new_from_slice(key).ok()?;
    let mut msg = enc.data.clone();
    msg.extend_from_slice(&enc.tag);
    cipher
        .decrypt(
            Nonce::<U32>::from_slice(&enc.iv),
            Payload { msg: &msg, aad },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Parse a file's text into a tree: YAML and JSON by the YAML reader, dotenv by lines (with the
/// `sops_…` metadata keys folded back into a `sops` mapping).
fn parse_tree(name: &str, text: &str) -> Result<yaml::Node, String> {
    let is_env = name.ends_with(".env")
        || name
            .rsplit('/')
            .next()
            .is_some_and(|b| b.starts_with(".env"));
    if !is_env {
        return yaml::parse(name, text).map_err(|p| p.to_string());
    }
    let node = |value| yaml::Node {
        value,
        line: 0,
        col: 0,
    };
    let mut entries = Vec::new();
    let mut meta = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if let Some(m) = k.strip_prefix("sops_") {
            meta.push((m.to_string(), v.replace("\\n", "\n")));
        } else {
            entries.push((
                node(yaml::Value::Str(k.to_string())),
                node(yaml::Value::Str(v.to_string())),
            ));
        }
    }
    // sops_age__list_0__map_enc -> sops.age[0].enc
    let mut age: BTreeMap<usize, Vec<(yaml::Node, yaml::Node)>> = BTreeMap::new();
    let mut sops = Vec::new();
    for (k, v) in meta {
        if let Some(rest) = k.strip_prefix("age__list_") {
            if let Some((i, field)) = rest.split_once("__map_")
                && let Ok(i) = i.parse()
            {
                age.entry(i).or_default().push((
                    node(yaml::Value::Str(field.into())),
                    node(yaml::Value::Str(v)),
                ));
            }
        } else {
            sops.push((node(yaml::Value::Str(k)), node(yaml::Value::Str(v))));
        }
    }
    let list = age
        .into_values()
        .map(|m| node(yaml::Value::Map(m)))
        .collect();
    sops.push((
        node(yaml::Value::Str("age".into())),
        node(yaml::Value::Seq(list)),
    ));
    entries.push((
        node(yaml::Value::Str("sops".into())),
        node(yaml::Value::Map(sops)),
    ));
    Ok(node(yaml::Value::Map(entries)))
}

fn get<'a>(node: &'a yaml::Node, key: &str) -> Option<&'a yaml::Node> {
    match &node.value {
        yaml::Value::Map(e) => e.iter().find(|(k, _)| k.key_text() == key).map(|(_, v)| v),
        _ => None,
    }
}

fn text_of(node: Option<&yaml::Node>) -> Option<&str> {
    match node.map(|n| &n.value) {
        Some(yaml::Value::Str(s)) => Some(s),
        _ => None,
    }
}

/// Decrypt a SOPS file with the identities of `identity_store` (an age store configuration
/// used only for its identity).
pub(crate) fn read(path: &Path, identity_store: &AgeStore) -> Result<Leaves, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name} ({e})"))?;
    let tree = parse_tree(&name, &text)?;
    let meta = get(&tree, "sops")
        .ok_or_else(|| format!("{name} is not a SOPS file (no `sops` metadata)"))?;
    let stanzas = match get(meta, "age").map(|n| &n.value) {
        Some(yaml::Value::Seq(items)) => items.clone(),
        _ => {
            return Err(format!(
                "{name} has no age recipients; only age-encrypted SOPS files are supported"
            ));
        }
    };
    let ids = identity_store.identities().map_err(|e| e.to_string())?;
    let mut key: Option<Zeroizing<Vec<u8>>> = None;
    for s in &stanzas {
        let Some(enc) = text_of(get(s, "enc")) else {
            continue;
        };
        let Ok(decryptor) = age::Decryptor::new(age::armor::ArmoredReader::new(enc.as_bytes()))
        else {
            continue;
        };
        if let Ok(mut r) = decryptor.decrypt(ids.iter().map(|i| i.as_ref())) {
            let mut k = Zeroizing::new(Vec::new());
            if r.read_to_end(&mut k).is_ok() && k.len() == 32 {
                key = Some(k);
                break;
            }
        }
    }
    let key = key.ok_or_else(|| {
        format!("{name}: none of its age recipients matches this environment's identity")
    })?;

    let mut leaves = Vec::new();
    collect(&tree, &mut Vec::new(), "", &mut leaves);
    let rule = Rule::from_meta(meta).map_err(|e| format!("{name}: {e}"))?;
    let mac_only = flag_of(get(meta, "mac_only_encrypted")).map_err(|e| format!("{name}: {e}"))?;
    let mut mac = Sha512::new();
    if mac_only {
        mac.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut out = Leaves::new();
    for leaf in leaves {
        let encrypted = rule.encrypts(&leaf.aad_path);
        let value: Zeroizing<Vec<u8>> = if !encrypted || leaf.text.is_empty() {
            // Plain by the file's rule: as written, even if it looks like `ENC[…]`.
            Zeroizing::new(leaf.text.into_bytes())
        } else {
            let enc = parse_enc(&leaf.text).ok_or_else(|| {
                format!(
                    "{name}: value `{}` is not encrypted, but the file's rule says it must be; the file was tampered with",
                    leaf.lookup
                )
            })?;
            let aad = format!("{}:", leaf.aad_path.join(":"));
            decrypt_value(&key, &enc, aad.as_bytes()).ok_or_else(|| {
                format!(
                    "{name}: value `{}` does not decrypt: the file was tampered with or is corrupt",
                    leaf.lookup
                )
            })?
        };
        let authenticated = !mac_only || encrypted;
        if authenticated {
            mac.update(&*value);
        }
        let text = String::from_utf8(value.to_vec())
            .map_err(|_| format!("{name}: value `{}` is not UTF-8", leaf.lookup))?;
        out.insert(
            leaf.lookup.clone(),
            if authenticated {
                Ok(SecretValue::new(text))
            } else {
                Err(format!(
                    "{name}: `{}` is neither encrypted nor covered by the MAC (the file has mac_only_encrypted), so anyone who can write the file can change it; encrypt it, or re-create the file without --mac-only-encrypted",
                    leaf.lookup
                ))
            },
        );
    }
    let want: String = mac.finalize().iter().map(|b| format!("{b:02X}")).collect();
    let stored = text_of(get(meta, "mac"))
        .and_then(parse_enc)
        .ok_or_else(|| format!("{name}: no MAC; the file was tampered with"))?;
    let modified = text_of(get(meta, "lastmodified")).unwrap_or("");
    let got = decrypt_value(&key, &stored, modified.as_bytes())
        .ok_or_else(|| format!("{name}: the MAC does not decrypt; the file was tampered with"))?;
    if got.as_slice() != want.as_bytes() {
        return Err(format!("{name}: MAC mismatch; the file was tampered with"));
    }
    Ok(out)
}
