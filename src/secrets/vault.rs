//! Vault / OpenBao KV (v2 and v1): distinct secret paths in, their key/value maps out.
//!
//! One login per environment per command (token, AppRole or Kubernetes JWT; optional namespace:
//! the session token is kept in memory for the process, so a single-use AppRole secret id
//! serves every reference of a command), then every
//! distinct path is read concurrently, each with a timeout and bounded retries (only for
//! transport failures and 5xx; 403 and 404 are answers, not accidents). Tokens and values never
//! appear in errors.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use super::SecretValue;
use crate::config::envs::VaultAuth;
use crate::error::{Error, causes, printable};

/// Session tokens of this process, per login (see [`VaultStore::client`]).
static SESSIONS: std::sync::Mutex<BTreeMap<String, Zeroizing<String>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Attempts per read (the first plus retries).
const ATTEMPTS: u32 = 3;

/// A Vault store as configured for one environment.
#[derive(Debug, Clone)]
pub(crate) struct VaultStore {
    /// The environment, for messages.
    pub env: String,
    /// Server address.
    pub address: String,
    /// KV mount.
    pub mount: String,
    /// Path prefix.
    pub prefix: String,
    /// KV version (1 or 2).
    pub kv_version: u8,
    /// Namespace header.
    pub namespace: Option<String>,
    /// Login method.
    pub auth: VaultAuth,
    /// Request timeout.
    pub timeout: Duration,
    /// Directory of sluice.yaml (relative files resolve against it).
    pub base: PathBuf,
}

/// The key/value map of one secret version.
pub(crate) type SecretData = BTreeMap<String, SecretValue>;

/// What a read gave: the data, or why not (a message without values).
pub(crate) type ReadResult = Result<SecretData, super::Miss>;

fn external(store: &VaultStore, detail: impl Into<String>) -> Error {
    Error::External {
        what: format!("vault of environment `{}` ({})", store.env, store.address),
        detail: detail.into(),
    }
}

fn describe(e: &ClientError) -> String {
    match e {
        ClientError::APIError { code: 403, .. } => {
            "permission denied (403): the token's policy does not allow this path".into()
        }
        ClientError::APIError { code: 404, .. } => "not found (404)".into(),
        ClientError::APIError { code, errors } => {
            format!("server answered {code}: {}", printable(&errors.join("; ")))
        }
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, .. },
        } => format!(
            "the address answered HTTP {code}, not as Vault does; is it the Vault server (and its API port)?"
        ),
        ClientError::RestClientError { source } => {
            // The innermost cause says why (connection refused, timed out, TLS); the outer
            // layers only say that a request failed.
            let mut inner: &dyn std::error::Error = source;
            while let Some(next) = inner.source() {
                inner = next;
            }
            let why = printable(&inner.to_string());
            if why.contains("timed out") {
                "no answer within timeout_seconds; is the server up and reachable?".to_string()
            } else {
                format!("cannot reach the server: {why}")
            }
        }
        other => causes(other),
    }
}

fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::APIError { code, .. } => *code >= 500,
        ClientError::RestClientError { .. } => true,
        _ => false,
    }
}

