//! TLS to PostgreSQL, with libpq's `sslmode` meanings: `disable`; `prefer` (the default: TLS
//! when the server offers it, unverified) and `require` (TLS, unverified unless `sslrootcert`
//! is given, as libpq does); `verify-ca` (the chain must lead to a trusted root); `verify-full`
//! (and the certificate must name the host). Roots are the `sslrootcert` file, or the system's
//! (`sslrootcert=system`, or a verify mode without one).
//!
//! In: a connection URL (`postgres://…?sslmode=verify-full&sslrootcert=/etc/ca.pem`) or
//! key=value string. Out: an [`Endpoint`]: the tokio-postgres config and the TLS connector it
//! needs, plus the libpq variables that give `pg_dump` and `psql` the same settings.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::error::Error;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it; the certificate is not checked.
    Prefer,
    /// TLS; the certificate is checked only against an `sslrootcert` given.
    Require,
    /// TLS; the chain must lead to a trusted root.
    VerifyCa,
    /// TLS; the chain must lead to a trusted root and name the host.
    VerifyFull,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    fn libpq(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told (it knows only disable, prefer and require).
    fn wire(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            _ => "require",
        }
    }
}

/// A PostgreSQL server to connect to: the tokio-postgres config (reachable through `Deref`)
/// and how to secure the connection.
#[derive(Clone)]
pub(crate) struct Endpoint {
    config: tokio_postgres::Config,
    mode: Mode,
    root: Option<String>,
    connector: Option<MakeRustls>,
}

impl std::ops::Deref for Endpoint {
    type Target = tokio_postgres::Config;
    fn deref(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl std::ops::DerefMut for Endpoint {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }
}

/// Take `sslmode` and `sslrootcert` out of a connection string (tokio-postgres knows neither
/// verify mode nor root files); the rest is left for tokio-postgres.
fn split(text: &str) -> Option<(String, Option<String>, Option<String>)> {
    let (mut mode, mut root) = (None, None);
    if let Some(parts) = UrlParts::of(text) {
        // Not `url::Url`: libpq's URLs may have an empty host (`postgresql://user@/db?host=/run`,
        // a Unix socket), which WHATWG URLs refuse.
        let mut rest: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(parts.query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "sslmode" => mode = Some(v.into_owned()),
                "sslrootcert" => root = Some(v.into_owned()),
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        let mut out = format!("{}{}", parts.authority, parts.path);
        if !rest.is_empty() {
            out.push('?');
            out.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(rest)
                    .finish(),
            );
        }
        return Some((out, mode, root));
    }
    let mut kept = Vec::new();
    for (k, raw) in kv_pairs(text) {
        match k.as_str() {
            "sslmode" => mode = Some(unquote(&raw)),
            "sslrootcert" => root = Some(unquote(&raw)),
            _ => kept.push(format!("{k}={raw}")),
        }
    }
    Some((kept.join(" "), mode, root))
}

/// A `postgres://` or `postgresql://` URL cut into its parts, as written.
pub(crate) struct UrlParts<'a> {
    /// `postgresql://user:<password>@host:port` (the host may be empty).
    pub authority: &'a str,
    /// `/dbname`, or empty.
    pub path: &'a str,
    /// After `?`.
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    /// `None` when `text` is not a PostgreSQL URL (a key=value string, say).
    pub(crate) fn of(text: &'a str) -> Option<UrlParts<'a>> {
        let after = text
            .strip_prefix("postgresql://")
            .or_else(|| text.strip_prefix("postgres://"))?;
        let scheme = text.len() - after.len();
        let (head, query) = match text.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (text, None),
        };
        let slash = head[scheme..].find('/').map_or(head.len(), |i| scheme + i);
        Some(UrlParts {
            authority: &head[..slash],
            path: &head[slash..],
            query,
        })
    }
}

/// The `key=value` pairs of a libpq key/value connection string, each value as written
/// (`'quoted values'` with `\'` and `\\` escapes keep their quotes), so the string can be
/// put back together.
pub(crate) fn kv_pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=');
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut raw = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            raw.push('\'');
            while let Some(c) = chars.next() {
                raw.push(c);
                match c {
                    '\\' => raw.extend(chars.next()),
                    '\'' => break,
                    _ => {}
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                raw.push(c);
            }
        }
        out.push((key, raw));
    }
    out
}

fn unquote(raw: &str) -> String {
    match raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => {
            let mut v = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    v.extend(chars.next());
                } else {
                    v.push(c);
                }
            }
            v
        }
        None => raw.to_string(),
    }
}

