//! The daemon's configuration: one TOML file. Credentials are never in the file itself: each
//! names an environment variable or a file to read them from.
//!
//! Every check names the key it refuses, so a bad config stops start-up with a message an
//! operator can act on.

use crate::engine::{EngineSettings, RetrySettings};
use crate::secret::Secret;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store directory (created if missing).
    pub store: PathBuf,
    /// Where the admin API listens; loopback by default.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// The admin API takes every operator action with one bearer token and no TLS: an
    /// `admin_listen` that is not loopback is refused unless this is `true` (then warned
    /// about at every start).
    #[serde(default)]
    pub admin_listen_non_loopback: bool,
    /// A listener of its own for `/healthz`, `/readyz` and `/metrics` only (no token: they
    /// carry no secret, amount or salary id), e.g. `0.0.0.0:9464` for a Kubernetes probe or
    /// a Prometheus scraper. Unset: the probes are on the admin listener alone.
    #[serde(default)]
    pub health_listen: Option<SocketAddr>,
    #[serde(default = "default_workers")]
    pub workers: usize,
    #[serde(default = "default_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Terminal instances (and their history and error-log lines) older than this many days
    /// are pruned by the retention sweep; salaries are personal data. Unset: keep everything.
    #[serde(default)]
    pub retention_days: Option<u64>,
    /// The same as an age (`90d`, `12h`, `30m`, `45s`, as `prune --older-than` takes);
    /// exclusive with `retention_days`.
    #[serde(default)]
    pub retention: Option<String>,
    /// How often the retention sweep runs (default `1h`; the first sweep runs at start).
    #[serde(default)]
    pub retention_sweep_every: Option<String>,
    /// sled's page cache in MiB. The store's resident memory is bounded by about this much
    /// (sled's own default, 1 GiB, is filled by a store of a million instances).
    #[serde(default = "default_store_cache_mb")]
    pub store_cache_mb: u64,
    /// How long `run` waits for the store's lock when another process (a direct-mode CLI
    /// command) holds it, in seconds (default 30; 0: do not wait).
    #[serde(default = "default_store_lock_wait_s")]
    pub store_lock_wait_s: u64,
    #[serde(default)]
    pub retry: RetrySettings,
    /// The signed webhook; without this table the daemon takes changes only through the CLI.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default, rename = "integration")]
    pub integrations: Vec<IntegrationConfig>,
}

/// `POST /v1/salary-events`, signed with HMAC-SHA256 under a shared secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub secret: SecretSource,
    /// How far the sender's timestamp may be from our clock.
    #[serde(default = "default_replay_window_s")]
    pub replay_window_s: i64,
    #[serde(default = "default_body_len_max")]
    pub body_len_max: usize,
    /// A connection must send a whole request head within this many seconds of starting to
    /// wait for one (fresh or kept alive), or it is closed.
    #[serde(default = "default_head_timeout_s")]
    pub head_timeout_s: u64,
    /// The whole body must arrive within this many seconds (408 otherwise).
    #[serde(default = "default_body_timeout_s")]
    pub body_timeout_s: u64,
    /// Connections open at once on the webhook listener; more are closed on accept.
    #[serde(default = "default_connections_max")]
    pub connections_max: usize,
    /// How far in the future by our clock an event's `occurred_at` may lie (422 beyond).
    #[serde(default = "default_occurred_at_future_max_s")]
    pub occurred_at_future_max_s: i64,
}

fn default_replay_window_s() -> i64 {
    300
}

fn default_head_timeout_s() -> u64 {
    10
}

fn default_body_timeout_s() -> u64 {
    30
}

fn default_connections_max() -> usize {
    256
}

fn default_occurred_at_future_max_s() -> i64 {
    86_400
}

/// The keys whose value is a credential source (`{ env = ... }` or `{ file = ... }`): a value
/// written there inline is a credential, and must never be echoed.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "consumer_token",
    "employee_token",
    "client_id",
    "client_secret",
    "client_assertion_key",
];