impl VaultStore {
    fn file(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    fn read_secret_file(&self, path: &PathBuf, what: &str) -> Result<Zeroizing<String>, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            external(
                self,
                format!("cannot read {what} file {} ({e})", path.display()),
            )
        })?;
        Ok(Zeroizing::new(text.trim().to_string()))
    }

    fn token(
        &self,
        token_env: &Option<String>,
        token_file: &Option<String>,
    ) -> Result<Zeroizing<String>, Error> {
        let var = token_env.clone().unwrap_or_else(|| "VAULT_TOKEN".into());
        if let Ok(t) = std::env::var(&var)
            && !t.is_empty()
        {
            return Ok(Zeroizing::new(t));
        }
        let file = match token_file {
            Some(f) => self.file(f),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".vault-token"),
                None => return Err(external(self, format!("no token: set {var}"))),
            },
        };
        if !file.exists() {
            return Err(external(
                self,
                format!("no token: set {var} or write {}", file.display()),
            ));
        }
        self.read_secret_file(&file, "token")
    }

    /// Which login a session token belongs to: the environment's server, namespace and auth.
    fn session_key(&self) -> String {
        format!(
            "{}\n{}\n{:?}\n{:?}",
            self.env, self.address, self.namespace, self.auth
        )
    }

    async fn client(&self) -> Result<VaultClient, Error> {
        if let Some(token) = SESSIONS
            .lock()
            .ok()
            .and_then(|s| s.get(&self.session_key()).cloned())
        {
            return self.client_with(&token);
        }
        let client = self.login().await?;
        if let Ok(mut s) = SESSIONS.lock() {
            s.insert(
                self.session_key(),
                Zeroizing::new(client.settings.token.clone()),
            );
        }
        Ok(client)
    }

    /// A client that uses a session token already obtained.
    fn client_with(&self, token: &str) -> Result<VaultClient, Error> {
        let mut b = VaultClientSettingsBuilder::default();
        b.address(self.address.as_str())
            .token(token)
            .timeout(Some(self.timeout))
            .namespace(self.namespace.clone());
        let settings = b.build().map_err(|e| external(self, e.to_string()))?;
        VaultClient::new(settings).map_err(|e| external(self, describe(&e)))
    }

    async fn login(&self) -> Result<VaultClient, Error> {
        let url = url::Url::parse(&self.address).map_err(|e| {
            Error::Usage(format!(
                "environment `{}`: vault address `{}` is not a URL ({e})",
                self.env, self.address
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Usage(format!(
                "environment `{}`: vault address must be http(s)://",
                self.env
            )));
        }
        let initial = match &self.auth {
            VaultAuth::Token {
                token_env,
                token_file,
            } => self.token(token_env, token_file)?,
            _ => Zeroizing::new(String::new()),
        };
        let mut b = VaultClientSettingsBuilder::default();
        b.address(url.as_str())
            .token(initial.as_str())
            .timeout(Some(self.timeout))
            .namespace(self.namespace.clone());
        let settings = b.build().map_err(|e| external(self, e.to_string()))?;
        let mut client = VaultClient::new(settings).map_err(|e| external(self, describe(&e)))?;
        match &self.auth {
            VaultAuth::Token { .. } => {
                // A bad token and a denied path both answer 403; asking the token about itself
                // (allowed by every policy) tells them apart.
                if let Err(e) = vaultrs::token::lookup_self(&client).await {
                    return Err(external(
                        self,
                        match e {
                            ClientError::APIError { code: 403, .. } => {
                                "the token is invalid or expired (the server does not know it); log in again or set a valid token".to_string()
                            }
                            other => describe(&other),
                        },
                    ));
                }
            }
            VaultAuth::Approle {
                mount,
                role_id,
                secret_id_env,
                secret_id_file,
            } => {
                let var = secret_id_env
                    .clone()
                    .unwrap_or_else(|| "VAULT_SECRET_ID".into());
                let secret_id = match (std::env::var(&var), secret_id_file) {
                    (Ok(s), _) if !s.is_empty() => Zeroizing::new(s),
                    (_, Some(f)) => self.read_secret_file(&self.file(f), "secret id")?,
                    _ => {
                        return Err(external(
                            self,
                            format!("AppRole login needs a secret id: set {var} or secret_id_file"),
                        ));
                    }
                };
                let mount = mount.as_deref().unwrap_or("approle");
                let auth = vaultrs::auth::approle::login(&client, mount, role_id, &secret_id)
                    .await
                    .map_err(|e| {
                        external(self, format!("AppRole login failed: {}", describe(&e)))
                    })?;
                client.set_token(&auth.client_token);
            }
            VaultAuth::Jwt {
                mount,
                role,
                jwt_env,
                jwt_file,
            } => {
                let var = jwt_env.clone().unwrap_or_else(|| "VAULT_JWT".into());
                let jwt = match (std::env::var(&var), jwt_file) {
                    (Ok(s), _) if !s.trim().is_empty() => Zeroizing::new(s.trim().to_string()),
                    (_, Some(f)) => self.read_secret_file(&self.file(f), "JWT")?,
                    _ => {
                        return Err(external(
                            self,
                            format!(
                                "JWT login needs a token: set {var} (e.g. the CI job's OIDC token) or jwt_file"
                            ),
                        ));
                    }
                };
                let mount = mount.as_deref().unwrap_or("jwt");
                let auth = vaultrs::auth::oidc::login(&client, mount, &jwt, role.clone())
                    .await
                    .map_err(|e| external(self, format!("JWT login failed: {}", describe(&e))))?;
                client.set_token(&auth.client_token);
            }
            VaultAuth::Aws {
                mount,
                role,
                region,
                profile,
                server_id,
                sts_endpoint,
            } => {
                let login = super::aws::iam_login(
                    region.as_deref(),
                    profile.as_deref(),
                    server_id.as_deref(),
                    sts_endpoint.as_deref(),
                    self.timeout,
                )
                .await
                .map_err(|e| external(self, format!("AWS IAM login: {e}")))?;
                let mount = mount.as_deref().unwrap_or("aws");
                let auth = vaultrs::auth::aws::iam_login(
                    &client,
                    mount,
                    "POST",
                    &login.url,
                    &login.headers,
                    &login.body,
                    role.as_deref(),
                )
                .await
                .map_err(|e| external(self, format!("AWS IAM login failed: {}", describe(&e))))?;
                client.set_token(&auth.client_token);
            }
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_file,
            } => {
                let path = jwt_file
                    .as_deref()
                    .map(|f| self.file(f))
                    .unwrap_or_else(|| {
                        PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
                    });
                let jwt = self.read_secret_file(&path, "service-account JWT")?;
                let mount = mount.as_deref().unwrap_or("kubernetes");
                let auth = vaultrs::auth::kubernetes::login(&client, mount, role, &jwt)
                    .await
                    .map_err(|e| {
                        external(self, format!("Kubernetes login failed: {}", describe(&e)))
                    })?;
                client.set_token(&auth.client_token);
            }
        }
        Ok(client)
    }

    /// The full path of a reference's path under this store's prefix.
    pub(crate) fn full_path(&self, path: &str) -> String {
        format!("{}{}", self.prefix, path)
    }

    async fn read_once(
        &self,
        client: &VaultClient,
        path: &str,
        version: Option<u64>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ClientError> {
        let full = self.full_path(path);
        match (self.kv_version, version) {
            (1, _) => vaultrs::kv1::get(client, &self.mount, &full).await,
            (_, Some(v)) => vaultrs::kv2::read_version(client, &self.mount, &full, v).await,
            (_, None) => vaultrs::kv2::read(client, &self.mount, &full).await,
        }
    }

    async fn read(&self, client: &VaultClient, path: &str, version: Option<u64>) -> ReadResult {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            match self.read_once(client, path, version).await {
                Ok(map) => {
                    return Ok(map
                        .into_iter()
                        .map(|(k, v)| {
                            let text = match v {
                                serde_json::Value::String(s) => s,
                                other => other.to_string(),
                            };
                            (k, SecretValue::new(text))
                        })
                        .collect());
                }
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e @ ClientError::APIError { code: 404, .. }) => {
                    return Err(super::Miss::Absent(describe(&e)));
                }
                Err(e) => return Err(super::Miss::Failed(describe(&e))),
            }
        }
        Err(super::Miss::Failed("gave up after retries".into()))
    }

    /// Read every distinct (path, version) once, concurrently.
    pub(crate) fn fetch(
        &self,
        wanted: &[(String, Option<u64>)],
    ) -> Result<HashMap<(String, Option<u64>), ReadResult>, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| external(self, format!("cannot start the async runtime: {e}")))?;
        let all = async {
            let client = Arc::new(self.client().await?);
            let mut tasks = tokio::task::JoinSet::new();
            for (i, (path, version)) in wanted.iter().enumerate() {
                let (client, store, path, version) =
                    (client.clone(), self.clone(), path.clone(), *version);
                tasks.spawn(async move { (i, store.read(&client, &path, version).await) });
            }
            let mut out = HashMap::new();
            while let Some(done) = tasks.join_next().await {
                let (i, result) =
                    done.map_err(|e| external(self, format!("a read task failed: {e}")))?;
                out.insert(wanted[i].clone(), result);
            }
            Ok(out)
        };
        // `timeout_seconds` is the whole command's wait, login and retries included.
        rt.block_on(async {
            tokio::time::timeout(self.timeout, all)
                .await
                .unwrap_or_else(|_| {
                    Err(external(
                        self,
                        format!(
                            "no answer within {} s (timeout_seconds); is the server up and reachable?",
                            self.timeout.as_secs()
                        ),
                    ))
                })
        })
    }
}