/// Parse a connection string. `side` names it in errors (`source`, `target`); the string
/// itself is never quoted, since it may hold a password.
pub(crate) fn endpoint(text: &str, side: &str) -> Result<Endpoint, Error> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "the {side} URL {why} (postgres://user:<password>@host:port/dbname?sslmode=verify-full); it is not shown"
        ))
    };
    let (rest, mode, root) = split(text).ok_or_else(|| bad("is not a valid URL"))?;
    let mode = match mode.as_deref() {
        None => Mode::Prefer,
        Some(m) => Mode::parse(m).ok_or_else(|| {
            bad(&format!(
                "has sslmode={m}; use disable, prefer, require, verify-ca or verify-full"
            ))
        })?,
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|_| bad("is not a PostgreSQL connection URL"))?;
    config.ssl_mode(match mode.wire() {
        "disable" => tokio_postgres::config::SslMode::Disable,
        "prefer" => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let connector = match mode {
        Mode::Disable => None,
        _ => Some(MakeRustls::new(mode, root.as_deref(), side)?),
    };
    Ok(Endpoint {
        config,
        mode,
        root,
        connector,
    })
}

impl Endpoint {
    /// Connect; the connection runs on a task of its own. Over a Unix-domain socket there is no
    /// TLS whatever the `sslmode` (as in libpq, which ignores it there). The session's
    /// `statement_timeout`, `idle_in_transaction_session_timeout` and `idle_session_timeout`
    /// are turned off where the server lets a session set them: a role's timeout would cancel
    /// a long COPY or end the snapshot's idle transaction half-way through a refresh.
    pub(crate) async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let unix_only = !self.config.get_hosts().is_empty()
            && self
                .config
                .get_hosts()
                .iter()
                .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        let client = match &self.connector {
            Some(make) if !unix_only => {
                let (client, conn) = self.config.connect(make.clone()).await?;
                tokio::spawn(async move { note_end(conn.await) });
                client
            }
            _ => {
                let mut config = self.config.clone();
                if unix_only {
                    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                }
                let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(async move { note_end(conn.await) });
                client
            }
        };
        register_connection(client.cancel_token(), self);
        // One round trip; settings the server does not have (idle_session_timeout before 14)
        // are simply not in pg_settings. A proxy that refuses SET leaves the defaults.
        let _ = client
            .batch_execute(
                "select set_config(name, '0', false) from pg_settings
                  where name in ('statement_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout')
                    and context = 'user'",
            )
            .await;
        Ok(client)
    }

    /// Cancel the query running on the connection `token` belongs to.
    pub(crate) async fn cancel(
        &self,
        token: &tokio_postgres::CancelToken,
    ) -> Result<(), tokio_postgres::Error> {
        match &self.connector {
            Some(make) => token.cancel_query(make.clone()).await,
            None => token.cancel_query(tokio_postgres::NoTls).await,
        }
    }

    /// `PGSSLMODE` and `PGSSLROOTCERT` for libpq programs.
    pub(crate) fn libpq_tls(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("PGSSLMODE", self.mode.libpq().to_string())];
        if let Some(r) = &self.root {
            env.push(("PGSSLROOTCERT", r.clone()));
        }
        env
    }
}

/// Every connection's cancel key, so a signal can cancel what runs on it ([`cancel_all`]).
static CANCELS: std::sync::Mutex<Vec<(tokio_postgres::CancelToken, Endpoint)>> =
    std::sync::Mutex::new(Vec::new());

fn register_connection(token: tokio_postgres::CancelToken, endpoint: &Endpoint) {
    if let Ok(mut c) = CANCELS.lock() {
        c.push((token, endpoint.clone()));
    }
}

/// Cancel the running query of every connection this process opened; how many were cancelled.
pub(crate) async fn cancel_all() -> usize {
    let cancels: Vec<(tokio_postgres::CancelToken, Endpoint)> =
        CANCELS.lock().map(|c| c.clone()).unwrap_or_default();
    let mut cancelled = 0;
    for (token, endpoint) in &cancels {
        let cancel = endpoint.cancel(token);
        if let Ok(Ok(())) = tokio::time::timeout(std::time::Duration::from_secs(3), cancel).await {
            cancelled += 1;
        }
    }
    cancelled
}

