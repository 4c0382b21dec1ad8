//! Opt-in live validation (`scan --validate`): asks the service whether a found credential works.
//!
//! Findings in, a verdict on each checkable one out: `valid`, `invalid` or `unknown` (with why).
//! Checked: AWS key pairs (`sts:GetCallerIdentity`, signed with the pair), Vault/OpenBao tokens
//! (`auth/token/lookup-self` at `$VAULT_ADDR`), PostgreSQL URLs (a login), and HTTP(S) URLs with
//! basic-auth credentials (a GET). Every address is resolved first and refused when it is
//! private, loopback, link-local or otherwise not public, unless `allow_private`; connections go
//! to the address checked (no second lookup for a rebinding name to change). Redirects are not
//! followed. Each check has a timeout; a few run at once. Verdict details never hold a secret.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

/// Secret bytes, wiped when dropped.
type Bytes = Zeroizing<Vec<u8>>;

/// What a check knows of one finding: its rule, path, secret and (for some rules) the whole
/// match around the secret.
pub(crate) struct Subject<'a> {
    /// Rule id.
    pub rule: &'a str,
    /// Path as reported.
    pub path: &'a str,
    /// The secret.
    pub secret: &'a [u8],
    /// The match around it ([`WITH_CONTEXT`] rules).
    pub context: Option<&'a [u8]>,
}

/// A finding's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The service accepted the credential.
    Valid(String),
    /// The service refused it.
    Invalid(String),
    /// No answer either way (unreachable, refused address, other error).
    Unknown(String),
}

impl Verdict {
    /// `valid`, `invalid` or `unknown`.
    pub fn status(&self) -> &'static str {
        match self {
            Verdict::Valid(_) => "valid",
            Verdict::Invalid(_) => "invalid",
            Verdict::Unknown(_) => "unknown",
        }
    }

    /// What the service said (never the secret).
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Valid(d) | Verdict::Invalid(d) | Verdict::Unknown(d) => d,
        }
    }
}

/// How validation runs.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Allow private, loopback and link-local addresses.
    pub allow_private: bool,
    /// Each check's timeout.
    pub timeout: Duration,
    /// Checks at once.
    pub concurrency: usize,
}

/// Rules whose findings carry the text around the secret that a check needs (see
/// [`context_end`]).
pub(crate) const WITH_CONTEXT: [&str; 3] = [
    "postgres-connection-string",
    "url-basic-auth",
    "aws-access-key-pair",
];

/// Where the context of a match of `rule` ends: a URL runs on to its end (the regex stops at
/// the host's first character).
pub(crate) fn context_end(rule: &str, buf: &[u8], match_end: usize) -> usize {
    if rule == "aws-access-key-pair" {
        return match_end;
    }
    let rest = &buf[match_end.min(buf.len())..];
    let n = rest
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b"\"'<>`)]}|\\,".contains(&b) || b < 0x20)
        .unwrap_or(rest.len())
        .min(2048);
    match_end + n
}

/// One check to run.
enum Check {
    Aws { id: String, secret: Bytes },
    Vault(Bytes),
    Postgres(Bytes),
    Http(Bytes),
}

fn bytes(b: &[u8]) -> Bytes {
    Zeroizing::new(b.to_vec())
}

/// The verdict on each subject that could be checked (`None`: not checkable), in order.
pub(crate) fn validate(subjects: &[Subject<'_>], opts: &Options) -> Vec<Option<Verdict>> {
    let mut out: Vec<Option<Verdict>> = vec![None; subjects.len()];
    let mut checks: Vec<(Vec<usize>, Check)> = Vec::new();
    // AWS: a pair found together, or a key id and a secret key found in the same file.
    let mut ids: Vec<usize> = Vec::new();
    let mut secrets: Vec<usize> = Vec::new();
    for (i, f) in subjects.iter().enumerate() {
        match f.rule {
            "aws-access-key-pair" => {
                if let Some(ctx) = f.context {
                    let id = String::from_utf8_lossy(&ctx[..ctx.len().min(20)]).into_owned();
                    checks.push((
                        vec![i],
                        Check::Aws {
                            id,
                            secret: bytes(f.secret),
                        },
                    ));
                }
            }
            "aws-access-key-id" => ids.push(i),
            "aws-secret-access-key" => secrets.push(i),
            "vault-service-token" | "vault-batch-token" | "vault-legacy-service-token" => {
                checks.push((vec![i], Check::Vault(bytes(f.secret))));
            }
            "postgres-connection-string" => {
                if let Some(ctx) = f.context {
                    checks.push((vec![i], Check::Postgres(bytes(ctx))));
                }
            }
            "url-basic-auth" => {
                if let Some(ctx) = f.context {
                    checks.push((vec![i], Check::Http(bytes(ctx))));
                }
            }
            _ => {}
        }
    }
    for &i in &ids {
        let pair = secrets
            .iter()
            .copied()
            .find(|&s| subjects[s].path == subjects[i].path);
        match pair {
            Some(s) => checks.push((
                vec![i, s],
                Check::Aws {
                    id: String::from_utf8_lossy(subjects[i].secret).into_owned(),
                    secret: bytes(subjects[s].secret),
                },
            )),
            None => {
                out[i] = Some(Verdict::Unknown(
                    "no secret access key found in the same file to check the key id with".into(),
                ))
            }
        }
    }
    if checks.is_empty() {
        return out;
    }
    let (targets, checks): (Vec<Vec<usize>>, Vec<Check>) = checks.into_iter().unzip();
    let verdicts = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run_all(checks, opts)),
        Err(e) => vec![Verdict::Unknown(format!("cannot start the runtime: {e}")); targets.len()],
    };
    for (idx, verdict) in targets.iter().zip(verdicts) {
        for &i in idx {
            out[i] = Some(verdict.clone());
        }
    }
    out
}

