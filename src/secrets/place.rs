//! Where a reference reads, spelled one way. The isolation check compares these, never config
//! text, so two spellings of one secret are one place: `./x` and `x` (and a hard link or symlink
//! to it: files are compared by device and inode when they exist), a Vault address with and
//! without a trailing `/`, `localhost` and `127.0.0.1`, a store prefix moved into the reference
//! (`prefix: ""` with `aws://prod/db`), the AWS endpoint left to its regional default or spelled
//! out.

use std::path::{Component, Path, PathBuf};

use crate::config::envs::Store;
use crate::secrets::refs::Ref;

/// A store (server and namespace, or file) and a name inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The store, normalised: `vault http://127.0.0.1:8200/ ns= mount=secret`,
    /// `aws https://secretsmanager.eu-central-1.amazonaws.com/ eu-central-1`, `file 64769:1234`.
    pub store: String,
    /// The full name inside the store (Vault path, AWS secret name); empty for a whole file.
    pub name: String,
    /// How to show it in a message (no values, no credentials).
    pub shown: String,
}

/// What a protected environment owns: places, and for a store with a prefix (or a file) every
/// name under it.
#[derive(Debug, Clone)]
pub(crate) struct Territory {
    /// The store.
    pub store: String,
    /// Names under this prefix are owned; `None` owns only `exact`.
    pub prefix: Option<String>,
    /// Owned names.
    pub exact: Vec<String>,
}

impl Territory {
    /// Whether `place` lies inside.
    pub(crate) fn holds(&self, place: &Place) -> bool {
        place.store == self.store
            && (self
                .prefix
                .as_deref()
                .is_some_and(|p| place.name.starts_with(p))
                || self.exact.contains(&place.name))
    }
}

/// A file, as the system knows it (device and inode when it exists, else its absolute path with
/// `.` and `..` folded), and its name as written.
pub(crate) fn file(base: &Path, name: &str) -> (String, String) {
    // One process asks about the same few files for every reference: stat each once.
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<PathBuf, String>> =
            Default::default();
    }
    let p = base.join(name);
    if let Some(id) = SEEN.with(|s| s.borrow().get(&p).cloned()) {
        return (id, name.to_string());
    }
    let id = file_id(&p);
    SEEN.with(|s| s.borrow_mut().insert(p, id.clone()));
    (id, name.to_string())
}

fn file_id(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            format!("file {}:{}", m.dev(), m.ino())
        }
        Err(_) => format!(
            "file {}",
            fold(&std::path::absolute(p).unwrap_or(p.to_path_buf())).display()
        ),
    }
}

fn fold(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// An HTTP(S) address with the spelling taken out: scheme and host lower case, the default port
/// explicit, loopback names one name, no trailing `/`, no query. `None` when it does not parse.
pub(crate) fn address(text: &str) -> Option<String> {
    // Every reference of a store asks about the same address: parse each once.
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<String, Option<String>>> =
            Default::default();
    }
    if let Some(a) = SEEN.with(|s| s.borrow().get(text).cloned()) {
        return a;
    }
    let a = parse_address(text);
    SEEN.with(|s| s.borrow_mut().insert(text.to_string(), a.clone()));
    a
}

fn parse_address(text: &str) -> Option<String> {
    let u = url::Url::parse(text.trim()).ok()?;
    let host = match u.host()? {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                "loopback".to_string()
            } else {
                d
            }
        }
        url::Host::Ipv4(ip) if ip.is_loopback() => "loopback".to_string(),
        url::Host::Ipv6(ip) if ip.is_loopback() => "loopback".to_string(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => format!("[{ip}]"),
    };
    let port = u.port_or_known_default()?;
    let path = u.path().trim_end_matches('/');
    Some(format!("{}://{host}:{port}{path}", u.scheme()))
}