/// Why the server last ended one of this process's sessions on its own (a FATAL error sent
/// outside any query, such as an idle timeout or `pg_terminate_backend`), with its SQLSTATE.
static LAST_END: std::sync::Mutex<Option<(String, String)>> = std::sync::Mutex::new(None);

fn note_end(result: Result<(), tokio_postgres::Error>) {
    if let Err(e) = result
        && let Some(db) = e.as_db_error()
        && let Ok(mut last) = LAST_END.lock()
    {
        *last = Some((db.code().code().to_string(), db.message().to_string()));
    }
}

/// What the server said when it last ended a session by itself, and which setting did it when
/// the SQLSTATE tells: for the message of a query that failed with "connection closed".
pub(crate) fn last_session_end() -> Option<String> {
    let (code, message) = LAST_END.lock().ok()?.clone()?;
    let setting = match code.as_str() {
        "25P03" => {
            "; idle_in_transaction_session_timeout ended it (set on the role or database: ALTER ROLE … RESET idle_in_transaction_session_timeout)"
        }
        "57P05" => {
            "; idle_session_timeout ended it (set on the role or database: ALTER ROLE … RESET idle_session_timeout)"
        }
        "57P01" => "; an administrator or pg_terminate_backend ended it",
        _ => "",
    };
    Some(format!(
        "the server ended the session: {message} [SQLSTATE {code}]{setting}"
    ))
}

/// Makes a TLS session per connection from one client configuration.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl MakeRustls {
    fn new(mode: Mode, root: Option<&str>, side: &str) -> Result<MakeRustls, Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls_error = |detail: String| Error::External {
            what: "tls".into(),
            detail: format!("{side}: {detail}"),
        };
        // libpq: with a root file, `require` verifies like `verify-ca`.
        let verify = match (mode, root) {
            (Mode::Prefer, _) | (Mode::Require, None) => None,
            (Mode::Require, Some(_)) => Some(false),
            (Mode::VerifyCa, _) => Some(false),
            _ => Some(true),
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?;
        let config = match verify {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth(),
            Some(check_name) => {
                let roots = Arc::new(roots(root).map_err(tls_error)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| tls_error(e.to_string()))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Verified { webpki, check_name }))
                    .with_no_client_auth()
            }
        };
        Ok(MakeRustls {
            config: Arc::new(config),
        })
    }
}

/// The trusted roots: the `sslrootcert` file (PEM), or the system's.
fn roots(root: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        Some(path) if path != "system" => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert {path} holds no PEM certificate"));
            }
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = store.add(c);
            }
            if store.is_empty() {
                return Err(
                    "no system root certificates found; give sslrootcert=/path/to/ca.pem".into(),
                );
            }
        }
    }
    Ok(store)
}

/// `prefer` and `require` without a root file: encrypted, not authenticated (libpq's meaning).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (chain only) and `verify-full` (chain and host name).
#[derive(Debug)]
struct Verified {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error as E};
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(E::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// One connection's TLS handshake.
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            config: Arc::clone(&self.config),
            name,
        })
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await
                .map(|s| RustlsStream(Box::new(s)))
        })
    }
}

/// A TLS stream to the server.
pub(crate) struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM-SHA-256 without channel binding (the server then does not offer -PLUS).
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_root_come_out_of_urls_and_key_value_strings() {
        let (rest, mode, root) = split(
            "postgresql://u:p@db:5432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:p@db:5432/app?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, root) =
            split("host=db sslmode=require password='a b\\'c' dbname = app sslrootcert='/ca.pem'")
                .unwrap();
        assert_eq!(rest, "host=db password='a b\\'c' dbname=app");
        let parsed: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(parsed.get_password(), Some(&b"a b'c"[..]));
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(root.as_deref(), Some("/ca.pem"));
        let e = endpoint("postgresql://u@db/app?sslmode=verify-full", "source").unwrap();
        assert_eq!(e.get_dbname(), Some("app"));
        assert_eq!(e.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(
            e.libpq_tls(),
            vec![("PGSSLMODE", "verify-full".to_string())]
        );
        let bad = endpoint("postgresql://u:hunter2@db/app?sslmode=sometimes", "target") // sluice:allow (a test URL)
            .err()
            .unwrap()
            .to_string();
        assert!(
            bad.contains("sslmode=sometimes") && !bad.contains("hunter2"),
            "{bad}"
        );
        assert!(
            endpoint(
                "postgresql://u@db/app?sslmode=require&sslrootcert=/nonexistent.pem",
                "x"
            )
            .is_err()
        );
    }
}
