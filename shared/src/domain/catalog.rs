//! The one catalog of connector types: their names, display names and the credential keys
//! each accepts. Everything that needs to know "which types exist" or "which keys does a
//! type take" reads this table; there is no per-type branching anywhere else.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One connector type's entry: data, not code.
#[derive(Debug)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub display_name: &'static str,
    /// Keys that `PUT …/credentials` must carry.
    pub required: &'static [&'static str],
    /// Keys it may carry besides the required ones.
    pub optional: &'static [&'static str],
}

impl CatalogEntry {
    pub fn accepts(&self, key: &str) -> bool {
        self.required.contains(&key) || self.optional.contains(&key)
    }
}

const fn entry(
    name: &'static str,
    display_name: &'static str,
    required: &'static [&'static str],
    optional: &'static [&'static str],
) -> CatalogEntry {
    CatalogEntry {
        name,
        display_name,
        required,
        optional,
    }
}

/// Order is the order of openapi.yaml and of error hints.
pub static CATALOG: [CatalogEntry; 16] = [
    entry("stripe", "Stripe", &["secret_key"], &["publishable_key"]),
    entry(
        "avatax",
        "Avalara AvaTax",
        &["account_id", "license_key"],
        &["company_code"],
    ),
    entry("shippo", "Shippo", &["api_token"], &[]),
    entry("printnode", "PrintNode", &["api_key"], &[]),
    entry("postmark", "Postmark", &["server_token"], &["account_token"]),
    entry("shopify", "Shopify", &["access_token"], &["api_key", "api_secret"]),
    entry("mapquest", "MapQuest", &["api_key"], &[]),
    entry(
        "google",
        "Google",
        &["api_key"],
        &["client_id", "client_secret", "refresh_token"],
    ),
    entry("openai", "OpenAI", &["api_key"], &["organization_id", "project_id"]),
    entry("plaid", "Plaid", &["client_id", "secret"], &["access_token"]),
    entry("ups", "UPS", &["client_id", "client_secret"], &["account_number"]),
    entry("fedex", "FedEx", &["client_id", "client_secret"], &["account_number"]),
    entry("usps", "USPS", &["client_id", "client_secret"], &["crid", "mid"]),
    entry(
        "amazon",
        "Amazon Seller Central",
        &["client_id", "client_secret", "refresh_token"],
        &[],
    ),
    entry("ebay", "eBay", &["client_id", "client_secret", "refresh_token"], &[]),
    entry(
        "wwex",
        "Worldwide Express",
        &["client_id", "client_secret"],
        &["account_number"],
    ),
];

/// A validated connector type: an index into [`CATALOG`], so it cannot name a type the
/// catalog does not hold.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectorType(u8);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("unknown connector type")]
pub struct UnknownConnectorType;

impl ConnectorType {
    pub fn parse(name: &str) -> Result<Self, UnknownConnectorType> {
        CATALOG
            .iter()
            .position(|e| e.name == name)
            .map(|i| ConnectorType(i as u8))
            .ok_or(UnknownConnectorType)
    }

    pub fn entry(self) -> &'static CatalogEntry {
        &CATALOG[self.0 as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.entry().name
    }

    pub fn all() -> impl Iterator<Item = ConnectorType> {
        (0..CATALOG.len()).map(|i| ConnectorType(i as u8))
    }

    /// "stripe, avatax, …" for error hints.
    pub fn valid_names() -> String {
        CATALOG.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Debug for ConnectorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ConnectorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ConnectorType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConnectorType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ConnectorType::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_holds_the_sixteen_design_types_once_each() {
        let design = "stripe, avatax, shippo, printnode, postmark, shopify, mapquest, google, \
                      openai, plaid, ups, fedex, usps, amazon, ebay, wwex";
        assert_eq!(ConnectorType::valid_names(), design);
        for t in ConnectorType::all() {
            assert_eq!(ConnectorType::parse(t.as_str()), Ok(t));
            assert!(!t.entry().required.is_empty(), "{t} must require a key");
            for k in t.entry().required {
                assert!(!t.entry().optional.contains(k), "{t}: {k} both required and optional");
            }
        }
    }

    #[test]
    fn parse_is_exact() {
        assert!(ConnectorType::parse("Stripe").is_err());
        assert!(ConnectorType::parse("stripe ").is_err());
        assert!(ConnectorType::parse("").is_err());
        assert_eq!(ConnectorType::parse("wwex").unwrap().as_str(), "wwex");
    }

    #[test]
    fn stripe_requires_secret_key_and_allows_publishable_key() {
        let stripe = ConnectorType::parse("stripe").unwrap().entry();
        assert_eq!(stripe.required, &["secret_key"]);
        assert!(stripe.accepts("publishable_key"));
        assert!(!stripe.accepts("api_key"));
    }

    #[test]
    fn serde_round_trip_uses_the_name() {
        let t = ConnectorType::parse("shippo").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"shippo\"");
        assert_eq!(serde_json::from_str::<ConnectorType>(&json).unwrap(), t);
        assert!(serde_json::from_str::<ConnectorType>("\"nope\"").is_err());
    }
}