/// Refuses a credential written inline (a string, not a table), naming the key and never the
/// value. Walks the whole document so a new section's credential keys are covered too.
fn refuse_inline_secrets(path: &str, table: &toml::Table) -> Result<(), String> {
    for (key, value) in table {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            toml::Value::Table(inner) => refuse_inline_secrets(&here, inner)?,
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(inner) = item {
                        refuse_inline_secrets(&format!("{here}[{i}]"), inner)?;
                    }
                }
            }
            _ if SECRET_KEYS.contains(&key.as_str()) => {
                return Err(format!(
                    "{here}: a credential is never written in the config file (its value is not \
                     shown); give `{{ env = \"VAR\" }}` or `{{ file = \"/path\" }}`"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// toml's error without its excerpt of the file (the excerpt may hold a credential): the
/// line and column, and the message.
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_owned(),
    }
}
fn default_body_len_max() -> usize {
    1024 * 1024
}

/// One customer's payroll system, tagged by `system`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "system", rename_all = "kebab-case", deny_unknown_fields)]
pub enum IntegrationConfig {
    Tripletex {
        id: String,
        /// Instances of this integration worked on at once (default: `workers`), so one
        /// customer's backlog cannot take every worker.
        #[serde(default)]
        concurrency: Option<usize>,
        /// e.g. `https://tripletex.no/v2`
        base_url: String,
        consumer_token: SecretSource,
        employee_token: SecretSource,
        /// Basic-auth user: `0` for the token's own company, or a client company id.
        #[serde(default)]
        company: Option<String>,
    },
    Unimicro {
        id: String,
        /// Instances of this integration worked on at once (default: `workers`), so one
        /// customer's backlog cannot take every worker.
        #[serde(default)]
        concurrency: Option<usize>,
        /// The API root, e.g. `https://test-api.unieconomy.no` (routes under `/api/biz/`).
        base_url: String,
        /// The OAuth2 token endpoint, e.g. `https://test-login.unieconomy.no/connect/token`.
        token_url: String,
        /// The company's key, sent as the `CompanyKey` header.
        company_key: String,
        client_id: SecretSource,
        /// Give this, or `client_assertion_key` (the certificate-signed assertion).
        #[serde(default)]
        client_secret: Option<SecretSource>,
        /// The certificate's PKCS#8 PEM private key: the token request carries an RS256
        /// client assertion signed with it instead of a secret.
        #[serde(default)]
        client_assertion_key: Option<SecretSource>,
        /// The certificate's SHA-1 thumbprint (base64url), sent as the assertion's `x5t`.
        #[serde(default)]
        certificate_thumbprint: Option<String>,
        /// OAuth scope; `AppFramework` when absent.
        #[serde(default)]
        scope: Option<String>,
    },
    /// Visma.net Payroll (Employee API v2); see docs/payroll-systems/visma.md.
    VismaPayroll {
        id: String,
        /// Instances of this integration worked on at once (default: `workers`), so one
        /// customer's backlog cannot take every worker.
        #[serde(default)]
        concurrency: Option<usize>,
        /// e.g. `https://api.employeecore.hrm.visma.net/v2`
        base_url: String,
        /// Visma Connect's OAuth2 token endpoint.
        token_url: String,
        tenant_id: String,
        client_id: SecretSource,
        client_secret: SecretSource,
        /// Space-separated OAuth scopes (not published by Visma).
        #[serde(default)]
        scope: Option<String>,
        /// The payroll currency; Visma.net Payroll Norway is NOK-only (the default).
        #[serde(default)]
        currency: Option<String>,
        /// Wire details Visma does not publish (paging, filters, error body, headers).
        #[serde(default)]
        api: Box<crate::connectors::visma::VismaApi>,
    },
}

/// Where a credential is read from.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.env, &self.file) {
            (Some(e), _) => write!(f, "env:{e}"),
            (None, Some(p)) => write!(f, "file:{}", p.display()),
            (None, None) => write!(f, "(unset)"),
        }
    }
}

impl IntegrationConfig {
    pub fn id(&self) -> &str {
        match self {
            Self::Tripletex { id, .. } | Self::VismaPayroll { id, .. } => id,
            Self::Unimicro { id, .. } => id,
        }
    }

    pub fn concurrency(&self) -> Option<usize> {
        match self {
            Self::Tripletex { concurrency, .. }
            | Self::VismaPayroll { concurrency, .. }
            | Self::Unimicro { concurrency, .. } => *concurrency,
        }
    }
}

