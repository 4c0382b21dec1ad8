//! The age store: an age-encrypted YAML map (`NAME: "value"`) per environment, the embedded
//! default that needs no server.
//!
//! Identities come from `$SLUICE_AGE_KEY` (key text), `$SLUICE_AGE_KEY_FILE`, the store's
//! `identity:` setting, or `~/.config/sluice/keys/<env>.txt`; age X25519 keys and SSH keys work,
//! and passphrase-encrypted stores read `$SLUICE_AGE_PASSPHRASE`. Files are written 0600 through
//! a temporary file and a rename. Plaintext only lives in zeroizing buffers and [`SecretValue`]s.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use super::SecretValue;
use crate::config::yaml;
use crate::error::Error;

/// The highest scrypt work factor (log2 N) accepted for passphrase stores: 2^20 costs about
/// 1 GiB and a second or two; a hostile file asking for more is refused instead of exhausting
/// the machine (the age CLI itself refuses 23).
pub(crate) const MAX_SCRYPT_WORK_FACTOR: u8 = 20;

/// The scrypt work factor sluice writes passphrase stores with (2^18: about 256 MiB).
pub(crate) const SCRYPT_WORK_FACTOR: u8 = 18;

/// Where a store is and how to open it.
#[derive(Debug, Clone)]
pub(crate) struct AgeStore {
    /// The environment, for messages.
    pub env: String,
    /// The encrypted file.
    pub file: PathBuf,
    /// An identity file from the config, if any.
    pub identity: Option<PathBuf>,
    /// Recipients to encrypt to (empty: derived from the identity).
    pub recipients: Vec<String>,
}

fn store_error(store: &AgeStore, detail: impl Into<String>) -> Error {
    Error::External {
        what: format!(
            "age store of environment `{}` ({})",
            store.env,
            store.file.display()
        ),
        detail: detail.into(),
    }
}

/// The default identity file of an environment.
pub(crate) fn default_identity_path(env: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("sluice").join("keys").join(format!("{env}.txt")))
}

/// Where the identity comes from, in order of precedence.
enum IdentitySource {
    Text(Zeroizing<String>),
    File(PathBuf),
}

impl AgeStore {
    fn identity_source(&self) -> Option<IdentitySource> {
        if let Ok(k) = std::env::var("SLUICE_AGE_KEY") {
            return Some(IdentitySource::Text(Zeroizing::new(k)));
        }
        if let Some(f) = std::env::var_os("SLUICE_AGE_KEY_FILE") {
            return Some(IdentitySource::File(PathBuf::from(f)));
        }
        if let Some(f) = &self.identity {
            return Some(IdentitySource::File(f.clone()));
        }
        default_identity_path(&self.env).map(IdentitySource::File)
    }

    /// The identity file's path, when the identity comes from a file.
    pub(crate) fn identity_path(&self) -> Option<PathBuf> {
        match self.identity_source()? {
            IdentitySource::File(p) => Some(p),
            IdentitySource::Text(_) => None,
        }
    }

    fn identity_text(&self) -> Result<(Zeroizing<String>, String), Error> {
        match self.identity_source() {
            Some(IdentitySource::Text(t)) => Ok((t, "$SLUICE_AGE_KEY".into())),
            Some(IdentitySource::File(p)) => {
                let text = std::fs::read_to_string(&p).map_err(|e| {
                    store_error(
                        self,
                        format!(
                            "cannot read identity {} ({e}); run `sluice secrets init --env {}` or set SLUICE_AGE_KEY_FILE",
                            p.display(),
                            self.env
                        ),
                    )
                })?;
                Ok((Zeroizing::new(text), p.display().to_string()))
            }
            None => Err(store_error(
                self,
                "no identity: set SLUICE_AGE_KEY or SLUICE_AGE_KEY_FILE, or `identity:` in sluice.yaml",
            )),
        }
    }

    pub(crate) fn identities(&self) -> Result<Vec<Box<dyn age::Identity>>, Error> {
        let (text, name) = self.identity_text()?;
        if text.contains("AGE-SECRET-KEY-") {
            let file = age::IdentityFile::from_buffer(BufReader::new(text.as_bytes()))
                .map_err(|e| store_error(self, format!("identity {name}: {e}")))?;
            return file
                .into_identities()
                .map_err(|e| store_error(self, format!("identity {name}: {e}")));
        }
        if text.contains("PRIVATE KEY-----") {
            let id = age::ssh::Identity::from_buffer(
                BufReader::new(text.as_bytes()),
                Some(name.clone()),
            )
            .map_err(|e| store_error(self, format!("identity {name}: {e}")))?;
            if matches!(id, age::ssh::Identity::Unsupported(_)) {
                return Err(store_error(
                    self,
                    format!("identity {name}: unsupported SSH key type"),
                ));
            }
            return Ok(vec![Box::new(id)]);
        }
        Err(store_error(
            self,
            format!(
                "identity {name}: neither an age key (AGE-SECRET-KEY-1…) nor an SSH private key"
            ),
        ))
    }