/// Run `checks`, a bounded number at once, each within the timeout.
async fn run_all(checks: Vec<Check>, opts: &Options) -> Vec<Verdict> {
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let n = checks.len();
    for (k, check) in checks.into_iter().enumerate() {
        let (limit, opts) = (limit.clone(), opts.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let verdict = tokio::time::timeout(opts.timeout, run(check, &opts))
                .await
                .unwrap_or_else(|_| {
                    Verdict::Unknown(format!("no answer within {} s", opts.timeout.as_secs()))
                });
            (k, verdict)
        });
    }
    let mut out = vec![Verdict::Unknown("the check failed".into()); n];
    while let Some(done) = set.join_next().await {
        if let Ok((k, v)) = done {
            out[k] = v;
        }
    }
    out
}

async fn run(check: Check, opts: &Options) -> Verdict {
    match check {
        Check::Aws { id, secret } => aws(&id, &secret, opts).await,
        Check::Vault(token) => vault(&token, opts).await,
        Check::Postgres(url) => postgres(&url, opts).await,
        Check::Http(url) => http(&url, opts).await,
    }
}

/// Whether `ip` is an address a check may reach without `--validate-allow-private`.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0xdb8))
        }
    }
}

/// Resolve `host:port` to the addresses to connect to (all of them: `localhost` may give `::1`
/// first to a server listening on 127.0.0.1 only), refusing non-public ones unless allowed.
async fn resolve(host: &str, port: u16, opts: &Options) -> Result<Vec<SocketAddr>, Verdict> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Verdict::Unknown(format!("cannot resolve {host}: {e}")))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| Verdict::Unknown(format!("{host} has no address")))?;
    if !opts.allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(Verdict::Unknown(format!(
            "not checked: {host} resolves to a private, loopback or link-local address ({}); pass --validate-allow-private to check it",
            first.ip()
        )));
    }
    Ok(addrs)
}

/// An HTTP client for `url` that connects only to the address checked by [`resolve`] (no second
/// lookup, no redirects), and `scheme://host:port` to name it by.
async fn pinned_client(
    url: &url::Url,
    opts: &Options,
) -> Result<(reqwest::Client, String), Verdict> {
    let host = url
        .host_str()
        .ok_or_else(|| Verdict::Unknown("the URL has no host".into()))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Verdict::Unknown("the URL has no port".into()))?;
    let addrs = resolve(&host, port, opts).await?;
    let client = reqwest::Client::builder()
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addrs)
        .build()
        .map_err(|e| Verdict::Unknown(format!("cannot make an HTTP client: {e}")))?;
    Ok((client, format!("{}://{host}:{port}", url.scheme())))
}

async fn aws(id: &str, secret: &[u8], opts: &Options) -> Verdict {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_STS")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| "https://sts.amazonaws.com".into());
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let parsed = match url::Url::parse(&url) {
        Ok(u) => u,
        Err(e) => return Verdict::Unknown(format!("the STS endpoint is not a URL: {e}")),
    };
    let (client, _) = match pinned_client(&parsed, opts).await {
        Ok(c) => c,
        Err(v) => return v,
    };
    let creds = aws_credential_types::Credentials::new(
        id,
        String::from_utf8_lossy(secret).into_owned(),
        None,
        None,
        "sluice --validate",
    );
    let identity = aws_smithy_runtime_api::client::identity::Identity::from(creds);
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )];
    let signed = match crate::secrets::aws::sigv4_headers(
        &identity,
        "us-east-1",
        "sts",
        &url,
        &headers,
        body.as_bytes(),
    ) {
        Ok(s) => s,
        Err(e) => return Verdict::Unknown(e),
    };
    let mut req = client.post(&url).body(body);
    for (k, v) in headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(signed)
    {
        req = req.header(k, v);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Verdict::Unknown(format!("STS: {}", crate::error::causes(&e))),
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let tag = |t: &str| {
        text.split_once(&format!("<{t}>"))
            .and_then(|(_, r)| r.split_once(&format!("</{t}>")))
            .map(|(v, _)| crate::error::printable(v))
    };
    match status {
        200 => Verdict::Valid(match tag("Arn") {
            Some(arn) => format!("sts:GetCallerIdentity: {arn}"),
            None => "sts:GetCallerIdentity answered".into(),
        }),
        400 | 403 => match tag("Code").as_deref() {
            Some(
                code @ ("InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "UnrecognizedClientException"),
            ) => Verdict::Invalid(format!("STS refused the key: {code}")),
            Some(code) => Verdict::Unknown(format!("STS answered {status} {code}")),
            None => Verdict::Unknown(format!("STS answered {status}")),
        },
        other => Verdict::Unknown(format!("STS answered HTTP {other}")),
    }
}

async fn vault(token: &[u8], opts: &Options) -> Verdict {
    let Some(addr) = std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty()) else {
        return Verdict::Unknown(
            "set VAULT_ADDR to the server to check Vault tokens against".into(),
        );
    };
    let url = match url::Url::parse(&addr).and_then(|u| u.join("v1/auth/token/lookup-self")) {
        Ok(u) => u,
        Err(e) => return Verdict::Unknown(format!("VAULT_ADDR is not a URL: {e}")),
    };
    let (client, _) = match pinned_client(&url, opts).await {
        Ok(c) => c,
        Err(v) => return v,
    };
    let token = String::from_utf8_lossy(token).into_owned();
    match client.get(url).header("X-Vault-Token", token).send().await {
        Ok(r) => match r.status().as_u16() {
            200 => Verdict::Valid(format!("auth/token/lookup-self at {addr} answered")),
            403 => Verdict::Invalid(format!("{addr} does not know the token (403)")),
            s => Verdict::Unknown(format!("{addr} answered HTTP {s}")),
        },
        Err(e) => Verdict::Unknown(format!("{addr}: {}", crate::error::causes(&e))),
    }
}