impl SecretSource {
    /// Reads the credential. The error names the key and the source, never the value.
    pub fn load(&self, key: &str) -> Result<Secret, String> {
        let value = match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| format!("{key}: environment variable {var} is not set"))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?,
            _ => {
                return Err(format!(
                    "{key}: give exactly one of `env = \"VAR\"` or `file = \"/path\"`"
                ))
            }
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("{key}: the credential is empty"));
        }
        Ok(Secret::new(value))
    }
}

/// An http(s) URL with a host (`http://` and `https:///v2` have none).
fn check_url(i: usize, key: &str, url: &str) -> Result<(), String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "integration[{i}].{key}: `{url}` is not an http(s) URL"
        ));
    }
    // The authority as written (the URL parser would read `https:///v2` as host `v2`).
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_port,
    };
    let has_host = !host.is_empty() && reqwest::Url::parse(url).is_ok();
    if !has_host {
        return Err(format!(
            "integration[{i}].{key}: `{url}` names no host (e.g. https://tripletex.no/v2)"
        ));
    }
    Ok(())
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7171))
}

fn default_store_lock_wait_s() -> u64 {
    crate::daemon::STORE_LOCK_WAIT_DEFAULT.as_secs()
}

fn default_store_cache_mb() -> u64 {
    crate::storage::CACHE_BYTES_DEFAULT / (1024 * 1024)
}

fn default_workers() -> usize {
    16
}

fn default_grace_ms() -> u64 {
    10_000
}

impl Config {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        refuse_inline_secrets("", &table)?;
        let config: Config = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.store.as_os_str().is_empty() {
            return Err("store must name the store directory (it is empty)".into());
        }
        if !self.admin_listen.ip().is_loopback() && !self.admin_listen_non_loopback {
            return Err(format!(
                "admin_listen: {} is not a loopback address; the admin API takes every operator \
                 action with one bearer token and no TLS. Keep it on 127.0.0.1, or set \
                 admin_listen_non_loopback = true if a firewall or tunnel protects it",
                self.admin_listen
            ));
        }
        if self.store_cache_mb == 0 || self.store_cache_mb > 1 << 20 {
            return Err("store_cache_mb must be between 1 and 1048576".into());
        }
        if self.workers == 0 || self.workers > 4096 {
            return Err("workers must be between 1 and 4096".into());
        }
        self.retry.validate()?;
        if self.retention_days.is_some_and(|d| d == 0 || d > 36_500) {
            return Err("retention_days must be between 1 and 36500".into());
        }
        if self.retention_days.is_some() && self.retention.is_some() {
            return Err("retention and retention_days are the same setting: keep one".into());
        }
        if let Some(age) = &self.retention {
            let age = crate::api::service::parse_age(age).map_err(|e| format!("retention: {e}"))?;
            if age.is_zero() || age > Duration::from_secs(36_500 * 86_400) {
                return Err("retention must be between 1s and 36500d".into());
            }
        }
        if let Some(every) = &self.retention_sweep_every {
            let every = crate::api::service::parse_age(every)
                .map_err(|e| format!("retention_sweep_every: {e}"))?;
            if every.is_zero() || every > Duration::from_secs(7 * 86_400) {
                return Err("retention_sweep_every must be between 1s and 7d".into());
            }
        }
        if let Some(w) = &self.webhook {
            if !(1..=3600).contains(&w.replay_window_s) {
                return Err("webhook.replay_window_s must be between 1 and 3600".into());
            }
            if !(1024..=64 * 1024 * 1024).contains(&w.body_len_max) {
                return Err("webhook.body_len_max must be between 1 KiB and 64 MiB".into());
            }
            if !(1..=3600).contains(&w.head_timeout_s) {
                return Err("webhook.head_timeout_s must be between 1 and 3600".into());
            }
            if !(1..=3600).contains(&w.body_timeout_s) {
                return Err("webhook.body_timeout_s must be between 1 and 3600".into());
            }
            if !(1..=65_536).contains(&w.connections_max) {
                return Err("webhook.connections_max must be between 1 and 65536".into());
            }
            if !(0..=366 * 86_400).contains(&w.occurred_at_future_max_s) {
                return Err(
                    "webhook.occurred_at_future_max_s must be between 0 and 31622400 (366 days)"
                        .into(),
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, integration) in self.integrations.iter().enumerate() {
            crate::domain::IntegrationId::parse(integration.id())
                .map_err(|e| format!("integration[{i}].id: {e}"))?;
            if integration
                .concurrency()
                .is_some_and(|n| n == 0 || n > self.workers)
            {
                return Err(format!(
                    "integration[{i}].concurrency must be between 1 and workers ({})",
                    self.workers
                ));
            }
            if !seen.insert(integration.id()) {
                return Err(format!(
                    "integration[{i}].id: `{}` appears twice",
                    integration.id()
                ));
            }
            match integration {
                IntegrationConfig::Tripletex { base_url, .. } => {
                    check_url(i, "base_url", base_url)?;
                }
                IntegrationConfig::Unimicro {
                    base_url,
                    token_url,
                    company_key,
                    client_secret,
                    client_assertion_key,
                    ..
                } => {
                    if client_secret.is_some() == client_assertion_key.is_some() {
                        return Err(format!(
                            "integration[{i}]: give exactly one of client_secret or client_assertion_key"
                        ));
                    }
                    check_url(i, "base_url", base_url)?;
                    check_url(i, "token_url", token_url)?;
                    let key = company_key.trim();
                    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(format!(
                            "integration[{i}].company_key: must be the company's key from \
                             Unimicro (printable, no spaces)"
                        ));
                    }
                }
                IntegrationConfig::VismaPayroll {
                    base_url,
                    token_url,
                    tenant_id,
                    currency,
                    api,
                    ..
                } => {
                    for (key, url) in [("base_url", base_url), ("token_url", token_url)] {
                        check_url(i, key, url)?;
                    }
                    if tenant_id.trim().is_empty() {
                        return Err(format!("integration[{i}].tenant_id must not be empty"));
                    }
                    if let Some(code) = currency {
                        crate::domain::Currency::parse(code)
                            .map_err(|e| format!("integration[{i}].currency: {e}"))?;
                    }
                    api.validate()
                        .map_err(|e| format!("integration[{i}].{e}"))?;
                }
            }
        }
        Ok(())
    }

