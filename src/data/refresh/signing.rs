//! Signed refresh reports: the report as JSON, an ed25519 signature over its canonical form
//! (every object's keys sorted, no whitespace, the `signature` member left out) added as
//! `signature`, and the check an auditor runs with the public key alone.

use base64::Engine;
use serde_json::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The DER inside one PEM block labelled `label`.
fn pem(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("not a PEM `{label}` block"))?;
    let compact: String = body.split_whitespace().collect();
    B64.decode(compact)
        .map_err(|e| format!("the PEM `{label}` block is not base64 ({e})"))
}

/// The 32 bytes of an ed25519 public key in SPKI PEM.
pub(crate) fn public_key(pem_text: &str) -> Result<[u8; 32], String> {
    let der = pem(pem_text, "PUBLIC KEY")?;
    match der.strip_prefix(&SPKI_PREFIX) {
        Some(key) if key.len() == 32 => Ok(key.try_into().expect("32 bytes")),
        _ => Err("not an ed25519 public key (make one with `openssl pkey -in KEY -pubout`)".into()),
    }
}

/// The bytes a signature covers: the report without `signature`, keys sorted (serde_json's
/// maps are ordered), no whitespace.
fn canonical(report: &Value) -> Vec<u8> {
    let mut v = report.clone();
    if let Value::Object(map) = &mut v {
        map.remove("signature");
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Sign `report` with an ed25519 private key in PKCS#8 PEM; returns it with `signature` added.
/// A key that does not parse is an error naming only what is wrong, never the key.
pub(crate) fn sign(report: &Value, private_pem: &str) -> Result<Value, String> {
    use aws_lc_rs::signature::KeyPair;
    let der = pem(private_pem, "PRIVATE KEY")?;
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|_| {
            "the signing key is not an ed25519 private key in PKCS#8 PEM (make one with `openssl genpkey -algorithm ed25519`)".to_string()
        })?;
    let signature = pair.sign(&canonical(report));
    let mut out = report.clone();
    if let Value::Object(map) = &mut out {
        map.insert(
            "signature".into(),
            serde_json::json!({
                "algorithm": "ed25519",
                "public_key": B64.encode(pair.public_key().as_ref()),
                "value": B64.encode(signature.as_ref()),
            }),
        );
    }
    Ok(out)
}

/// Check a signed report against the expected public key. `Err` says why it does not hold.
pub(crate) fn check(report: &Value, expected: &[u8; 32]) -> Result<(), String> {
    let sig = report.get("signature").ok_or("the report is not signed")?;
    if sig.get("algorithm").and_then(Value::as_str) != Some("ed25519") {
        return Err("the signature is not ed25519".into());
    }
    let key = sig
        .get("public_key")
        .and_then(Value::as_str)
        .and_then(|k| B64.decode(k).ok())
        .ok_or("the signature names no public key")?;
    if key != expected {
        return Err("the report was signed with another key than the plan's public_key".into());
    }
    let value = sig
        .get("value")
        .and_then(Value::as_str)
        .and_then(|v| B64.decode(v).ok())
        .ok_or("the signature has no value")?;
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, expected)
        .verify(&canonical(report), &value)
        .map_err(|_| {
            "the signature does not match the report: it was changed after signing".to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_report_checks_and_any_change_breaks_it() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let private = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            B64.encode(pkcs8.as_ref())
        );
        let report = serde_json::json!({"plan": "nightly", "tables": [{"columns": {"email": "email (domain email)"}}]});
        let signed = sign(&report, &private).unwrap();
        let key: [u8; 32] = B64
            .decode(signed["signature"]["public_key"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        check(&signed, &key).unwrap();
        let mut changed = signed.clone();
        changed["tables"][0]["columns"]["email"] = "keep".into();
        assert!(
            check(&changed, &key)
                .unwrap_err()
                .contains("changed after signing")
        );
        assert!(check(&report, &key).unwrap_err().contains("not signed"));
        let spki = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            B64.encode([SPKI_PREFIX.as_slice(), &key].concat())
        );
        assert_eq!(public_key(&spki).unwrap(), key);
        assert!(
            sign(
                &report,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
            )
            .is_err()
        );
    }
}
