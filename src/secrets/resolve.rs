//! Resolving an environment: the `secrets:` of `sluice.yaml` in, named [`SecretValue`]s out.
//!
//! Every reference resolves in its own environment with that environment's store; each store is
//! read once however many variables point into it. A missing or unreadable secret fails the whole
//! resolution before anything starts, naming the environment, the variable and the reference,
//! never a value.

use std::collections::BTreeMap;

use super::age_store::AgeStore;
use super::aws::{AwsStore, Wanted};
use super::refs::{self, Ref};
use super::vault::VaultStore;
use super::{Miss, SecretValue};
use crate::config::Loaded;
use crate::config::envs::{Source, Store};
use crate::error::Error;

/// Where one variable comes from in one environment.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// A literal `{ value: … }`.
    Literal(SecretValue),
    /// A reference.
    Ref {
        /// The parsed reference.
        reference: Ref,
        /// A missing secret is skipped.
        optional: bool,
    },
}

/// A variable of an environment, before resolution.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The variable name.
    pub name: String,
    /// Its source.
    pub origin: Origin,
    /// Whether the source is the variable's `default:`.
    pub default: bool,
    /// Whether `run` hands it over as a file.
    pub as_file: bool,
    /// Which named store of the environment it reads (`None`: `secrets:`).
    pub store: Option<String>,
}

impl Entry {
    /// How the source is shown to people (`age://X`, `literal`), never a value.
    pub(crate) fn source_text(&self) -> String {
        let text = self.own_text();
        if self.default {
            format!("{text} (default)")
        } else {
            text
        }
    }

    fn own_text(&self) -> String {
        match &self.origin {
            Origin::Literal(_) => "literal".into(),
            Origin::Ref {
                reference,
                optional,
            } => {
                if *optional {
                    format!("{reference} (optional)")
                } else {
                    reference.to_string()
                }
            }
        }
    }
}

fn fail(env: &str, var: &str, reference: &str, detail: impl std::fmt::Display) -> Error {
    Error::External {
        what: format!("environment `{env}`, variable `{var}` ({reference})"),
        detail: detail.to_string(),
    }
}