/// Slashes collapsed, none leading or trailing.
fn segments(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn vault_store(
    address_text: &str,
    namespace: Option<&str>,
    mount: &str,
) -> (String, String, String) {
    let addr = address(address_text).unwrap_or_else(|| address_text.trim().to_string());
    let ns = segments(namespace.unwrap_or(""));
    let mount = segments(mount);
    (
        format!("vault {addr} ns={ns} mount={mount}"),
        address_text.trim_end_matches('/').to_string(),
        mount,
    )
}

fn aws_store(region: &str, endpoint: Option<&str>) -> (String, String) {
    let region = region.trim().to_ascii_lowercase();
    let default = format!("https://secretsmanager.{region}.amazonaws.com");
    let endpoint = endpoint.unwrap_or(&default);
    let addr = address(endpoint).unwrap_or_else(|| endpoint.trim().to_string());
    (format!("aws {addr} {region}"), region)
}

/// Where `r` reads when resolved against `store` (files relative to `base`). `None` for the
/// process environment, which has no place of its own.
pub(crate) fn of(store: Option<&Store>, r: &Ref, base: &Path) -> Option<Place> {
    match (r, store) {
        (Ref::Sops { file: f, .. }, _) => {
            let (store, shown) = file(base, f);
            Some(Place {
                store,
                name: String::new(),
                shown,
            })
        }
        (Ref::Age { .. }, Some(Store::Age { file: f, .. })) => {
            let (store, shown) = file(base, f);
            Some(Place {
                store,
                name: String::new(),
                shown,
            })
        }
        (
            Ref::Vault { path, .. },
            Some(Store::Vault {
                address: a,
                namespace,
                mount,
                prefix,
                ..
            }),
        ) => {
            let (store, addr, mount) = vault_store(a, namespace.as_deref(), mount);
            let name = segments(&format!("{prefix}{path}"));
            Some(Place {
                store,
                shown: format!("{addr} {mount}/{name}"),
                name,
            })
        }
        (
            Ref::VaultDb { mount: m, role, .. },
            Some(Store::Vault {
                address: a,
                namespace,
                ..
            }),
        ) => {
            let (store, addr, mount) = vault_store(a, namespace.as_deref(), m);
            let name = format!("creds/{role}");
            Some(Place {
                store,
                shown: format!("{addr} {mount}/{name}"),
                name,
            })
        }
        (
            Ref::Ssm { path },
            Some(Store::Aws {
                region,
                prefix,
                endpoint,
                ..
            }),
        ) => {
            let (store, region) = aws_store(region, endpoint.as_deref());
            let name = format!("/{}{path}", prefix.trim_start_matches('/'));
            Some(Place {
                store: store.replacen("aws ", "ssm ", 1),
                shown: format!("SSM parameter `{name}` in {region}"),
                name,
            })
        }
        (
            Ref::Aws { name, .. },
            Some(Store::Aws {
                region,
                prefix,
                endpoint,
                ..
            }),
        ) => {
            let (store, region) = aws_store(region, endpoint.as_deref());
            let name = format!("{prefix}{name}");
            Some(Place {
                store,
                shown: format!("AWS secret `{name}` in {region}"),
                name,
            })
        }
        _ => None,
    }
}

/// What a protected environment's store owns by itself: a whole age file, everything under a
/// Vault or AWS prefix (nothing more when the prefix is empty: then only the names its
/// references read).
pub(crate) fn territory(store: &Store, base: &Path) -> Option<Territory> {
    match store {
        Store::Age { file: f, .. } => Some(Territory {
            store: file(base, f).0,
            prefix: Some(String::new()),
            exact: Vec::new(),
        }),
        Store::Vault {
            address: a,
            namespace,
            mount,
            prefix,
            ..
        } => {
            let store = vault_store(a, namespace.as_deref(), mount).0;
            let p = segments(prefix);
            Some(Territory {
                store,
                prefix: (!p.is_empty()).then(|| format!("{p}/")),
                exact: Vec::new(),
            })
        }
        Store::Aws {
            region,
            prefix,
            endpoint,
            ..
        } => {
            let store = aws_store(region, endpoint.as_deref()).0;
            Some(Territory {
                store,
                prefix: (!prefix.is_empty()).then(|| prefix.clone()),
                exact: Vec::new(),
            })
        }
        Store::Sops { .. } | Store::Env { .. } => None,
    }
}

/// Where a store itself starts: the place a reference with an empty name would read. A store
/// whose start lies in a protected territory reads the protected environment's secrets.
pub(crate) fn start(store: &Store, base: &Path) -> Option<Place> {
    match store {
        Store::Age { .. } => of(Some(store), &Ref::Age { key: String::new() }, base),
        Store::Vault { prefix, .. } => {
            let mut p = of(
                Some(store),
                &Ref::Vault {
                    path: String::new(),
                    key: String::new(),
                    version: None,
                },
                base,
            )?;
            // `prefix: prod` reads `prod/…`: the start is inside the directory.
            if !segments(prefix).is_empty() {
                p.name.push('/');
            }
            Some(p)
        }
        Store::Aws { .. } => of(
            Some(store),
            &Ref::Aws {
                name: String::new(),
                json_path: None,
                stage: None,
                version: None,
            },
            base,
        ),
        Store::Sops { .. } | Store::Env { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_compared_without_their_spelling() {
        let a = address("http://127.0.0.1:8200").unwrap();
        assert_eq!(address("http://localhost:8200/").unwrap(), a);
        assert_eq!(address("HTTP://LocalHost:8200").unwrap(), a);
        assert_eq!(address("http://[::1]:8200").unwrap(), a);
        assert_eq!(
            address("https://vault.example.com").unwrap(),
            address("https://Vault.Example.com.:443/").unwrap()
        );
        assert_ne!(address("http://127.0.0.1:8201").unwrap(), a);
        assert_ne!(address("https://127.0.0.1:8200").unwrap(), a);
        assert!(address("not a url").is_none());
    }

    #[test]
    fn files_are_compared_by_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/dev.age"), "x").unwrap();
        std::os::unix::fs::symlink("secrets/dev.age", dir.path().join("link.age")).unwrap();
        let one = file(dir.path(), "secrets/dev.age").0;
        assert_eq!(file(dir.path(), "./secrets/dev.age").0, one);
        assert_eq!(file(dir.path(), "secrets/../secrets/dev.age").0, one);
        assert_eq!(file(dir.path(), "link.age").0, one);
        assert_eq!(
            file(dir.path(), "./missing.age").0,
            file(dir.path(), "secrets/../missing.age").0
        );
    }
}
