//! The environment model of `sluice.yaml`: `environments:` (where each environment's secrets
//! live, and whether it is protected) and `secrets:` (what the app needs, per environment).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// One environment (dev, staging, prod, pr-123…).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Environment {
    /// A protected environment's secrets are never referenced from another environment, and its
    /// data only reaches others through masking.
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "validation reads it from the YAML tree, with positions"
    )]
    pub protected: bool,
    /// Where this environment's secrets are stored; refs without a scheme-specific setting
    /// resolve against it.
    #[serde(default)]
    pub secrets: Option<Store>,
    /// More stores of this environment, by name; a reference picks one with
    /// `{ store: NAME, ref: … }` (references without `store:` use `secrets:`).
    #[serde(default)]
    pub stores: BTreeMap<String, Store>,
}

/// A secret store, selected by `provider`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Store {
    /// An age-encrypted YAML map in a file (works with no server).
    Age {
        /// The encrypted store, relative to sluice.yaml.
        file: String,
        /// Identity file (age X25519 keys or an SSH private key). Default: `$SLUICE_AGE_KEY`,
        /// `$SLUICE_AGE_KEY_FILE`, then `~/.config/sluice/keys/<env>.txt`.
        #[serde(default)]
        identity: Option<String>,
        /// Recipients to encrypt to (age or SSH public keys). Default: the identity's own.
        #[serde(default)]
        recipients: Vec<String>,
    },
    /// HashiCorp Vault or OpenBao, KV version 2 or 1.
    Vault {
        /// Server address, e.g. `${VAULT_ADDR}`.
        address: String,
        /// KV mount (default `secret`).
        #[serde(default = "default_mount")]
        mount: String,
        /// Prefix of every path, e.g. `staging/`.
        #[serde(default)]
        prefix: String,
        /// KV engine version: 2 (default) or 1.
        #[serde(default = "default_kv_version")]
        #[schemars(range(min = 1, max = 2))]
        kv_version: u8,
        /// Vault Enterprise / OpenBao namespace.
        #[serde(default)]
        namespace: Option<String>,
        /// How to log in (default: a token from `$VAULT_TOKEN` or `~/.vault-token`).
        #[serde(default)]
        auth: VaultAuth,
        /// Seconds before a request gives up (default 10).
        #[serde(default)]
        timeout_seconds: Option<u64>,
    },
    /// AWS Secrets Manager.
    Aws {
        /// Region, e.g. `eu-central-1`.
        region: String,
        /// Prefix of every secret name, e.g. `prod/`.
        #[serde(default)]
        prefix: String,
        /// Named profile from ~/.aws/config (default: the standard credential chain).
        #[serde(default)]
        profile: Option<String>,
        /// This environment's own credentials, from variables with this prefix: `PROD_` reads
        /// `PROD_AWS_ACCESS_KEY_ID`, `PROD_AWS_SECRET_ACCESS_KEY` and `PROD_AWS_SESSION_TOKEN`
        /// (default: the standard chain, or `profile`).
        #[serde(default)]
        credentials_prefix: Option<String>,
        /// A role to assume with those credentials (e.g.
        /// `arn:aws:iam::123456789012:role/staging-secrets`), so that one base identity reads
        /// each environment's secrets only through that environment's role.
        #[serde(default)]
        role_arn: Option<String>,
        /// The external id the role's trust policy requires, if any.
        #[serde(default)]
        external_id: Option<String>,
        /// The role session's name, shown in CloudTrail (default `sluice-<environment>`).
        #[serde(default)]
        session_name: Option<String>,
        /// Endpoint override (tests, VPC endpoints); `AWS_ENDPOINT_URL` works too.
        #[serde(default)]
        endpoint: Option<String>,
        /// Seconds before a request gives up (default 10).
        #[serde(default)]
        timeout_seconds: Option<u64>,
    },
    /// SOPS files encrypted to age keys (`sops://FILE#a.b` refs), read natively.
    Sops {
        /// Identity file (age or SSH key). Default: `$SLUICE_AGE_KEY`, `$SLUICE_AGE_KEY_FILE`,
        /// then `~/.config/sluice/keys/<env>.txt`.
        #[serde(default)]
        identity: Option<String>,
    },
    /// The process environment (for CI systems that already inject variables).
    Env {
        /// Prefix added to every `env://NAME` lookup.
        #[serde(default)]
        prefix: Option<String>,
    },
}

fn default_mount() -> String {
    "secret".into()
}

fn default_kv_version() -> u8 {
    2
}

