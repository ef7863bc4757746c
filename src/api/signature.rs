//! Webhook signatures: HMAC-SHA256 over `timestamp + "." + body` under the shared secret,
//! sent as `X-Salary-Sync-Timestamp: <unix seconds>` and
//! `X-Salary-Sync-Signature: sha256=<hex>`. The timestamp must be within the replay window of
//! our clock; the comparison is constant-time. Pure: time comes in as an argument.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "x-salary-sync-timestamp";
pub const SIGNATURE_HEADER: &str = "x-salary-sync-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{TIMESTAMP_HEADER} must be unix seconds")]
    BadTimestamp,
    #[error("{SIGNATURE_HEADER} must be `sha256=` followed by 64 hex digits")]
    BadFormat,
    /// `skew_s` is our clock minus the sender's timestamp: negative when the timestamp lies in
    /// the future.
    #[error("timestamp is {} s in the {} by our clock; the replay window is {window_s} s (check the sender's clock)", skew_s.unsigned_abs(), if *skew_s < 0 { "future" } else { "past" })]
    Stale { skew_s: i64, window_s: i64 },
    #[error("signature does not match the body under the shared secret")]
    Mismatch,
}

/// The signature header value for `body` sent at `timestamp` (what a sender computes).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("sha256={}", hex(&mac(secret, timestamp, body)))
}

/// Checks a request's headers against its body.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    window_s: i64,
) -> Result<(), Error> {
    let timestamp = timestamp.ok_or(Error::Missing(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(Error::Missing(SIGNATURE_HEADER))?;
    // Plain decimal digits only: `str::parse` also takes `+1800000000`, a second spelling of
    // the same signed request (found by the signature fuzz property).
    let timestamp = timestamp.trim();
    let digits = timestamp.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = timestamp.len() > 1 && timestamp.starts_with('0');
    if timestamp.is_empty() || timestamp.len() > 18 || !digits || leading_zero {
        return Err(Error::BadTimestamp);
    }
    let timestamp: i64 = timestamp.parse().map_err(|_| Error::BadTimestamp)?;
    let given = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(unhex)
        .filter(|b| b.len() == 32)
        .ok_or(Error::BadFormat)?;
    let skew_s = now.timestamp().saturating_sub(timestamp);
    if skew_s.unsigned_abs() > window_s.unsigned_abs() {
        return Err(Error::Stale { skew_s, window_s });
    }
    let expected = mac(secret, timestamp, body);
    if super::admin::constant_time_eq(&expected, &given) {
        Ok(())
    } else {
        Err(Error::Mismatch)
    }
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return Vec::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    // `from_str_radix` alone also reads `+f` as 0x0f: hex digits only.
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"webhook-secret";

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_breaks_it() {
        let t = now().timestamp();
        let sig = sign(SECRET, t, b"{}");
        let ts = t.to_string();
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&sig), b"{}", now(), 300),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&sig), b"{ }", now(), 300),
            Err(Error::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&ts), Some(&sig), b"{}", now(), 300),
            Err(Error::Mismatch)
        );
        let later = (t + 1).to_string();
        assert_eq!(
            verify(SECRET, Some(&later), Some(&sig), b"{}", now(), 300),
            Err(Error::Mismatch)
        );
    }

    #[test]
    fn missing_malformed_and_stale_headers_are_named() {
        let t = now().timestamp();
        let sig = sign(SECRET, t, b"x");
        let ts = t.to_string();
        assert_eq!(
            verify(SECRET, None, Some(&sig), b"x", now(), 300),
            Err(Error::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(SECRET, Some(&ts), None, b"x", now(), 300),
            Err(Error::Missing(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(SECRET, Some("soon"), Some(&sig), b"x", now(), 300),
            Err(Error::BadTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some("md5=abc"), b"x", now(), 300),
            Err(Error::BadFormat)
        );
        let old = (t - 301).to_string();
        let old_sig = sign(SECRET, t - 301, b"x");
        let stale = verify(SECRET, Some(&old), Some(&old_sig), b"x", now(), 300);
        assert!(matches!(stale, Err(Error::Stale { .. })));
        let message = stale.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("timestamp is 301 s in the past"),
            "{message}"
        );
        // Issue 11 point 8: a future timestamp said "-3600 s away from our clock".
        let future = (t + 3600).to_string();
        let future_sig = sign(SECRET, t + 3600, b"x");
        let message = verify(SECRET, Some(&future), Some(&future_sig), b"x", now(), 300)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("timestamp is 3600 s in the future by our clock"),
            "{message}"
        );
    }

    /// Regression (signature fuzz property): `+1800000000`, `01800000000` and a `+` in the
    /// hex digits were second spellings of a genuine signature.
    #[test]
    fn only_the_canonical_spelling_passes() {
        let t = now().timestamp();
        let sig = sign(SECRET, t, b"x");
        let plus_ts = format!("+{t}");
        let zero_ts = format!("0{t}");
        for ts in [&plus_ts, &zero_ts] {
            assert_eq!(
                verify(SECRET, Some(ts), Some(&sig), b"x", now(), 300),
                Err(Error::BadTimestamp)
            );
        }
        let hex = sig.trim_start_matches("sha256=");
        let Some(zero) = (0..hex.len()).step_by(2).find(|&i| &hex[i..=i] == "0") else {
            return; // no pair starting with 0 in this signature
        };
        let plus_sig = format!("sha256={}+{}", &hex[..zero], &hex[zero + 1..]);
        let ts = t.to_string();
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&plus_sig), b"x", now(), 300),
            Err(Error::BadFormat)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic_and_never_pass(ts in ".{0,24}", sig in ".{0,80}", body in prop::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(verify(SECRET, Some(&ts), Some(&sig), &body, now(), 300).is_err());
        }
    }
}