/// The environment's declared settings, or a usage error listing the known ones.
fn environment<'a>(
    loaded: &'a Loaded,
    env: &str,
) -> Result<&'a crate::config::envs::Environment, Error> {
    loaded.config.environments.get(env).ok_or_else(|| {
        let known: Vec<&str> = loaded
            .config
            .environments
            .keys()
            .map(String::as_str)
            .collect();
        Error::Usage(format!(
            "{}: no environment `{env}`; declared: {}",
            loaded.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// The variables defined for `env`, in name order (optionally only `only`).
pub(crate) fn entries(loaded: &Loaded, env: &str, only: &[String]) -> Result<Vec<Entry>, Error> {
    environment(loaded, env)?;
    for o in only {
        if !loaded.config.secrets.contains_key(o) {
            return Err(Error::Usage(format!(
                "--only {o}: no such variable under `secrets:`"
            )));
        }
    }
    let mut out = Vec::new();
    for (name, spec) in &loaded.config.secrets {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let (source_ref, default) = match crate::config::envs::source_in(spec, env) {
            None | Some((Source::None { .. }, _)) => continue,
            Some(found) => found,
        };
        let origin = match source_ref {
            Source::None { .. } => continue,
            Source::Literal { value } => Origin::Literal(SecretValue::new(value.clone())),
            Source::Ref(text) => Origin::Ref {
                reference: refs::parse(text)
                    .map_err(|e| Error::Usage(format!("secrets.{name}.{env}: {e}")))?,
                optional: false,
            },
            Source::Detailed {
                reference,
                optional,
                ..
            } => Origin::Ref {
                reference: refs::parse(reference)
                    .map_err(|e| Error::Usage(format!("secrets.{name}.{env}: {e}")))?,
                optional: *optional,
            },
        };
        let as_file = matches!(
            source_ref,
            Source::Detailed {
                delivery: crate::config::envs::Delivery::File,
                ..
            }
        );
        let store = match source_ref {
            Source::Detailed { store, .. } => store.clone(),
            _ => None,
        };
        out.push(Entry {
            name: name.clone(),
            origin,
            default,
            as_file,
            store,
        });
    }
    Ok(out)
}

/// An environment's secret store, built once from its configuration (see [`Resolver`]): where
/// every reference of the environment is fetched from.
#[derive(Debug, Clone)]
pub(crate) enum Provider {
    /// `provider: age`, an encrypted local file.
    Age(AgeStore),
    /// `provider: sops`: files named by each reference, decrypted with this identity.
    Sops(AgeStore),
    /// `provider: vault` (or OpenBao).
    Vault(VaultStore),
    /// `provider: aws`, Secrets Manager.
    Aws(AwsStore),
    /// `provider: env`, the process environment, names prefixed.
    Env {
        /// Prefix of every variable name.
        prefix: String,
    },
    /// No store: only literals resolve.
    None,
}

impl Provider {
    /// The store of `env` as its configuration declares it.
    pub(crate) fn of(loaded: &Loaded, env: &str) -> Result<Provider, Error> {
        Provider::of_store(loaded, env, None)
    }

    /// The store `store` of `env` (`None`: its `secrets:` store).
    pub(crate) fn of_store(
        loaded: &Loaded,
        env: &str,
        store: Option<&str>,
    ) -> Result<Provider, Error> {
        let identity = |i: &Option<String>| i.as_deref().map(|i| loaded.relative(i));
        let declared = environment(loaded, env)?;
        let chosen = match store {
            None => declared.secrets.as_ref(),
            Some(name) => Some(declared.stores.get(name).ok_or_else(|| {
                Error::Usage(format!(
                    "environment `{env}` has no store `{name}` under `stores:`"
                ))
            })?),
        };
        Ok(match chosen {
            Some(Store::Age {
                file,
                identity: id,
                recipients,
            }) => Provider::Age(AgeStore {
                env: env.to_string(),
                file: loaded.relative(file),
                identity: identity(id),
                recipients: recipients.clone(),
            }),
            Some(Store::Sops { identity: id }) => Provider::Sops(AgeStore {
                env: env.to_string(),
                file: loaded.path.clone(),
                identity: identity(id),
                recipients: Vec::new(),
            }),
            Some(Store::Aws {
                region,
                prefix,
                profile,
                credentials_prefix,
                role_arn,
                external_id,
                session_name,
                endpoint,
                timeout_seconds,
            }) => Provider::Aws(AwsStore {
                env: env.to_string(),
                region: region.clone(),
                prefix: prefix.clone(),
                profile: profile.clone(),
                credentials_prefix: credentials_prefix.clone(),
                role_arn: role_arn.clone(),
                external_id: external_id.clone(),
                session_name: session_name.clone(),
                endpoint: endpoint.clone(),
                timeout: std::time::Duration::from_secs(timeout_seconds.unwrap_or(10)),
            }),
            Some(Store::Vault {
                address,
                mount,
                prefix,
                kv_version,
                namespace,
                auth,
                timeout_seconds,
            }) => Provider::Vault(VaultStore {
                env: env.to_string(),
                address: address.clone(),
                mount: mount.clone(),
                prefix: prefix.clone(),
                kv_version: *kv_version,
                namespace: namespace.clone(),
                auth: auth.clone(),
                timeout: std::time::Duration::from_secs(timeout_seconds.unwrap_or(10)),
                base: loaded
                    .path
                    .parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default(),
            }),
            Some(Store::Env { prefix }) => Provider::Env {
                prefix: prefix.clone().unwrap_or_default(),
            },
            None => Provider::None,
        })
    }
}

impl Provider {
    /// The variables of sluice's own environment this store authenticates with (an age key or
    /// passphrase, a Vault token or AppRole secret id): what `run` keeps from the child.
    /// AWS credentials are left: they are the SDK's default chain, which apps use for their own
    /// AWS calls too.
    pub(crate) fn credential_vars(&self) -> Vec<String> {
        use crate::config::envs::VaultAuth;
        match self {
            Provider::Age(_) | Provider::Sops(_) => [
                "SLUICE_AGE_KEY",
                "SLUICE_AGE_KEY_FILE",
                "SLUICE_AGE_PASSPHRASE",
            ]
            .map(String::from)
            .to_vec(),
            Provider::Vault(v) => match &v.auth {
                VaultAuth::Token { token_env, .. } => {
                    vec![token_env.clone().unwrap_or_else(|| "VAULT_TOKEN".into())]
                }
                VaultAuth::Approle { secret_id_env, .. } => vec![
                    secret_id_env
                        .clone()
                        .unwrap_or_else(|| "VAULT_SECRET_ID".into()),
                    "VAULT_TOKEN".into(),
                ],
                VaultAuth::Jwt { jwt_env, .. } => vec![
                    jwt_env.clone().unwrap_or_else(|| "VAULT_JWT".into()),
                    "VAULT_TOKEN".into(),
                ],
                VaultAuth::Kubernetes { .. } | VaultAuth::Aws { .. } => {
                    vec!["VAULT_TOKEN".into()]
                }
            },
            Provider::Aws(a) => a.credential_vars(),
            Provider::Env { .. } | Provider::None => Vec::new(),
        }
    }
}

/// The age store of an environment, if it has one (`secrets set`, `secrets init`).
pub(crate) fn age_store(loaded: &Loaded, env: &str) -> Result<Option<AgeStore>, Error> {
    Ok(match Provider::of(loaded, env)? {
        Provider::Age(store) => Some(store),
        _ => None,
    })
}

/// An environment and one of its stores (`None`: its `secrets:` store).
type StoreKey = (String, Option<String>);

/// One variable's outcome: a value, nothing (optional and missing), or why it failed.
pub(crate) type Resolution = Result<Option<SecretValue>, Error>;

/// Resolves the references of one command. Every environment's stores are read through it, and
/// every (environment, variable) is fetched once however many parts of the command ask: `run`'s
/// values and the ones `--mask-output` hides, a plan's source URL, target URL and masking key,
/// `scan --env`'s known values, `secrets check` and `diff`. With one login per environment (a
/// Vault session is kept for the process), a single-use credential serves the whole command.
pub(crate) struct Resolver<'a> {
    loaded: &'a Loaded,
    providers: std::cell::RefCell<BTreeMap<StoreKey, std::rc::Rc<Provider>>>,
    fetched: std::cell::RefCell<BTreeMap<(String, String), Option<SecretValue>>>,
}

impl<'a> Resolver<'a> {
    /// A resolver over `loaded`, with nothing fetched yet.
    pub(crate) fn new(loaded: &'a Loaded) -> Resolver<'a> {
        Resolver {
            loaded,
            providers: std::cell::RefCell::new(BTreeMap::new()),
            fetched: std::cell::RefCell::new(BTreeMap::new()),
        }
    }

    /// The store of `env`, built on first use.
    fn provider(&self, env: &str, store: Option<&str>) -> Result<std::rc::Rc<Provider>, Error> {
        let key = (env.to_string(), store.map(str::to_string));
        if let Some(p) = self.providers.borrow().get(&key) {
            return Ok(p.clone());
        }
        let p = std::rc::Rc::new(Provider::of_store(self.loaded, env, store)?);
        self.providers.borrow_mut().insert(key, p.clone());
        Ok(p)
    }

    /// The variables `env`'s stores authenticate with (see [`Provider::credential_vars`]).
    pub(crate) fn credential_vars(&self, env: &str) -> Result<Vec<String>, Error> {
        let mut vars = self.provider(env, None)?.credential_vars();
        let named: Vec<String> = environment(self.loaded, env)?
            .stores
            .keys()
            .cloned()
            .collect();
        for name in named {
            vars.extend(self.provider(env, Some(&name))?.credential_vars());
        }
        vars.sort();
        vars.dedup();
        Ok(vars)
    }

    /// The configuration it resolves.
    pub(crate) fn loaded(&self) -> &'a Loaded {
        self.loaded
    }

    /// Every variable of `env` (or only those named), each with its own outcome, so that every
    /// problem can be reported. The outer error is about the environment itself (unknown
    /// environment, unknown `--only` name). Values already fetched by this command are reused.
    pub(crate) fn each(
        &self,
        env: &str,
        only: &[String],
    ) -> Result<Vec<(String, Resolution)>, Error> {
        let listed = entries(self.loaded, env, only)?;
        let names: Vec<String> = listed.iter().map(|e| e.name.clone()).collect();
        let missing: Vec<String> = {
            let fetched = self.fetched.borrow();
            names
                .iter()
                .filter(|n| !fetched.contains_key(&(env.to_string(), (*n).clone())))
                .cloned()
                .collect()
        };
        let mut fresh: BTreeMap<String, Resolution> = BTreeMap::new();
        if !missing.is_empty() {
            // One fetch per store the missing variables read.
            let mut by_store: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
            for e in listed.iter().filter(|e| missing.contains(&e.name)) {
                by_store
                    .entry(e.store.clone())
                    .or_default()
                    .push(e.name.clone());
            }
            let results: Result<Vec<(String, Resolution)>, Error> =
                by_store
                    .iter()
                    .try_fold(Vec::new(), |mut all, (store, names)| {
                        let provider = self.provider(env, store.as_deref())?;
                        all.extend(fetch_each(self.loaded, env, names, &provider)?);
                        Ok(all)
                    });
            if let Some(to) = &self.loaded.config.audit {
                let outcomes: Vec<super::trail::Outcome<'_>> = listed
                    .iter()
                    .filter(|e| missing.contains(&e.name))
                    .map(|e| super::trail::Outcome {
                        name: &e.name,
                        source: e.source_text(),
                        result: match &results {
                            Err(_) => "failed",
                            Ok(r) => match r.iter().find(|(n, _)| *n == e.name).map(|(_, r)| r) {
                                Some(Ok(Some(_))) => "resolved",
                                Some(Ok(None)) => "absent",
                                _ => "failed",
                            },
                        },
                    })
                    .collect();
                let base = self
                    .loaded
                    .path
                    .parent()
                    .unwrap_or(std::path::Path::new("."));
                super::trail::record(to, base, env, &outcomes)?;
            }
            for (name, result) in results? {
                if let Ok(v) = &result {
                    self.fetched
                        .borrow_mut()
                        .insert((env.to_string(), name.clone()), v.clone());
                }
                fresh.insert(name, result);
            }
        }
        let fetched = self.fetched.borrow();
        let mut out: Vec<(String, Resolution)> = names
            .into_iter()
            .map(|n| {
                let result = match fresh.remove(&n) {
                    Some(r) => r,
                    None => Ok(fetched
                        .get(&(env.to_string(), n.clone()))
                        .cloned()
                        .flatten()),
                };
                (n, result)
            })
            .collect();
        // Variables a path reference (`ssm://PATH/`) expanded into.
        out.extend(fresh);
        Ok(out)
    }

    /// Every variable of `env` (or only those named), stopping at the first problem. Values
    /// come back in name order; optional variables that are missing are left out.
    pub(crate) fn values(
        &self,
        env: &str,
        only: &[String],
    ) -> Result<Vec<(String, SecretValue)>, Error> {
        let mut out = Vec::new();
        for (name, result) in self.each(env, only)? {
            if let Some(v) = result? {
                out.push((name, v));
            }
        }
        Ok(out)
    }

    /// Like [`Resolver::values`], each with whether it is a secret (a store reference) rather
    /// than a literal declared non-secret: what `run` needs for the child's environment and for
    /// `--mask-output`, and what `scan --env` hunts for.
    pub(crate) fn marked(
        &self,
        env: &str,
        only: &[String],
    ) -> Result<Vec<(String, SecretValue, bool)>, Error> {
        let literals: Vec<String> = entries(self.loaded, env, only)?
            .into_iter()
            .filter(|e| matches!(e.origin, Origin::Literal(_)))
            .map(|e| e.name)
            .collect();
        Ok(self
            .values(env, only)?
            .into_iter()
            .map(|(k, v)| {
                let secret = !literals.contains(&k);
                (k, v, secret)
            })
            .collect())
    }

    /// The variables of `env` (or only those named) whose values are dynamic credentials.
    pub(crate) fn dynamic(&self, env: &str, only: &[String]) -> Result<Vec<String>, Error> {
        Ok(entries(self.loaded, env, only)?
            .into_iter()
            .filter(|e| {
                matches!(
                    e.origin,
                    Origin::Ref {
                        reference: Ref::VaultDb { .. },
                        ..
                    }
                )
            })
            .map(|e| e.name)
            .collect())
    }

    /// The variables of `env` (or only those named) that `run` hands over as files.
    pub(crate) fn as_files(&self, env: &str, only: &[String]) -> Result<Vec<String>, Error> {
        Ok(entries(self.loaded, env, only)?
            .into_iter()
            .filter(|e| e.as_file)
            .map(|e| e.name)
            .collect())
    }

    /// A value written in a plan: `secret:NAME` is the variable `NAME` of `secrets:` resolved
    /// in `env`; anything else is taken as written. `what` names the field for errors.
    pub(crate) fn setting(
        &self,
        env: Option<&str>,
        text: &str,
        what: &str,
    ) -> Result<SecretValue, Error> {
        let Some(name) = text.strip_prefix("secret:") else {
            return Ok(SecretValue::new(text.to_string()));
        };
        let env = env.ok_or_else(|| {
            Error::Usage(format!(
                "{what}: `secret:{name}` needs an environment; add `env:` beside it"
            ))
        })?;
        self.values(env, &[name.to_string()])?
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{what}: variable `{name}` has no value in environment `{env}`"
                ))
            })
    }
}

