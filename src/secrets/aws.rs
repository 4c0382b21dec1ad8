//! AWS Secrets Manager: distinct (name, stage or version) in, secret strings out.
//!
//! Credentials come from the standard chain (environment, profile files, web identity, IMDS) or a
//! named profile; the endpoint can be overridden for tests and VPC endpoints. Every distinct
//! secret is fetched once, concurrently, with a timeout and the SDK's bounded retries. JSON keys
//! are extracted after the fetch; binary secrets come back as UTF-8 text, or base64 when they are
//! not text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use base64::Engine as _;

use super::SecretValue;
use crate::error::Error;

/// An AWS store as configured for one environment.
#[derive(Debug, Clone)]
pub(crate) struct AwsStore {
    /// The environment, for messages.
    pub env: String,
    /// Region.
    pub region: String,
    /// Name prefix.
    pub prefix: String,
    /// Named profile.
    pub profile: Option<String>,
    /// Prefix of the variables holding this store's own credentials.
    pub credentials_prefix: Option<String>,
    /// Role to assume.
    pub role_arn: Option<String>,
    /// External id for the role.
    pub external_id: Option<String>,
    /// Role session name.
    pub session_name: Option<String>,
    /// Endpoint override.
    pub endpoint: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
}

/// Which version of a secret to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Wanted {
    /// Name under the prefix.
    pub name: String,
    /// Version stage.
    pub stage: Option<String>,
    /// Version id.
    pub version: Option<String>,
}

/// A fetched secret string, or why not (a message without values).
pub(crate) type FetchResult = Result<SecretValue, super::Miss>;

fn external(store: &AwsStore, detail: impl Into<String>) -> Error {
    Error::External {
        what: format!(
            "AWS Secrets Manager of environment `{}` ({})",
            store.env, store.region
        ),
        detail: detail.into(),
    }
}