async fn postgres(url: &[u8], opts: &Options) -> Verdict {
    let text = Zeroizing::new(String::from_utf8_lossy(url).into_owned());
    let parsed = match url::Url::parse(&text) {
        Ok(u) => u,
        Err(_) => return Verdict::Unknown("the connection string is not a URL".into()),
    };
    let host = match parsed.host_str() {
        Some(h) => h.to_string(),
        None => return Verdict::Unknown("the URL has no host".into()),
    };
    let port = parsed.port().unwrap_or(5432);
    let addrs = match resolve(&host, port, opts).await {
        Ok(a) => a,
        Err(v) => return v,
    };
    let user = percent(parsed.username());
    let password = Zeroizing::new(percent(parsed.password().unwrap_or("")));
    let db = parsed.path().trim_start_matches('/');
    // Each checked address in turn, until one answers.
    let mut verdict = Verdict::Unknown(format!("{host}:{port}: cannot connect"));
    for sock in addrs {
        let mut config = tokio_postgres::Config::new();
        config
            .hostaddr(sock.ip())
            .host(&host)
            .port(sock.port())
            .user(&user)
            .password(password.as_bytes())
            .dbname(if db.is_empty() { user.as_str() } else { db })
            .connect_timeout(opts.timeout)
            .application_name("sluice scan --validate");
        verdict = match config.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                drop(client);
                let _ = conn.await;
                return Verdict::Valid(format!(
                    "logged in to {host}:{port} as {}",
                    crate::error::printable(&user)
                ));
            }
            Err(e) => match e.code().map(|c| c.code()) {
                Some(code @ ("28P01" | "28000")) => {
                    return Verdict::Invalid(format!("{host}:{port} refused the login ({code})"));
                }
                Some(code) => {
                    return Verdict::Unknown(format!("{host}:{port} answered SQLSTATE {code}"));
                }
                None => Verdict::Unknown(format!("{host}:{port}: cannot connect")),
            },
        };
    }
    verdict
}

fn percent(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn http(url: &[u8], opts: &Options) -> Verdict {
    let text = Zeroizing::new(String::from_utf8_lossy(url).into_owned());
    let mut parsed = match url::Url::parse(&text) {
        Ok(u) => u,
        Err(_) => return Verdict::Unknown("not a URL".into()),
    };
    let (client, shown) = match pinned_client(&parsed, opts).await {
        Ok(c) => c,
        Err(v) => return v,
    };
    let user = percent(parsed.username());
    let password = percent(parsed.password().unwrap_or(""));
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    match client
        .get(parsed)
        .basic_auth(user, Some(password))
        .send()
        .await
    {
        Ok(r) => match r.status().as_u16() {
            s @ 200..=299 => Verdict::Valid(format!("{shown} answered {s} to the credentials")),
            s @ (401 | 403) => Verdict::Invalid(format!("{shown} refused the credentials ({s})")),
            s => Verdict::Unknown(format!("{shown} answered HTTP {s}")),
        },
        Err(e) => Verdict::Unknown(format!("{shown}: {}", crate::error::causes(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "151.101.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn url_context_runs_to_the_end_of_the_url() {
        let buf = b"DB=\"postgres://u:p@db.internal:5432/app?sslmode=disable\" next";
        let end = context_end("postgres-connection-string", buf, 21);
        assert_eq!(
            &buf[4..end],
            b"postgres://u:p@db.internal:5432/app?sslmode=disable"
        );
    }
}
