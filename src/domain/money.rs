//! Money: an exact decimal amount with its ISO 4217 currency beside it. Never a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The ISO 4217 codes of currencies in circulation (sorted): a salary is paid in one of these.
/// Three letters that name no currency (`XYZ`) are a sender's mistake, refused at the edge
/// rather than failing later as a currency mismatch.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU",
    "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR",
    "ZMW", "ZWG", "ZWL",
];

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
        // Only the shape: a stored record keeps a code accepted when it was written, even if
        // the ISO list has since dropped it (a currency withdrawn must not make records
        // unreadable).
        Currency::from_shape(&code).map_err(serde::de::Error::custom)
    }
}

impl Currency {
    /// Parses a currency code in circulation such as `NOK` (ISO 4217).
    pub fn parse(code: &str) -> Result<Self, String> {
        let currency = Self::from_shape(code)?;
        if ISO_4217.binary_search(&code).is_err() {
            return Err(format!(
                "`{code}` is not a currency code in ISO 4217 (e.g. NOK, SEK, EUR)"
            ));
        }
        Ok(currency)
    }

    /// Three ASCII upper-case letters.
    fn from_shape(code: &str) -> Result<Self, String> {
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
        for bad in ["nok", "NO", "NOKK", "N0K", "", "ØRE", "XYZ", "HRK"] {
            assert!(Currency::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