impl AwsStore {
    /// The full secret name under the prefix.
    pub(crate) fn full_name(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// The variables of `credentials_prefix`, which sluice authenticates with.
    pub(crate) fn credential_vars(&self) -> Vec<String> {
        self.credentials_prefix
            .iter()
            .flat_map(|p| {
                [
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN",
                ]
                .map(|v| format!("{p}{v}"))
            })
            .collect()
    }

    /// The store's own credentials, when it names variables for them.
    fn own_credentials(
        &self,
    ) -> Result<Option<aws_sdk_secretsmanager::config::Credentials>, Error> {
        let Some(p) = &self.credentials_prefix else {
            return Ok(None);
        };
        let var = |v: &str| {
            std::env::var(format!("{p}{v}"))
                .ok()
                .filter(|s| !s.is_empty())
        };
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(key)) => Ok(Some(aws_sdk_secretsmanager::config::Credentials::new(
                id,
                key,
                var("AWS_SESSION_TOKEN"),
                None,
                "sluice credentials_prefix",
            ))),
            _ => Err(external(
                self,
                format!(
                    "`credentials_prefix: {p}` needs {p}AWS_ACCESS_KEY_ID and {p}AWS_SECRET_ACCESS_KEY set (and {p}AWS_SESSION_TOKEN for temporary credentials)"
                ),
            )),
        }
    }

    /// The SDK configuration of this store: region, timeouts, profile, endpoint, its own
    /// credentials, and its role when it names one.
    pub(crate) async fn sdk_config(&self) -> Result<aws_config::SdkConfig, Error> {
        // The timeout is the whole operation's, retries included.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.timeout)
            .operation_attempt_timeout(self.timeout)
            .operation_timeout(self.timeout)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .timeout_config(timeouts)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &self.endpoint {
            loader = loader.endpoint_url(e);
        }
        if let Some(c) = self.own_credentials()? {
            loader = loader.credentials_provider(c);
        }
        let base = loader.load().await;
        let Some(role) = &self.role_arn else {
            return Ok(base);
        };
        let mut assume = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name(
                self.session_name
                    .clone()
                    .unwrap_or_else(|| format!("sluice-{}", self.env)),
            )
            .configure(&base);
        if let Some(id) = &self.external_id {
            assume = assume.external_id(id);
        }
        let assumed = assume.build().await;
        Ok(base
            .into_builder()
            .credentials_provider(
                aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(assumed),
            )
            .build())
    }

    async fn client(&self) -> Result<aws_sdk_secretsmanager::Client, Error> {
        Ok(aws_sdk_secretsmanager::Client::new(
            &self.sdk_config().await?,
        ))
    }

    async fn fetch_one(&self, client: &aws_sdk_secretsmanager::Client, w: &Wanted) -> FetchResult {
        let out = client
            .get_secret_value()
            .secret_id(self.full_name(&w.name))
            .set_version_stage(w.stage.clone())
            .set_version_id(w.version.clone())
            .send()
            .await
            .map_err(|e| {
                let service = e.as_service_error();
                super::Miss::Failed(match service.and_then(|s| s.code()) {
                    Some("ResourceNotFoundException") => {
                        return super::Miss::Absent("not found".to_string());
                    }
                    Some("AccessDeniedException") => {
                        "access denied: the credentials' policy does not allow this secret"
                            .to_string()
                    }
                    Some(
                        code @ ("UnrecognizedClientException"
                        | "InvalidSignatureException"
                        | "ExpiredTokenException"
                        | "InvalidClientTokenId"),
                    ) => format!(
                        "{code}: the credentials are invalid or expired (not a policy denial)"
                    ),
                    Some(code) => format!(
                        "{code}: {}",
                        crate::error::printable(
                            service.and_then(|s| s.message()).unwrap_or("")
                        )
                    ),
                    None => match &e {
                        aws_sdk_secretsmanager::error::SdkError::TimeoutError(_) => format!(
                            "no answer within {} s (timeout_seconds)",
                            self.timeout.as_secs()
                        ),
                        aws_sdk_secretsmanager::error::SdkError::DispatchFailure(_) => {
                            let mut inner: &dyn std::error::Error = &e;
                            while let Some(next) = inner.source() {
                                inner = next;
                            }
                            format!(
                                "cannot reach {}: {}",
                                self.endpoint.as_deref().unwrap_or("the regional endpoint"),
                                crate::error::printable(&inner.to_string())
                            )
                        }
                        aws_sdk_secretsmanager::error::SdkError::ServiceError(_) => format!(
                            "the endpoint answered HTTP {} without an AWS error; is {} Secrets Manager?",
                            e.raw_response().map_or(0, |r| r.status().as_u16()),
                            self.endpoint.as_deref().unwrap_or("the regional endpoint")
                        ),
                        other => crate::error::causes(other),
                    },
                })
            })?;
        if let Some(s) = out.secret_string() {
            return Ok(SecretValue::new(s.to_string()));
        }
        if let Some(b) = out.secret_binary() {
            let bytes = b.as_ref();
            return Ok(SecretValue::new(match std::str::from_utf8(bytes) {
                Ok(s) => s.to_string(),
                Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
            }));
        }
        Err(super::Miss::Failed(
            "the secret version holds no value".into(),
        ))
    }

    /// Fetch every distinct secret once, concurrently.
    pub(crate) fn fetch(&self, wanted: &[Wanted]) -> Result<HashMap<Wanted, FetchResult>, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| external(self, format!("cannot start the async runtime: {e}")))?;
        rt.block_on(async {
            let client = Arc::new(self.client().await?);
            let mut tasks = tokio::task::JoinSet::new();
            for (i, w) in wanted.iter().enumerate() {
                let (client, store, w) = (client.clone(), self.clone(), w.clone());
                tasks.spawn(async move { (i, store.fetch_one(&client, &w).await) });
            }
            let mut out = HashMap::new();
            while let Some(done) = tasks.join_next().await {
                let (i, r) =
                    done.map_err(|e| external(self, format!("a fetch task failed: {e}")))?;
                out.insert(wanted[i].clone(), r);
            }
            Ok(out)
        })
    }
}