    /// How old a terminal instance gets before the retention sweep removes it (`retention` or
    /// `retention_days`); `None`: kept forever. Call after `parse`, which checked the values.
    pub fn retention(&self) -> Option<Duration> {
        match (&self.retention, self.retention_days) {
            (Some(age), _) => crate::api::service::parse_age(age).ok(),
            (None, Some(days)) => Some(Duration::from_secs(days.saturating_mul(86_400))),
            (None, None) => None,
        }
    }

    /// How often the retention sweep runs.
    pub fn retention_sweep_every(&self) -> Duration {
        self.retention_sweep_every
            .as_deref()
            .and_then(|s| crate::api::service::parse_age(s).ok())
            .unwrap_or(Duration::from_secs(3600))
    }

    pub fn engine_settings(&self) -> EngineSettings {
        EngineSettings {
            workers: self.workers,
            per_integration: self
                .integrations
                .iter()
                .filter_map(|i| {
                    Some((
                        crate::domain::IntegrationId::parse(i.id()).ok()?,
                        i.concurrency()?,
                    ))
                })
                .collect(),
            retry: self.retry.clone(),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
store = "/tmp/s"
[[integration]]
id = "acme-tripletex"
system = "tripletex"
base_url = "https://tripletex.no/v2"
consumer_token = { env = "ACME_CONSUMER" }
employee_token = { file = "/etc/salary-sync/acme-employee" }
"#;

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.integrations.len(), 1);
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:7171");
        assert_eq!(c.retry, RetrySettings::default());
    }

