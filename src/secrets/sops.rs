//! SOPS files encrypted to age keys, read natively: a file in, its decrypted leaves out.
//!
//! The data key is age-decrypted from `sops.age[].enc`; every `ENC[AES256_GCM,data:…,iv:…,
//! tag:…,type:…]` value is AES-256-GCM with a 32-byte IV and its key path (`a:b:`) as additional
//! data; the MAC (SHA-512 over the values in document order, encrypted with the last-modified
//! time as additional data) is verified, so a tampered file is rejected. YAML, JSON and dotenv.

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

/// A decrypted SOPS file: dotted key path (`db.password`, list items as `list.0`) to value.
pub(crate) type Leaves = BTreeMap<String, SecretValue>;

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
            text: f.to_string(),
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
    let suffix = text_of(get(meta, "unencrypted_suffix")).unwrap_or("_unencrypted");
    let mut mac = Sha512::new();
    let mut out = Leaves::new();
    for leaf in leaves {
        let value: Zeroizing<Vec<u8>> = match parse_enc(&leaf.text) {
            Some(enc) => {
                let aad = format!("{}:", leaf.aad_path.join(":"));
                decrypt_value(&key, &enc, aad.as_bytes())
                    .ok_or_else(|| format!("{name}: value `{}` does not decrypt: the file was tampered with or is corrupt", leaf.lookup))?
            }
            None if leaf.aad_path.iter().any(|k| k.ends_with(suffix)) => {
                Zeroizing::new(leaf.text.into_bytes())
            }
            None if leaf.text.is_empty() => Zeroizing::new(Vec::new()),
            None => {
                return Err(format!(
                    "{name}: value `{}` is not encrypted; the file was tampered with",
                    leaf.lookup
                ));
            }
        };
        mac.update(&*value);
        let text = String::from_utf8(value.to_vec())
            .map_err(|_| format!("{name}: value `{}` is not UTF-8", leaf.lookup))?;
        out.insert(leaf.lookup, SecretValue::new(text));
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
