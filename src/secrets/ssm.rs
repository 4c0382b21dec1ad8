//! AWS Systems Manager Parameter Store (`ssm://NAME`, `ssm://PATH/`), through the environment's
//! AWS store (region, credentials, role, endpoint). Two calls of the service's JSON API,
//! `GetParameter` and `GetParametersByPath` (with decryption, paginated), signed with SigV4.

use std::collections::BTreeMap;

use super::SecretValue;
use super::aws::AwsStore;
use crate::error::Error;

/// What a parameter or path gave: its value(s), or why not.
pub(crate) type Fetched = Result<BTreeMap<String, SecretValue>, super::Miss>;

impl AwsStore {
    /// The full parameter name of `path`: `/` + prefix + path.
    pub(crate) fn ssm_name(&self, path: &str) -> String {
        format!("/{}{}", self.prefix.trim_start_matches('/'), path)
    }

    async fn ssm_call(
        &self,
        http: &reqwest::Client,
        identity: &aws_smithy_runtime_api::client::identity::Identity,
        target: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, super::Miss> {
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_SSM").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| format!("https://ssm.{}.amazonaws.com", self.region));
        let url = format!("{}/", endpoint.trim_end_matches('/'));
        let body = body.to_string();
        let amz_target = format!("AmazonSSM.{target}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", amz_target.as_str()),
        ];
        let signed = super::aws::sigv4_headers(
            identity,
            &self.region,
            "ssm",
            &url,
            &headers,
            body.as_bytes(),
        )
        .map_err(super::Miss::Failed)?;
        let mut req = http.post(&url).body(body.clone());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in &signed {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| {
            super::Miss::Failed(if e.is_timeout() {
                format!(
                    "no answer within {} s (timeout_seconds)",
                    self.timeout.as_secs()
                )
            } else {
                format!("cannot reach {endpoint}: {}", crate::error::causes(&e))
            })
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| super::Miss::Failed(crate::error::causes(&e)))?;
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if status == 200 {
            return Ok(json);
        }
        let kind = json["__type"]
            .as_str()
            .unwrap_or("")
            .rsplit('#')
            .next()
            .unwrap_or("");
        let message = crate::error::printable(
            json["message"]
                .as_str()
                .or(json["Message"].as_str())
                .unwrap_or(""),
        );
        Err(match kind {
            "ParameterNotFound" => super::Miss::Absent("not found".into()),
            "AccessDeniedException" => super::Miss::Failed(
                "access denied: the credentials' policy does not allow this parameter".into(),
            ),
            "" => super::Miss::Failed(format!(
                "the endpoint answered HTTP {status} without an AWS error; is {endpoint} Systems Manager?"
            )),
            k => super::Miss::Failed(format!("{k}: {message}")),
        })
    }

    /// Every wanted parameter (`NAME`) or path (`PATH/`, every parameter under it, by its name
    /// relative to the path), decrypted.
    pub(crate) fn ssm_fetch(&self, wanted: &[String]) -> Result<BTreeMap<String, Fetched>, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::External {
                what: format!("AWS Systems Manager of environment `{}`", self.env),
                detail: format!("cannot start the async runtime: {e}"),
            })?;
        rt.block_on(async {
            let config = self.sdk_config().await?;
            let failed = |detail: String| Error::External {
                what: format!(
                    "AWS Systems Manager of environment `{}` ({})",
                    self.env, self.region
                ),
                detail,
            };
            let provider = config.credentials_provider().ok_or_else(|| {
                failed("no AWS credentials: set them, a profile, or credentials_prefix".into())
            })?;
            use aws_credential_types::provider::ProvideCredentials as _;
            let creds = provider.provide_credentials().await.map_err(|e| {
                failed(format!("no AWS credentials ({})", crate::error::causes(&e)))
            })?;
            let identity = aws_smithy_runtime_api::client::identity::Identity::from(creds);
            let http = reqwest::Client::builder()
                .timeout(self.timeout)
                .build()
                .map_err(|e| failed(crate::error::causes(&e)))?;
            let mut out = BTreeMap::new();
            for w in wanted {
                let result = match w.strip_suffix('/') {
                    None => self
                        .ssm_call(
                            &http,
                            &identity,
                            "GetParameter",
                            serde_json::json!({ "Name": self.ssm_name(w), "WithDecryption": true }),
                        )
                        .await
                        .and_then(|json| {
                            json["Parameter"]["Value"]
                                .as_str()
                                .map(|v| {
                                    BTreeMap::from([(
                                        String::new(),
                                        SecretValue::new(v.to_string()),
                                    )])
                                })
                                .ok_or_else(|| {
                                    super::Miss::Failed("the answer holds no value".into())
                                })
                        }),
                    Some(path) => {
                        let full = format!("{}/", self.ssm_name(path));
                        let mut all = BTreeMap::new();
                        let mut next: Option<String> = None;
                        loop {
                            let mut body = serde_json::json!({
                                "Path": full.trim_end_matches('/'),
                                "Recursive": true,
                                "WithDecryption": true,
                            });
                            if let Some(t) = &next {
                                body["NextToken"] = serde_json::Value::String(t.clone());
                            }
                            match self
                                .ssm_call(&http, &identity, "GetParametersByPath", body)
                                .await
                            {
                                Err(e) => break Err(e),
                                Ok(json) => {
                                    for p in json["Parameters"].as_array().into_iter().flatten() {
                                        if let (Some(n), Some(v)) =
                                            (p["Name"].as_str(), p["Value"].as_str())
                                        {
                                            let rel =
                                                n.strip_prefix(&full).unwrap_or(n).to_string();
                                            all.insert(rel, SecretValue::new(v.to_string()));
                                        }
                                    }
                                    next = json["NextToken"]
                                        .as_str()
                                        .filter(|t| !t.is_empty())
                                        .map(str::to_string);
                                    if next.is_none() {
                                        break if all.is_empty() {
                                            Err(super::Miss::Absent(format!(
                                                "no parameters under {full}"
                                            )))
                                        } else {
                                            Ok(all)
                                        };
                                    }
                                }
                            }
                        }
                    }
                };
                out.insert(w.clone(), result);
            }
            Ok(out)
        })
    }
}

/// The variable a parameter under a path becomes: `APP` + `db/url` -> `APP_DB_URL`.
pub(crate) fn path_variable(var: &str, relative: &str) -> String {
    let key: String = relative
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{var}_{key}")
}