/// The headers that sign a request with SigV4 (`authorization`, `x-amz-date`, and
/// `x-amz-security-token` for temporary credentials), for requests sluice sends itself.
pub(crate) fn sigv4_headers(
    identity: &aws_smithy_runtime_api::client::identity::Identity,
    region: &str,
    service: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(service)
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// A signed `sts:GetCallerIdentity` request, as Vault's AWS IAM auth method takes it: the
/// method, and the URL, headers (JSON of name to values) and body, each base64.
pub(crate) struct IamLogin {
    /// `iam_request_url`.
    pub url: String,
    /// `iam_request_headers`.
    pub headers: String,
    /// `iam_request_body`.
    pub body: String,
}

/// Sign a `GetCallerIdentity` request for `region` (STS's global endpoint for `us-east-1`, or
/// `sts_endpoint`) with the credentials of `profile` or the standard chain, adding
/// `X-Vault-AWS-IAM-Server-ID: server_id` to the signed headers when given.
pub(crate) async fn iam_login(
    region: Option<&str>,
    profile: Option<&str>,
    server_id: Option<&str>,
    sts_endpoint: Option<&str>,
    timeout: std::time::Duration,
) -> Result<IamLogin, String> {
    let region = region.unwrap_or("us-east-1");
    let url = match sts_endpoint {
        Some(u) => u.to_string(),
        None if region == "us-east-1" => "https://sts.amazonaws.com/".to_string(),
        None => format!("https://sts.{region}.amazonaws.com/"),
    };
    let parsed =
        url::Url::parse(&url).map_err(|e| format!("sts_endpoint `{url}` is not a URL ({e})"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(format!("sts_endpoint `{url}` has no host")),
    };
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(timeout)
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .timeout_config(timeouts);
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    let config = loader.load().await;
    let provider = config
        .credentials_provider()
        .ok_or("no AWS credentials: set them, a profile, or run with an instance role")?;
    use aws_credential_types::provider::ProvideCredentials as _;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| format!("no AWS credentials ({})", crate::error::causes(&e)))?;
    let identity = aws_smithy_runtime_api::client::identity::Identity::from(creds);
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let mut headers = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("host", host.as_str()),
    ];
    if let Some(id) = server_id {
        headers.push(("x-vault-aws-iam-server-id", id));
    }
    let signed = sigv4_headers(&identity, region, "sts", &url, &headers, body.as_bytes())?;
    let mut all = serde_json::Map::new();
    for (k, v) in headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(signed)
    {
        all.insert(k, serde_json::json!([v]));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(IamLogin {
        url: b64.encode(&url),
        headers: b64.encode(serde_json::Value::Object(all).to_string()),
        body: b64.encode(body),
    })
}

/// The value at dotted `path` inside a JSON secret.
pub(crate) fn json_key(secret: &SecretValue, path: &str) -> Result<SecretValue, super::Miss> {
    let doc: serde_json::Value = serde_json::from_str(secret.expose()).map_err(|_| {
        super::Miss::Failed(format!(
            "`#{path}` asks for a JSON key, but the secret is not a JSON object"
        ))
    })?;
    let mut cur = &doc;
    for part in path.split('.') {
        cur = cur
            .get(part)
            .ok_or_else(|| super::Miss::Absent(format!("the JSON secret has no key `{path}`")))?;
    }
    Ok(SecretValue::new(match cur {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let s = SecretValue::new(r#"{"url":"pg://x","nested":{"port":5432},"flag":true}"#.into());
        assert_eq!(json_key(&s, "url").unwrap().expose(), "pg://x");
        assert_eq!(json_key(&s, "nested.port").unwrap().expose(), "5432");
        assert!(
            matches!(json_key(&s, "nope"), Err(crate::secrets::Miss::Absent(m)) if m.contains("no key `nope`"))
        );
        let plain = SecretValue::new("not json at all".into());
        let e = json_key(&plain, "url").unwrap_err().to_string();
        assert!(e.contains("not a JSON object") && !e.contains("not json at all"));
    }
}