/// Credentials a secrets engine issued (`vault-db://`), and the lease that keeps them alive.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// The store that issued them (for renewing and revoking with its login).
    pub store: VaultStore,
    /// The lease id (needed to renew and revoke; never printed).
    pub id: String,
    /// What was issued, for messages: `vault-db://app` (mount `database`).
    pub what: String,
    /// The lease's duration as first issued: what each renewal asks for.
    pub duration: Duration,
    /// What the server granted last (shorter than `duration` near the role's maximum).
    pub granted: Duration,
    /// Whether the server lets the lease be renewed.
    pub renewable: bool,
    /// When it was issued or last renewed.
    pub issued: std::time::Instant,
    /// When it ends, on the wall clock (for `export`/`render` to say).
    pub expires: std::time::SystemTime,
}

/// Leases this process obtained, for `run` to keep alive and revoke.
static LEASES: std::sync::Mutex<Vec<Lease>> = std::sync::Mutex::new(Vec::new());

/// The leases obtained so far (taken: the caller now owns their renewal and revocation).
pub(crate) fn take_leases() -> Vec<Lease> {
    LEASES
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default()
}

impl VaultStore {
    /// One request to the server with this store's login: status and JSON body.
    async fn call(
        &self,
        client: &VaultClient,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), String> {
        use rustify::client::Client as _;
        use vaultrs::client::Client as _;
        let url = format!("{}/v1/{path}", self.address.trim_end_matches('/'));
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("X-Vault-Token", client.settings.token.as_str())
            .header("X-Vault-Request", "true");
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns.as_str());
        }
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = req.body(body).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(self.timeout, client.http().send(req))
            .await
            .map_err(|_| "no answer within timeout_seconds".to_string())?
            .map_err(|e| describe(&ClientError::RestClientError { source: e }))?;
        let status = resp.status().as_u16();
        let json = serde_json::from_slice(resp.body()).unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }

    /// Ask the engine at `mount` for credentials of `role` (once per role per command);
    /// the lease is recorded for `run`.
    pub(crate) fn issue(
        &self,
        wanted: &[(String, String)],
    ) -> Result<HashMap<(String, String), ReadResult>, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| external(self, format!("cannot start the async runtime: {e}")))?;
        rt.block_on(async {
            let client = self.client().await?;
            let mut out = HashMap::new();
            for (mount, role) in wanted {
                let result = match self
                    .call(&client, "GET", &format!("{mount}/creds/{role}"), None)
                    .await
                {
                    Err(e) => Err(super::Miss::Failed(e)),
                    Ok((200, json)) => {
                        let data: SecretData = json["data"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| {
                                        let text = match v {
                                            serde_json::Value::String(s) => s.clone(),
                                            other => other.to_string(),
                                        };
                                        (k.clone(), SecretValue::new(text))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let duration =
                            Duration::from_secs(json["lease_duration"].as_u64().unwrap_or(0));
                        if let Some(id) = json["lease_id"].as_str().filter(|s| !s.is_empty()) {
                            let lease = Lease {
                                store: self.clone(),
                                id: id.to_string(),
                                what: format!("vault-db://{role} (mount `{mount}`)"),
                                duration,
                                granted: duration,
                                renewable: json["renewable"].as_bool().unwrap_or(false),
                                issued: std::time::Instant::now(),
                                expires: std::time::SystemTime::now() + duration,
                            };
                            if let Ok(mut l) = LEASES.lock() {
                                l.push(lease);
                            }
                        }
                        Ok(data)
                    }
                    Ok((404, _)) => Err(super::Miss::Absent(format!(
                        "no role `{role}` at mount `{mount}` (404)"
                    ))),
                    Ok((403, _)) => Err(super::Miss::Failed(
                        "permission denied (403): the token's policy does not allow issuing these credentials".into(),
                    )),
                    Ok((code, json)) => Err(super::Miss::Failed(format!(
                        "server answered {code}: {}",
                        printable(&json["errors"].to_string())
                    ))),
                };
                out.insert((mount.clone(), role.clone()), result);
            }
            Ok(out)
        })
    }
}