/// Fetch every variable of `env` (or only those named) from its store, separately, so that every
/// problem can be reported; each store is read once. The outer error is about the environment
/// itself (unknown environment, unknown `--only` name). [`Resolver`] calls this for what a
/// command has not fetched yet.
fn fetch_each(
    loaded: &Loaded,
    env: &str,
    only: &[String],
    provider: &Provider,
) -> Result<Vec<(String, Resolution)>, Error> {
    let entries = entries(loaded, env, only)?;
    let env_prefix = match provider {
        Provider::Env { prefix } => prefix.clone(),
        _ => String::new(),
    };
    // One read per store, however many variables point into it.
    let mut age_map: Option<Result<BTreeMap<String, SecretValue>, String>> = None;
    // Vault: every distinct (path, version) read once, concurrently, before anything else.
    let vault = match provider {
        Provider::Vault(v) => Some(v),
        _ => None,
    };
    let mut wanted: Vec<(String, Option<u64>)> = entries
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::Ref {
                reference: Ref::Vault { path, version, .. },
                ..
            } => Some((path.clone(), *version)),
            _ => None,
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    let vault_data = match (&vault, wanted.is_empty()) {
        (Some(v), false) => v.fetch(&wanted)?,
        _ => Default::default(),
    };
    // Vault dynamic credentials: one issue per (mount, role), however many fields are used.
    let mut roles: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::Ref {
                reference: Ref::VaultDb { mount, role, .. },
                ..
            } => Some((mount.clone(), role.clone())),
            _ => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    let issued = match (&vault, roles.is_empty()) {
        (Some(v), false) => v.issue(&roles)?,
        _ => Default::default(),
    };
    // SSM: every distinct parameter or path fetched once.
    let mut ssm_wanted: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::Ref {
                reference: Ref::Ssm { path },
                ..
            } => Some(path.clone()),
            _ => None,
        })
        .collect();
    ssm_wanted.sort();
    ssm_wanted.dedup();
    let ssm_data = match (provider, ssm_wanted.is_empty()) {
        (Provider::Aws(a), false) => a.ssm_fetch(&ssm_wanted)?,
        _ => Default::default(),
    };
    // Variables a path reference expands into (`APP` + `db/url` -> `APP_DB_URL`).
    let mut expanded: Vec<(String, Resolution)> = Vec::new();
    // AWS: every distinct (name, stage, version) fetched once, concurrently.
    let aws = match provider {
        Provider::Aws(a) => Some(a),
        _ => None,
    };
    let mut aws_wanted: Vec<Wanted> = entries
        .iter()
        .filter_map(|e| match &e.origin {
            Origin::Ref {
                reference:
                    Ref::Aws {
                        name,
                        stage,
                        version,
                        ..
                    },
                ..
            } => Some(Wanted {
                name: name.clone(),
                stage: stage.clone(),
                version: version.clone(),
            }),
            _ => None,
        })
        .collect();
    aws_wanted.sort();
    aws_wanted.dedup();
    let aws_data = match (&aws, aws_wanted.is_empty()) {
        (Some(a), false) => a.fetch(&aws_wanted)?,
        _ => Default::default(),
    };
    let (age, sops_id) = match provider {
        Provider::Age(a) => (Some(a), None),
        Provider::Sops(i) => (None, Some(i)),
        _ => (None, None),
    };
    // SOPS: each file decrypted (and its MAC verified) once.
    let mut sops_files: BTreeMap<String, Result<super::sops::Leaves, String>> = BTreeMap::new();
    let mut out = Vec::new();
    for e in entries {
        let (reference, optional) = match e.origin {
            Origin::Literal(v) => {
                out.push((e.name, Ok(Some(v))));
                continue;
            }
            Origin::Ref {
                reference,
                optional,
            } => (reference, optional),
        };
        let shown = reference.to_string();
        let found: Result<Option<SecretValue>, Error> = match &reference {
            Ref::Env { var } => Ok(std::env::var(format!("{env_prefix}{var}"))
                .ok()
                .map(SecretValue::new)),
            Ref::Age { key } => match &age {
                None => Err(Error::Usage(format!(
                    "environment `{env}`, variable `{}` ({shown}): age:// refs need `secrets: {{ provider: age, file: … }}` on the environment",
                    e.name
                ))),
                Some(store) => {
                    let map =
                        age_map.get_or_insert_with(|| store.read().map_err(|e| e.to_string()));
                    match map {
                        Ok(m) => Ok(m.get(key).cloned()),
                        Err(msg) => Err(fail(env, &e.name, &shown, msg)),
                    }
                }
            },
            Ref::Vault { path, key, version } => {
                match (&vault, vault_data.get(&(path.clone(), *version))) {
                    (Some(_), Some(Ok(data))) => match data.get(key) {
                        Some(v) => Ok(Some(v.clone())),
                        None if optional => Ok(None),
                        None => Err(fail(
                            env,
                            &e.name,
                            &shown,
                            format!("the secret has no key `{key}`"),
                        )),
                    },
                    (Some(_), Some(Err(Miss::Absent(_)))) if optional => Ok(None),
                    (Some(v), Some(Err(msg))) => Err(fail(
                        env,
                        &e.name,
                        &shown,
                        format!(
                            "{} (mount `{}`, path `{}`)",
                            msg,
                            v.mount,
                            v.full_path(path)
                        ),
                    )),
                    _ => Err(Error::Usage(format!(
                        "environment `{env}`, variable `{}` ({shown}): vault:// refs need `secrets: {{ provider: vault, … }}` on the environment",
                        e.name
                    ))),
                }
            }
            Ref::Ssm { path } => match (provider, ssm_data.get(path)) {
                (Provider::Aws(_), Some(Ok(found))) if path.ends_with('/') => {
                    for (rel, v) in found {
                        expanded
                            .push((super::ssm::path_variable(&e.name, rel), Ok(Some(v.clone()))));
                    }
                    // The path's own variable holds nothing: its parameters are the variables.
                    Ok(None)
                }
                (Provider::Aws(_), Some(Ok(found))) => Ok(found.get("").cloned()),
                (Provider::Aws(_), Some(Err(Miss::Absent(_)))) if optional => Ok(None),
                (Provider::Aws(a), Some(Err(msg))) => Err(fail(
                    env,
                    &e.name,
                    &shown,
                    format!("{msg} (parameter `{}`)", a.ssm_name(path)),
                )),
                _ => Err(Error::Usage(format!(
                    "environment `{env}`, variable `{}` ({shown}): ssm:// refs need `secrets: {{ provider: aws, … }}` on the environment",
                    e.name
                ))),
            },
            Ref::VaultDb { mount, role, field } => {
                match (&vault, issued.get(&(mount.clone(), role.clone()))) {
                    (Some(_), Some(Ok(data))) => match data.get(field) {
                        Some(v) => Ok(Some(v.clone())),
                        None => Err(fail(
                            env,
                            &e.name,
                            &shown,
                            format!(
                                "the issued credentials have no field `{field}` (they have: {})",
                                data.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        )),
                    },
                    (Some(_), Some(Err(Miss::Absent(_)))) if optional => Ok(None),
                    (Some(_), Some(Err(msg))) => Err(fail(env, &e.name, &shown, msg)),
                    _ => Err(Error::Usage(format!(
                        "environment `{env}`, variable `{}` ({shown}): vault-db:// refs need `secrets: {{ provider: vault, … }}` on the environment",
                        e.name
                    ))),
                }
            }
            Ref::Aws {
                name,
                json_path,
                stage,
                version,
            } => {
                let w = Wanted {
                    name: name.clone(),
                    stage: stage.clone(),
                    version: version.clone(),
                };
                match (&aws, aws_data.get(&w)) {
                    (Some(_), Some(Ok(secret))) => match json_path {
                        None => Ok(Some(secret.clone())),
                        Some(p) => match super::aws::json_key(secret, p) {
                            Ok(v) => Ok(Some(v)),
                            Err(Miss::Absent(_)) if optional => Ok(None),
                            Err(m) => Err(fail(env, &e.name, &shown, m)),
                        },
                    },
                    (Some(_), Some(Err(Miss::Absent(_)))) if optional => Ok(None),
                    (Some(a), Some(Err(msg))) => Err(fail(
                        env,
                        &e.name,
                        &shown,
                        format!("{msg} (secret `{}`)", a.full_name(name)),
                    )),
                    _ => Err(Error::Usage(format!(
                        "environment `{env}`, variable `{}` ({shown}): aws:// refs need `secrets: {{ provider: aws, … }}` on the environment",
                        e.name
                    ))),
                }
            }
            Ref::Sops { file, path } => match &sops_id {
                None => Err(Error::Usage(format!(
                    "environment `{env}`, variable `{}` ({shown}): sops:// refs need `secrets: {{ provider: sops }}` on the environment",
                    e.name
                ))),
                Some(identity) => {
                    let leaves = sops_files
                        .entry(file.clone())
                        .or_insert_with(|| super::sops::read(&loaded.relative(file), identity));
                    match leaves {
                        Ok(l) => match l.get(path) {
                            Some(Ok(v)) => Ok(Some(v.clone())),
                            Some(Err(why)) => Err(fail(env, &e.name, &shown, why.clone())),
                            None if optional => Ok(None),
                            None => Err(fail(
                                env,
                                &e.name,
                                &shown,
                                format!("{file} has no key `{path}`"),
                            )),
                        },
                        Err(msg) => Err(fail(env, &e.name, &shown, msg.clone())),
                    }
                }
            },
        };
        let is_path = matches!(&reference, Ref::Ssm { path } if path.ends_with('/'));
        let result = match found {
            Ok(None) if !optional && !is_path => Err(fail(
                env,
                &e.name,
                &shown,
                match &reference {
                    Ref::Env { var } => {
                        format!("{env_prefix}{var} is not set in the process environment")
                    }
                    _ => "not found in the store; add it with `sluice secrets set`".to_string(),
                },
            )),
            other => other,
        };
        out.push((e.name, result));
    }
    out.extend(expanded);
    Ok(out)
}
