//! The certificate-signed client assertion Unimicro documents for server-to-server clients: a
//! JWT (RS256) signed with the integration's private key, sent instead of a client secret
//! (RFC 7523, `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`).
//!
//! The private key never leaves this type: Debug prints `[redacted]`, and only the signature
//! goes on the wire. `verify` is the other side, for this module's own tests (the simulator has
//! its own verifier).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::signature::{
    RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use serde_json::json;
use std::fmt;

/// The form value of `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion is valid.
const LIFE_S: i64 = 300;

/// An RSA private key (PKCS#8) that signs client assertions.
pub struct AssertionKey {
    pair: RsaKeyPair,
    /// The certificate's SHA-1 thumbprint (base64url), sent as the JWT header's `x5t`.
    thumbprint: Option<String>,
}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionKey([redacted])")
    }
}

impl AssertionKey {
    /// Reads a `-----BEGIN PRIVATE KEY-----` (PKCS#8) PEM. The error never quotes the key.
    pub fn from_pem(pem: &str, thumbprint: Option<String>) -> Result<Self, String> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        if body.is_empty() {
            return Err("not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)".into());
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "the PEM body is not base64".to_owned())?;
        let pair = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("not a usable RSA private key: {e}"))?;
        Ok(Self { pair, thumbprint })
    }

    /// The public key (PKCS#1 `RSAPublicKey` DER), for whoever verifies.
    pub fn public_key_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        self.pair.public_key().as_ref().to_vec()
    }

    /// A signed assertion for `client_id` at the token endpoint `audience`.
    pub fn sign(
        &self,
        client_id: &str,
        audience: &str,
        now: DateTime<Utc>,
        jti: &str,
    ) -> Result<String, String> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(x5t) = &self.thumbprint {
            header["x5t"] = json!(x5t);
        }
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": audience, "jti": jti,
            "iat": now.timestamp(), "nbf": now.timestamp(), "exp": now.timestamp() + LIFE_S,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_owned())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// Checks an assertion: RS256 signature under `public_key_der`, `iss` = `sub` = `client_id`,
/// `aud` = `audience`, not expired. Returns a short reason on failure.
pub fn verify(
    public_key_der: &[u8],
    jwt: &str,
    client_id: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<(), &'static str> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT");
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "signature is not base64url")?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_der)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| "bad signature")?;
    let claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(claims)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("claims are not JSON")?;
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return Err("iss/sub is not the client id");
    }
    if claims["aud"] != audience {
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../../tests/fixtures/unimicro-assertion-test-key.pem");

    #[test]
    fn a_signed_assertion_verifies_and_tampering_breaks_it() {
        let key =
            AssertionKey::from_pem(KEY, Some("thumb".into())).unwrap_or_else(|e| panic!("{e}"));
        let now = Utc::now();
        let jwt = key
            .sign("client-1", "https://login/token", now, "jti-1")
            .unwrap_or_else(|e| panic!("{e}"));
        let public = key.public_key_der();
        assert_eq!(
            verify(&public, &jwt, "client-1", "https://login/token", now),
            Ok(())
        );
        assert_eq!(
            verify(&public, &jwt, "client-2", "https://login/token", now),
            Err("iss/sub is not the client id")
        );
        assert_eq!(
            verify(&public, &jwt, "client-1", "https://other", now),
            Err("aud is not the token endpoint")
        );
        let later = now + chrono::Duration::seconds(LIFE_S + 1);
        assert_eq!(
            verify(&public, &jwt, "client-1", "https://login/token", later),
            Err("expired")
        );
        let mut tampered = jwt.clone();
        tampered.insert(jwt.find('.').unwrap_or(0) + 2, 'x');
        assert!(verify(&public, &tampered, "client-1", "https://login/token", now).is_err());
        assert!(!format!("{key:?}").contains("BEGIN"));
        assert!(AssertionKey::from_pem("not a key", None).is_err());
    }
}