    fn recipients(&self) -> Result<Vec<Box<dyn age::Recipient + Send>>, Error> {
        if !self.recipients.is_empty() {
            let mut out: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
            for r in &self.recipients {
                if let Ok(x) = age::x25519::Recipient::from_str(r) {
                    out.push(Box::new(x));
                } else if let Ok(s) = age::ssh::Recipient::from_str(r) {
                    out.push(Box::new(s));
                } else {
                    return Err(store_error(
                        self,
                        format!("recipient `{r}` is neither an age nor an SSH public key"),
                    ));
                }
            }
            return Ok(out);
        }
        let (text, name) = self.identity_text()?;
        if !text.contains("AGE-SECRET-KEY-") {
            return Err(store_error(
                self,
                format!(
                    "cannot derive recipients from {name}; list `recipients:` (public keys) for this store"
                ),
            ));
        }
        age::IdentityFile::from_buffer(BufReader::new(text.as_bytes()))
            .and_then(|f| f.to_recipients().map_err(std::io::Error::other))
            .map_err(|e| store_error(self, format!("identity {name}: {e}")))
    }

    /// Decrypt the store. A missing file is an error naming what to run.
    pub(crate) fn read(&self) -> Result<BTreeMap<String, SecretValue>, Error> {
        let bytes = std::fs::read(&self.file).map_err(|e| {
            store_error(
                self,
                format!(
                    "cannot read ({e}); create it with `sluice secrets init --env {}`",
                    self.env
                ),
            )
        })?;
        let plain = self.decrypt(&bytes)?;
        parse_map(&plain).map_err(|e| store_error(self, e))
    }

    fn decrypt(&self, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let reader = age::armor::ArmoredReader::new(bytes);
        let decryptor = age::Decryptor::new(reader)
            .map_err(|e| store_error(self, format!("not an age file: {e}")))?;
        let mut plain = Zeroizing::new(Vec::new());
        let mut stream = if decryptor.is_scrypt() {
            let pass = std::env::var("SLUICE_AGE_PASSPHRASE").map_err(|_| {
                store_error(
                    self,
                    "the store is passphrase-encrypted; set SLUICE_AGE_PASSPHRASE",
                )
            })?;
            let mut id = age::scrypt::Identity::new(SecretString::from(pass));
            id.set_max_work_factor(MAX_SCRYPT_WORK_FACTOR);
            decryptor
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .map_err(|e| store_error(self, format!("cannot decrypt: {e}")))?
        } else {
            let ids = self.identities()?;
            decryptor
                .decrypt(ids.iter().map(|i| i.as_ref()))
                .map_err(|e| store_error(self, format!("cannot decrypt: {e}")))?
        };
        stream
            .read_to_end(&mut plain)
            .map_err(|e| store_error(self, format!("cannot decrypt: {e}")))?;
        Ok(plain)
    }

    /// Encrypt `map` and replace the store atomically (0600, temp file + rename). A
    /// passphrase store stays a passphrase store.
    pub(crate) fn write(&self, map: &BTreeMap<String, SecretValue>) -> Result<(), Error> {
        self.write_with(map, self.is_passphrase_store())
    }

    fn write_with(
        &self,
        map: &BTreeMap<String, SecretValue>,
        passphrase: bool,
    ) -> Result<(), Error> {
        let plain = render_map(map);
        let encryptor = if passphrase {
            let pass = std::env::var("SLUICE_AGE_PASSPHRASE").map_err(|_| {
                store_error(
                    self,
                    "the store is passphrase-encrypted; set SLUICE_AGE_PASSPHRASE",
                )
            })?;
            let mut recipient = age::scrypt::Recipient::new(SecretString::from(pass));
            // A fixed factor well under the cap, so every machine that may read the store accepts it.
            recipient.set_work_factor(SCRYPT_WORK_FACTOR);
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .map_err(|e| store_error(self, format!("cannot encrypt: {e}")))?
        } else {
            let recipients = self.recipients()?;
            age::Encryptor::with_recipients(
                recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
            )
            .map_err(|e| store_error(self, format!("cannot encrypt: {e}")))?
        };
        let mut out = Vec::new();
        let io = |e: std::io::Error| store_error(self, format!("cannot encrypt: {e}"));
        {
            let armor =
                age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                    .map_err(io)?;
            let mut w = encryptor.wrap_output(armor).map_err(io)?;
            w.write_all(&plain).map_err(io)?;
            w.finish().and_then(|a| a.finish()).map_err(io)?;
        }
        write_private(&self.file, &out)
    }

