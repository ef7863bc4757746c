//! Shared HTTP plumbing for every connector: the one `reqwest::Client` (TCP_NODELAY, timeouts,
//! a bounded idle pool), the "not before" instant a rate-limited or overloaded server asks
//! for (`Retry-After`, `X-Rate-Limit-Reset`), and the mapping of transport failures to
//! `Error::Network`.
//!
//! Invariant: nothing produced here holds a URL's query string. reqwest puts the full URL in
//! its errors, and a Tripletex session URL carries the consumer and employee tokens in its
//! query, so every reqwest error is stripped of its URL before it is described.

use super::Error;
use chrono::{DateTime, Duration, Utc};
use reqwest::header::{HeaderMap, HeaderName, RETRY_AFTER};
use std::error::Error as _;
use std::time::Duration as StdDuration;

/// A server asking us to wait longer than this is treated as asking for this long: a garbage
/// header must not park a workflow for years.
const WAIT_MAX_S: i64 = 24 * 3600;

/// Settings of the shared HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    pub connect_timeout_ms: u64,
    /// The whole request, body included.
    pub request_timeout_ms: u64,
    pub pool_idle_timeout_ms: u64,
    pub pool_idle_per_host_max: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            pool_idle_timeout_ms: 60_000,
            pool_idle_per_host_max: 16,
        }
    }
}

impl ClientSettings {
    /// The defaults, with an idle pool that can keep one connection per worker: with fewer,
    /// every worker beyond the pool's size opens a new TCP connection for each call.
    pub fn for_workers(workers: usize) -> Self {
        let defaults = Self::default();
        Self {
            pool_idle_per_host_max: workers.max(defaults.pool_idle_per_host_max),
            ..defaults
        }
    }
}

/// Builds the one HTTP client the daemon shares between its connectors (connections are
/// pooled per host). Fails only if the TLS backend cannot start.
pub fn client(settings: &ClientSettings) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(StdDuration::from_millis(settings.connect_timeout_ms))
        .timeout(StdDuration::from_millis(settings.request_timeout_ms))
        .pool_idle_timeout(StdDuration::from_millis(settings.pool_idle_timeout_ms))
        .pool_max_idle_per_host(settings.pool_idle_per_host_max)
        .user_agent(concat!("salary-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Network(format!("could not build the HTTP client: {}", describe(e))))
}

/// The request path of `url` without its query string or fragment, for messages.
pub fn path_only(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// A transport failure (connect, timeout, reset, a body cut short) as `Error::Network`, with
/// the method and path (never the query) of the request it hit.
pub fn network_error(e: reqwest::Error, method: &str, path: &str) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut short"
    } else {
        "the request failed"
    };
    Error::Network(format!(
        "{method} {}: {what} ({}). salary-sync retries on its own; if this persists, check \
         the network path to the payroll system",
        path_only(path),
        describe(e)
    ))
}

/// The error and its sources, without the URL reqwest attaches.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The instant before which the server asked us not to retry: the later of `Retry-After`
/// (delta seconds or an HTTP date) and `X-Rate-Limit-Reset` (seconds until the rate-limit
/// window resets), capped at a day. `None` when neither header is usable.
pub fn retry_not_before(headers: &HeaderMap, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let retry_after = header_str(headers, &RETRY_AFTER).and_then(|v| parse_retry_after(v, now));
    let reset = header_str(headers, &HeaderName::from_static("x-rate-limit-reset"))
        .and_then(|v| parse_delta_seconds(v, now));
    retry_after.max(reset)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Retry-After`: either delta seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    parse_delta_seconds(value, now).or_else(|| {
        DateTime::parse_from_rfc2822(value.trim())
            .ok()
            .map(|at| at.with_timezone(&Utc))
            .map(|at| at.clamp(now, now + Duration::seconds(WAIT_MAX_S)))
    })
}

/// A count of seconds from `now` (fractions are rounded up; negatives mean now).
pub fn parse_delta_seconds(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let value = value.trim();
    let seconds = match value.parse::<i64>() {
        Ok(s) => s,
        Err(_) => {
            let (whole, frac) = value.split_once('.')?;
            let whole: i64 = if whole.is_empty() {
                0
            } else {
                whole.parse().ok()?
            };
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let round_up = i64::from(frac.bytes().any(|b| b != b'0') && whole >= 0);
            whole + round_up
        }
    };
    Some(now + Duration::seconds(seconds.clamp(0, WAIT_MAX_S)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let n = now();
        assert_eq!(
            parse_retry_after("120", n),
            Some(n + Duration::seconds(120))
        );
        assert_eq!(
            parse_retry_after(" 1.2 ", n),
            Some(n + Duration::seconds(2))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 10:00:30 GMT", n),
            Some(n + Duration::seconds(30))
        );
        // A date in the past means "now", a huge delay is capped, garbage is ignored.
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 10:00:30 GMT", n),
            Some(n)
        );
        assert_eq!(parse_retry_after("-5", n), Some(n));
        assert_eq!(
            parse_retry_after("99999999999", n),
            Some(n + Duration::seconds(WAIT_MAX_S))
        );
        assert_eq!(parse_retry_after("soon", n), None);
        assert_eq!(parse_retry_after("1.x", n), None);
    }

    #[test]
    fn the_later_of_reset_and_retry_after_wins() {
        let n = now();
        assert_eq!(retry_not_before(&headers(&[]), n), None);
        assert_eq!(
            retry_not_before(&headers(&[("x-rate-limit-reset", "7")]), n),
            Some(n + Duration::seconds(7))
        );
        assert_eq!(
            retry_not_before(
                &headers(&[("x-rate-limit-reset", "7"), ("retry-after", "30")]),
                n
            ),
            Some(n + Duration::seconds(30))
        );
        assert_eq!(
            retry_not_before(&headers(&[("x-rate-limit-reset", "bad")]), n),
            None
        );
    }

    #[test]
    fn paths_lose_their_query() {
        assert_eq!(
            path_only("/token/session/:create?consumerToken=abc&employeeToken=def"),
            "/token/session/:create"
        );
        assert_eq!(path_only("/employee/7#x"), "/employee/7");
        assert_eq!(path_only("/employee"), "/employee");
    }

    #[tokio::test]
    async fn network_errors_never_show_the_query() {
        // Port 9 on loopback: nothing listens there, the connect is refused.
        let client = client(&ClientSettings {
            connect_timeout_ms: 500,
            request_timeout_ms: 1000,
            ..ClientSettings::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let url =
            "http://127.0.0.1:9/token/session/:create?consumerToken=SECRET1&employeeToken=SECRET2";
        let err = match client.put(url).send().await {
            Ok(_) => panic!("something listens on port 9"),
            Err(e) => network_error(e, "PUT", url),
        };
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("/token/session/:create"), "{text}");
    }
}