impl Lease {
    /// When it ends unless renewed.
    pub(crate) fn deadline(&self) -> std::time::Instant {
        self.issued + self.granted
    }

    /// When to renew: at two thirds of what was granted.
    pub(crate) fn due(&self) -> std::time::Instant {
        self.issued + self.granted * 2 / 3
    }

    fn run<T>(&self, f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(f)
    }

    /// Extend the lease by its duration; the duration the server granted (shorter than asked
    /// when the role's maximum is near).
    pub(crate) fn renew(&mut self) -> Result<Duration, String> {
        let store = self.store.clone();
        let body = serde_json::json!({ "lease_id": self.id, "increment": self.duration.as_secs() });
        let granted = self.run(async {
            let client = store.client().await.map_err(|e| e.to_string())?;
            match store
                .call(&client, "PUT", "sys/leases/renew", Some(body))
                .await?
            {
                (200, json) => Ok(Duration::from_secs(
                    json["lease_duration"].as_u64().unwrap_or(0),
                )),
                (code, json) => Err(format!(
                    "server answered {code}: {}",
                    printable(&json["errors"].to_string())
                )),
            }
        })?;
        self.issued = std::time::Instant::now();
        self.granted = granted;
        self.expires = std::time::SystemTime::now() + granted;
        Ok(granted)
    }

    /// End the lease now: the engine drops the credentials (the database role).
    pub(crate) fn revoke(&self) -> Result<(), String> {
        let store = self.store.clone();
        let body = serde_json::json!({ "lease_id": self.id });
        self.run(async {
            let client = store.client().await.map_err(|e| e.to_string())?;
            match store
                .call(&client, "PUT", "sys/leases/revoke", Some(body))
                .await?
            {
                (200 | 204, _) => Ok(()),
                (code, json) => Err(format!(
                    "server answered {code}: {}",
                    printable(&json["errors"].to_string())
                )),
            }
        })
    }
}
