//! Money: an exact decimal amount with its ISO 4217 currency beside it. Never a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency code: three ASCII upper-case letters. Serialized as its code
/// (`"NOK"`) everywhere: JSON and the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl Currency {
    /// Parses a three-letter upper-case code such as `NOK`.
    pub fn parse(code: &str) -> Result<Self, String> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(format!(
                "`{code}` is not an ISO 4217 currency code (three upper-case letters, e.g. NOK)"
            ));
        }
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }

    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII upper-case letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_is_its_code_in_json_and_in_the_store() {
        let nok = Currency::parse("NOK").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&nok).ok().as_deref(), Some("\"NOK\""));
        let stored = bincode::serialize(&nok).unwrap_or_default();
        assert_eq!(bincode::deserialize::<Currency>(&stored).ok(), Some(nok));
        assert!(serde_json::from_str::<Currency>("\"nok\"").is_err());
    }

    #[test]
    fn currency_accepts_only_three_upper_case_letters() {
        assert_eq!(
            Currency::parse("NOK").map(|c| c.to_string()),
            Ok("NOK".into())
        );
        for bad in ["nok", "NO", "NOKK", "N0K", "", "ØRE"] {
            assert!(Currency::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
