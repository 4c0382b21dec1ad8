//! Secret references: text in (`vault://db#url?version=3`), a [`Ref`] out.
//!
//! Grammar (`[]` optional):
//! - `age://KEY` — key KEY of the environment's age store
//! - `env://VAR` — process environment variable VAR (plus the store's prefix, if any)
//! - `vault://PATH#KEY[?version=N]` — key KEY of the KV secret at PATH under the env's mount/prefix
//! - `aws://NAME[#JSON.PATH][?stage=STAGE|version=ID]` — a Secrets Manager secret (string, or a
//!   key inside a JSON secret) under the env's prefix
//! - `sops://FILE#A.B` — key path A.B inside a SOPS-encrypted file, relative to sluice.yaml
//! - `vault-db://ROLE#FIELD[?mount=M]` — field FIELD (`username`, `password`) of credentials
//!   the Vault database engine at mount M (default `database`) issues for ROLE, with a lease

use std::fmt;

/// A parsed secret reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Ref {
    /// A key of the environment's age store.
    Age {
        /// The key.
        key: String,
    },
    /// A process environment variable.
    Env {
        /// The variable.
        var: String,
    },
    /// A key of a Vault KV secret.
    Vault {
        /// Path under the environment's mount and prefix.
        path: String,
        /// Key inside the secret.
        key: String,
        /// KV v2 version (None: latest).
        version: Option<u64>,
    },
    /// An AWS Secrets Manager secret.
    Aws {
        /// Secret name under the environment's prefix.
        name: String,
        /// Dotted path inside a JSON secret (None: the whole string).
        json_path: Option<String>,
        /// Version stage (`AWSCURRENT`, `AWSPREVIOUS`, custom).
        stage: Option<String>,
        /// Version id.
        version: Option<String>,
    },
    /// A field of dynamic credentials from a Vault secrets engine (`creds/ROLE`).
    VaultDb {
        /// The engine's mount.
        mount: String,
        /// The role.
        role: String,
        /// The field of the issued credentials (`username`, `password`).
        field: String,
    },
    /// An AWS Systems Manager parameter, or every parameter under a path (`path` ends in `/`).
    Ssm {
        /// Parameter name (or path) under the store's prefix.
        path: String,
    },
    /// A value inside a SOPS file.
    Sops {
        /// The file, relative to sluice.yaml.
        file: String,
        /// Dotted key path.
        path: String,
    },
}

impl Ref {
    /// The scheme name (`age`, `env`, `vault`, `aws`, `sops`).
    pub(crate) fn scheme(&self) -> &'static str {
        match self {
            Ref::Age { .. } => "age",
            Ref::Env { .. } => "env",
            Ref::Vault { .. } => "vault",
            Ref::Aws { .. } => "aws",
            Ref::Sops { .. } => "sops",
            Ref::VaultDb { .. } => "vault-db",
            Ref::Ssm { .. } => "ssm",
        }
    }

    /// The provider an environment needs to resolve it (`vault-db` is Vault's).
    pub(crate) fn provider(&self) -> &'static str {
        match self {
            Ref::VaultDb { .. } => "vault",
            Ref::Ssm { .. } => "aws",
            other => other.scheme(),
        }
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Age { key } => write!(f, "age://{key}"),
            Ref::Env { var } => write!(f, "env://{var}"),
            Ref::Vault { path, key, version } => {
                write!(f, "vault://{path}#{key}")?;
                if let Some(v) = version {
                    write!(f, "?version={v}")?;
                }
                Ok(())
            }
            Ref::Aws {
                name,
                json_path,
                stage,
                version,
            } => {
                write!(f, "aws://{name}")?;
                if let Some(p) = json_path {
                    write!(f, "#{p}")?;
                }
                match (stage, version) {
                    (Some(s), _) => write!(f, "?stage={s}"),
                    (None, Some(v)) => write!(f, "?version={v}"),
                    _ => Ok(()),
                }
            }
            Ref::Sops { file, path } => write!(f, "sops://{file}#{path}"),
            Ref::Ssm { path } => write!(f, "ssm://{path}"),
            Ref::VaultDb { mount, role, field } => {
                write!(f, "vault-db://{role}#{field}")?;
                if mount != "database" {
                    write!(f, "?mount={mount}")?;
                }
                Ok(())
            }
        }
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn is_path(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != ".." && is_name(seg))
}