    #[test]
    fn retention_is_days_or_an_age_and_the_sweep_interval_is_settable() {
        let with = |extra: &str| {
            Config::parse(&GOOD.replace(
                "store = \"/tmp/s\"",
                &format!("store = \"/tmp/s\"\n{extra}"),
            ))
        };
        let c = with("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.retention(), None);
        assert_eq!(c.retention_sweep_every(), Duration::from_secs(3600));
        let days = with("retention_days = 90").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(days.retention(), Some(Duration::from_secs(90 * 86_400)));
        let age = with("retention = \"12h\"\nretention_sweep_every = \"5m\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(age.retention(), Some(Duration::from_secs(12 * 3600)));
        assert_eq!(age.retention_sweep_every(), Duration::from_secs(300));
        for (bad, key) in [
            ("retention = \"soon\"", "retention"),
            ("retention = \"0s\"", "retention"),
            ("retention = \"1d\"\nretention_days = 1", "retention_days"),
            ("retention_sweep_every = \"0m\"", "retention_sweep_every"),
            ("retention_sweep_every = \"x\"", "retention_sweep_every"),
        ] {
            let e = with(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} was accepted"));
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_configs_name_the_key() {
        let unknown = format!("{GOOD}\nwokers = 3\n");
        assert!(Config::parse(&unknown).unwrap_err().contains("wokers"));
        let retention = GOOD.replace(
            "store = \"/tmp/s\"",
            "store = \"/tmp/s\"\nretention_days = 0",
        );
        assert!(Config::parse(&retention)
            .unwrap_err()
            .contains("retention_days"));
        let zero = GOOD.replace("store = \"/tmp/s\"", "store = \"/tmp/s\"\nworkers = 0");
        assert!(Config::parse(&zero).unwrap_err().contains("workers"));
        let url = GOOD.replace("https://tripletex.no/v2", "tripletex.no");
        assert!(Config::parse(&url).unwrap_err().contains("base_url"));
        let inline = GOOD.replace("{ env = \"ACME_CONSUMER\" }", "\"literal-token\"");
        assert!(Config::parse(&inline).is_err());
    }

    /// Issue 13 point 8: an inline credential was echoed in the parse error, which named
    /// `[[integration]]`, not the key.
    #[test]
    fn an_inline_credential_is_named_never_echoed() {
        for (from, key) in [
            (
                "{ env = \"ACME_CONSUMER\" }",
                "integration[0].consumer_token",
            ),
            (
                "{ file = \"/etc/salary-sync/acme-employee\" }",
                "integration[0].employee_token",
            ),
        ] {
            let inline = GOOD.replace(from, "\"tok-3f9a-literal\"");
            let e = Config::parse(&inline).err().unwrap_or_default();
            assert!(e.contains(key), "{e}");
            assert!(!e.contains("tok-3f9a-literal"), "{e}");
        }
        let webhook =
            format!("{GOOD}\n[webhook]\nlisten = \"127.0.0.1:0\"\nsecret = \"whsec-literal-77\"\n");
        let e = Config::parse(&webhook).err().unwrap_or_default();
        assert!(
            e.contains("webhook.secret") && !e.contains("whsec-literal-77"),
            "{e}"
        );
        // A syntax error on a credential's line: its position, no excerpt of the line.
        let broken = GOOD.replace("{ env = \"ACME_CONSUMER\" }", "tok-unquoted-55");
        let e = Config::parse(&broken).err().unwrap_or_default();
        assert!(e.starts_with("line 7"), "{e}");
        assert!(!e.contains("tok-unquoted-55"), "{e}");
    }

    #[test]
    fn an_empty_store_a_url_without_host_and_a_public_admin_listen_are_refused() {
        let e = Config::parse(&GOOD.replace("\"/tmp/s\"", "\"\""))
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("store"), "{e}");
        for url in ["http://", "https:///v2", "https://:8080/v2"] {
            let e = Config::parse(&GOOD.replace("https://tripletex.no/v2", url))
                .err()
                .unwrap_or_default();
            assert!(
                e.contains("base_url") && e.contains("no host"),
                "{url}: {e}"
            );
        }
        let public = GOOD.replace(
            "store = \"/tmp/s\"",
            "store = \"/tmp/s\"\nadmin_listen = \"0.0.0.0:7171\"",
        );
        let e = Config::parse(&public).err().unwrap_or_default();
        assert!(e.contains("admin_listen_non_loopback"), "{e}");
        let allowed = public.replace(
            "store = \"/tmp/s\"",
            "store = \"/tmp/s\"\nadmin_listen_non_loopback = true",
        );
        assert!(Config::parse(&allowed).is_ok());
    }

    const UNIMICRO: &str = r#"
store = "/tmp/s"
[[integration]]
id = "acme-unimicro"
system = "unimicro"
base_url = "https://test-api.unieconomy.no"
token_url = "https://test-login.unieconomy.no/connect/token"
company_key = "0b1c2d3e-aaaa-bbbb-cccc-123456789abc"
client_id = { env = "ACME_UNI_CLIENT_ID" }
client_secret = { file = "/etc/salary-sync/acme-uni-secret" }
"#;

    #[test]
    fn unimicro_takes_a_secret_or_a_client_assertion_key_not_both() {
        let secret = "client_secret = { file = \"/etc/salary-sync/acme-uni-secret\" }";
        let key = "client_assertion_key = { file = \"/etc/salary-sync/acme-uni-key.pem\" }";
        assert!(Config::parse(&UNIMICRO.replace(secret, key)).is_ok());
        let both = UNIMICRO.replace(secret, &format!("{secret}\n{key}"));
        assert!(Config::parse(&both)
            .unwrap_err()
            .contains("exactly one of client_secret or client_assertion_key"));
        let neither = UNIMICRO.replace(secret, "");
        assert!(Config::parse(&neither).is_err());
    }

    #[test]
    fn a_unimicro_integration_parses_and_is_checked() {
        let c = Config::parse(UNIMICRO).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.integrations[0].id(), "acme-unimicro");
        let url = UNIMICRO.replace("https://test-login", "test-login");
        assert!(Config::parse(&url).unwrap_err().contains("token_url"));
        let key = UNIMICRO.replace("0b1c2d3e-aaaa-bbbb-cccc-123456789abc", "");
        assert!(Config::parse(&key).unwrap_err().contains("company_key"));
        let missing = UNIMICRO.replace(
            "client_secret = { file = \"/etc/salary-sync/acme-uni-secret\" }\n",
            "",
        );
        assert!(Config::parse(&missing)
            .unwrap_err()
            .contains("client_secret"));
    }

    const VISMA: &str = r#"
store = "/tmp/s"
[[integration]]
id = "acme-visma"
system = "visma-payroll"
base_url = "https://api.employeecore.hrm.visma.net/v2"
token_url = "https://connect.visma.com/connect/token"
tenant_id = "1234"
client_id = { env = "ACME_VISMA_CLIENT_ID" }
client_secret = { file = "/etc/salary-sync/acme-visma-secret" }
[integration.api]
page_size = 100
"#;

    #[test]
    fn a_visma_integration_parses_and_is_checked() {
        let c = Config::parse(VISMA).unwrap_or_else(|e| panic!("{e}"));
        match &c.integrations[0] {
            IntegrationConfig::VismaPayroll { api, currency, .. } => {
                assert_eq!(api.page_size, 100);
                assert_eq!(api.next_page_field, "cursor.nextToken");
                assert_eq!(currency, &None);
            }
            other => panic!("{other:?}"),
        }
        let bad_url = VISMA.replace("https://connect.visma.com/connect/token", "connect");
        assert!(Config::parse(&bad_url).unwrap_err().contains("token_url"));
        let bad_currency = VISMA.replace(
            "tenant_id = \"1234\"",
            "tenant_id = \"1234\"\ncurrency = \"kr\"",
        );
        assert!(Config::parse(&bad_currency)
            .unwrap_err()
            .contains("currency"));
        let bad_api = VISMA.replace("page_size = 100", "page_size = 0");
        assert!(Config::parse(&bad_api).unwrap_err().contains("page_size"));
        let unknown = VISMA.replace("page_size = 100", "pagesize = 100");
        assert!(Config::parse(&unknown).is_err());
    }

    #[test]
    fn a_secret_source_never_shows_the_value() {
        let src = SecretSource {
            env: Some("SALARY_SYNC_TEST_SECRET_X".into()),
            file: None,
        };
        assert!(src
            .load("k")
            .unwrap_err()
            .contains("SALARY_SYNC_TEST_SECRET_X"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("t");
        std::fs::write(&path, "s3cr3t\n").unwrap_or_else(|e| panic!("{e}"));
        let src = SecretSource {
            env: None,
            file: Some(path),
        };
        let secret = src.load("k").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secret.expose(), "s3cr3t");
        assert!(!format!("{secret:?} {src:?}").contains("s3cr3t"));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/salary-sync.toml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.integrations.len(), 3);
    }
}