/// How sluice logs in to Vault. Credentials themselves never live in sluice.yaml: they come
/// from environment variables and files named here.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum VaultAuth {
    /// A token from an environment variable, else a token file.
    Token {
        /// Variable holding the token (default `VAULT_TOKEN`).
        #[serde(default)]
        token_env: Option<String>,
        /// File holding the token (default `~/.vault-token`).
        #[serde(default)]
        token_file: Option<String>,
    },
    /// AppRole: a role id and a secret id.
    Approle {
        /// Auth mount (default `approle`).
        #[serde(default)]
        mount: Option<String>,
        /// The role id (not secret).
        role_id: String,
        /// Variable holding the secret id (default `VAULT_SECRET_ID`).
        #[serde(default)]
        secret_id_env: Option<String>,
        /// File holding the secret id (used when the variable is unset).
        #[serde(default)]
        secret_id_file: Option<String>,
    },
    /// A JWT from the platform the job runs on (a CI system's OIDC token: GitHub Actions,
    /// GitLab `id_tokens`, …), exchanged at Vault's JWT auth mount: no long-lived token stored.
    Jwt {
        /// Auth mount (default `jwt`).
        #[serde(default)]
        mount: Option<String>,
        /// The Vault role (default: the mount's `default_role`).
        #[serde(default)]
        role: Option<String>,
        /// Variable holding the JWT (default `VAULT_JWT`).
        #[serde(default)]
        jwt_env: Option<String>,
        /// File holding the JWT (used when the variable is unset).
        #[serde(default)]
        jwt_file: Option<String>,
    },
    /// AWS IAM: a `sts:GetCallerIdentity` request signed with the machine's AWS credentials
    /// (instance profile, ECS task or EKS pod role, variables, a profile), exchanged at Vault's
    /// AWS auth mount: no Vault token stored anywhere.
    Aws {
        /// Auth mount (default `aws`).
        #[serde(default)]
        mount: Option<String>,
        /// The Vault role (default: the one named like the IAM principal).
        #[serde(default)]
        role: Option<String>,
        /// The STS region the request is signed for (default `us-east-1`, STS's global endpoint).
        #[serde(default)]
        region: Option<String>,
        /// The AWS profile the credentials come from (default: the standard chain).
        #[serde(default)]
        profile: Option<String>,
        /// The value of the `X-Vault-AWS-IAM-Server-ID` header, when the auth mount requires one.
        #[serde(default)]
        server_id: Option<String>,
        /// The STS URL signed for; it must be the one the Vault server verifies with (its
        /// `sts_endpoint`). Default `https://sts.amazonaws.com/`, or
        /// `https://sts.REGION.amazonaws.com/` with a region other than `us-east-1`.
        #[serde(default)]
        sts_endpoint: Option<String>,
    },
    /// Kubernetes service-account JWT.
    Kubernetes {
        /// Auth mount (default `kubernetes`).
        #[serde(default)]
        mount: Option<String>,
        /// The Vault role.
        role: String,
        /// The JWT file (default `/var/run/secrets/kubernetes.io/serviceaccount/token`).
        #[serde(default)]
        jwt_file: Option<String>,
    },
}

impl Default for VaultAuth {
    fn default() -> Self {
        VaultAuth::Token {
            token_env: None,
            token_file: None,
        }
    }
}

/// What one variable resolves to in one environment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub(crate) enum Source {
    /// A reference: `age://KEY`, `env://VAR`, `vault://path#key`, `aws://name#json.key`,
    /// `sops://file.yaml#a.b`.
    Ref(String),
    /// A literal value for non-secret defaults (`{ value: … }`).
    Literal {
        /// The value, used as is.
        value: String,
    },
    /// A reference with options.
    Detailed {
        /// The reference.
        #[serde(rename = "ref")]
        reference: String,
        /// A missing secret is skipped instead of failing.
        #[serde(default)]
        optional: bool,
        /// How `run` hands it over: `env` (default) sets the variable to the value; `file`
        /// writes the value to a 0600 file in a memory-backed directory (`$XDG_RUNTIME_DIR`
        /// or `/dev/shm`), sets the variable to its path, and removes it when the command ends.
        #[serde(default, rename = "as")]
        delivery: Delivery,
        /// Which of the environment's `stores:` the reference reads (default: `secrets:`).
        #[serde(default)]
        store: Option<String>,
    },
    /// Deliberately not set in this environment (`{ none: true }`): `secrets check` accepts
    /// it, and the variable is left out of `run` and `export`.
    None {
        /// Must be `true` (checked with the configuration).
        #[allow(
            dead_code,
            reason = "validation reads it from the YAML tree, with positions"
        )]
        none: bool,
    },
}

/// How a value reaches the command `run` starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Delivery {
    /// The variable holds the value.
    #[default]
    Env,
    /// The variable holds the path of a file that holds the value.
    File,
}

/// A variable the app needs: its source per environment, keyed by environment name, and
/// optionally under [`DEFAULT`] for every environment that names none.
pub(crate) type SecretSpec = BTreeMap<String, Source>;

/// The key of a variable's source for environments that do not name one.
pub(crate) const DEFAULT: &str = "default";

/// The source of a variable in `env`: its own, else the default (and whether it is the
/// default).
pub(crate) fn source_in<'a>(spec: &'a SecretSpec, env: &str) -> Option<(&'a Source, bool)> {
    match spec.get(env) {
        Some(s) => Some((s, false)),
        None => spec.get(DEFAULT).map(|s| (s, true)),
    }
}