/// Parse a reference; the error says what is wrong and shows the expected form.
pub(crate) fn parse(text: &str) -> Result<Ref, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "`{text}` is not a secret reference; write scheme://…, e.g. age://KEY, env://VAR, vault://path#key, aws://name#key, sops://file.yaml#a.b, or use {{ value: … }} for a literal"
        ));
    };
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (target, fragment) = match body.split_once('#') {
        Some((t, f)) => (t, Some(f)),
        None => (body, None),
    };
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(q) = query {
        for pair in q.split('&') {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{text}`: query `{pair}` must be key=value"))?;
            params.push((k, v));
        }
    }
    let unknown_param = |allowed: &[&str]| -> Result<(), String> {
        match params.iter().find(|(k, _)| !allowed.contains(k)) {
            Some((k, _)) if allowed.is_empty() => {
                Err(format!("`{text}`: {scheme}:// takes no `?{k}=` option"))
            }
            Some((k, _)) => Err(format!(
                "`{text}`: unknown option `{k}`; {scheme}:// takes {}",
                allowed.join(", ")
            )),
            None => Ok(()),
        }
    };
    let param = |k: &str| params.iter().find(|(p, _)| *p == k).map(|(_, v)| *v);
    match scheme {
        "age" | "env" => {
            unknown_param(&[])?;
            if fragment.is_some() || !is_name(target) {
                return Err(format!(
                    "`{text}`: write {scheme}://NAME (letters, digits, _ - .)"
                ));
            }
            Ok(if scheme == "age" {
                Ref::Age {
                    key: target.to_string(),
                }
            } else {
                Ref::Env {
                    var: target.to_string(),
                }
            })
        }
        "vault" => {
            unknown_param(&["version"])?;
            let key = fragment.filter(|k| is_name(k));
            match (is_path(target), key) {
                (true, Some(key)) => {
                    let version = match param("version") {
                        Some(v) => Some(
                            v.parse::<u64>()
                                .map_err(|_| format!("`{text}`: version must be a number"))?,
                        ),
                        None => None,
                    };
                    Ok(Ref::Vault {
                        path: target.to_string(),
                        key: key.to_string(),
                        version,
                    })
                }
                _ => Err(format!(
                    "`{text}`: write vault://PATH#KEY[?version=N], e.g. vault://db#password"
                )),
            }
        }
        "aws" => {
            unknown_param(&["stage", "version"])?;
            if !is_path(target) || fragment.is_some_and(|f| f.split('.').any(|s| s.is_empty())) {
                return Err(format!(
                    "`{text}`: write aws://NAME[#json.key][?stage=AWSPREVIOUS|version=ID]"
                ));
            }
            if param("stage").is_some() && param("version").is_some() {
                return Err(format!("`{text}`: give stage or version, not both"));
            }
            Ok(Ref::Aws {
                name: target.to_string(),
                json_path: fragment.map(str::to_string),
                stage: param("stage").map(str::to_string),
                version: param("version").map(str::to_string),
            })
        }
        "sops" => {
            unknown_param(&[])?;
            match fragment {
                Some(p) if !target.is_empty() && !p.split('.').any(str::is_empty) => {
                    Ok(Ref::Sops {
                        file: target.to_string(),
                        path: p.to_string(),
                    })
                }
                _ => Err(format!("`{text}`: write sops://FILE#key.path")),
            }
        }
        "ssm" => {
            unknown_param(&[])?;
            let name = target.strip_suffix('/').unwrap_or(target);
            if fragment.is_some() || !is_path(name) {
                return Err(format!(
                    "`{text}`: write ssm://NAME (one parameter) or ssm://PATH/ (every parameter under it), e.g. ssm://app/db_url"
                ));
            }
            Ok(Ref::Ssm {
                path: target.to_string(),
            })
        }
        "vault-db" => {
            unknown_param(&["mount"])?;
            let mount = param("mount").unwrap_or("database");
            match fragment {
                Some(field) if is_name(target) && is_name(field) && is_path(mount) => {
                    Ok(Ref::VaultDb {
                        mount: mount.to_string(),
                        role: target.to_string(),
                        field: field.to_string(),
                    })
                }
                _ => Err(format!(
                    "`{text}`: write vault-db://ROLE#username or vault-db://ROLE#password[?mount=database]"
                )),
            }
        }
        other => Err(format!(
            "`{text}`: unknown scheme `{other}`; use age, env, vault, vault-db, aws, ssm or sops"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in [
            "age://DATABASE_URL",
            "env://CI_TOKEN",
            "vault://db/main#password",
            "vault://db#url?version=3",
            "aws://db#url",
            "aws://stripe?stage=AWSPREVIOUS",
            "aws://cfg#a.b.c?version=abc-123",
            "sops://secrets/prod.yaml#db.password",
            "vault-db://app#username",
            "vault-db://app#password?mount=pg",
            "ssm://app/db_url",
            "ssm://app/",
        ] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_with_guidance() {
        for (text, want) in [
            ("DATABASE_URL", "not a secret reference"),
            ("vault://db", "write vault://PATH#KEY"),
            ("vault://../x#k", "write vault://PATH#KEY"),
            ("vault://db#k?version=x", "version must be a number"),
            ("vault://db#k?ver=1", "unknown option `ver`"),
            ("age://A#b", "write age://NAME"),
            ("aws://a?stage=X&version=Y", "not both"),
            ("gcp://x", "unknown scheme `gcp`"),
            ("sops://f.yaml", "write sops://FILE#key.path"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
