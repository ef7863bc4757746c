//! The simulator's check of a certificate-signed client assertion (RFC 7523 §2.2 and §3, as
//! Unimicro's server-to-server guide asks of a server client): an RS256 JWT whose signature
//! verifies under the client's registered public key, `iss` = `sub` = the client id, `aud` =
//! the token endpoint, and `exp` not passed. Written from the RFC, not from the connector.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

/// `client_assertion_type` for a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Checks `jwt`; the error is a short reason (the simulator answers `invalid_client` either way).
pub fn verify(
    public_key_der: &[u8],
    jwt: &str,
    client_id: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("not a JWT");
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("header is not JSON")?;
    if header["alg"] != "RS256" {
        return Err("alg is not RS256");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "signature is not base64url")?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_der)
        .verify(format!("{}.{claims}", parts[0]).as_bytes(), &signature)
        .map_err(|_| "bad signature")?;
    let claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(claims)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("claims are not JSON")?;
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return Err("iss/sub is not the client id");
    }
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == audience,
        serde_json::Value::Array(list) => list.iter().any(|a| a == audience),
        _ => false,
    };
    if !aud_ok {
        return Err("aud is not the token endpoint");
    }
    if claims["exp"]
        .as_i64()
        .is_none_or(|exp| exp < now.timestamp())
    {
        return Err("expired");
    }
    Ok(())
}