    fn is_passphrase_store(&self) -> bool {
        std::fs::read(&self.file)
            .ok()
            .and_then(|b| {
                age::Decryptor::new(age::armor::ArmoredReader::new(&b[..]))
                    .ok()
                    .map(|d| d.is_scrypt())
            })
            .unwrap_or(false)
    }
}

impl AgeStore {
    /// Create an empty store encrypted with the passphrase in `$SLUICE_AGE_PASSPHRASE` (no
    /// identity needed). An existing store is never overwritten.
    pub(crate) fn init_passphrase(&self) -> Result<(), Error> {
        if self.file.exists() {
            return Err(Error::Usage(format!(
                "{} already exists",
                self.file.display()
            )));
        }
        self.write_with(&BTreeMap::new(), true)
    }

    /// Create the identity (when its file is missing) and an empty store. Returns the public key
    /// when an identity was created. An existing store is never overwritten.
    pub(crate) fn init(&self) -> Result<Option<String>, Error> {
        if self.file.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; `sluice secrets set --env {}` adds to it",
                self.file.display(),
                self.env
            )));
        }
        let mut created = None;
        if let Some(path) = self.identity_path()
            && !path.exists()
        {
            let (text, public) = generate_identity();
            write_private(&path, text.as_bytes())?;
            created = Some(public);
        }
        self.write(&BTreeMap::new())?;
        Ok(created)
    }

    /// Set one key to `value`, keeping the others.
    pub(crate) fn set(&self, key: &str, value: SecretValue) -> Result<(), Error> {
        let mut map = self.read()?;
        map.insert(key.to_string(), value);
        self.write(&map)
    }
}

pub(crate) use crate::fsio::write_private;

/// Create a new X25519 identity; returns (identity file text, public key).
pub(crate) fn generate_identity() -> (Zeroizing<String>, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let text = Zeroizing::new(format!(
        "# sluice age identity\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    ));
    (text, public)
}

/// The store's plaintext: a flat YAML map of strings, one `NAME: "value"` per line.
fn render_map(map: &BTreeMap<String, SecretValue>) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    for (k, v) in map {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        let quoted = Zeroizing::new(serde_json::to_string(v.expose()).unwrap_or_default());
        out.extend_from_slice(quoted.as_bytes());
        out.push(b'\n');
    }
    out
}

fn parse_map(plain: &[u8]) -> Result<BTreeMap<String, SecretValue>, String> {
    let text = std::str::from_utf8(plain)
        .map_err(|_| "the decrypted store is not UTF-8 text".to_string())?;
    // Positions only; no value is ever part of an error here.
    let node = yaml::parse("store", text).map_err(|p| {
        format!(
            "the decrypted store is not YAML (line {}, column {})",
            p.at.line, p.at.col
        )
    })?;
    let mut map = BTreeMap::new();
    match node.value {
        yaml::Value::Null => {}
        yaml::Value::Map(entries) => {
            for (k, v) in entries {
                let value = match v.value {
                    yaml::Value::Str(s) => s,
                    yaml::Value::Int(i) => i.to_string(),
                    yaml::Value::Bool(b) => b.to_string(),
                    yaml::Value::Float(f) => f.to_string(),
                    yaml::Value::Null => String::new(),
                    _ => {
                        return Err(format!(
                            "key `{}` (line {}) must hold a string",
                            k.key_text(),
                            k.line
                        ));
                    }
                };
                map.insert(k.key_text(), SecretValue::new(value));
            }
        }
        _ => return Err("the decrypted store must be a YAML mapping of NAME: value".into()),
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trips_awkward_values() {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("A", "plain"),
            ("B", "quote \" and \\ and\nnewline"),
            ("C", ""),
            ("D", "ünï: #x"),
        ] {
            m.insert(k.to_string(), SecretValue::new(v.to_string()));
        }
        let text = render_map(&m);
        let back = parse_map(&text).unwrap();
        for (k, v) in &m {
            assert_eq!(back[k].expose(), v.expose());
        }
    }

    #[test]
    fn encrypt_and_decrypt_with_a_generated_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (text, public) = generate_identity();
        assert!(public.starts_with("age1"));
        let key = dir.path().join("k.txt");
        write_private(&key, text.as_bytes()).unwrap();
        let store = AgeStore {
            env: "dev".into(),
            file: dir.path().join("dev.age"),
            identity: Some(key),
            recipients: vec![],
        };
        let mut m = BTreeMap::new();
        m.insert("TOKEN".into(), SecretValue::new("s3nt1nel-value".into()));
        store.write(&m).unwrap();
        let raw = std::fs::read(&store.file).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("s3nt1nel"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&store.file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.read().unwrap()["TOKEN"].expose(), "s3nt1nel-value");
    }
}
