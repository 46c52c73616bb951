//! Timestamps as the API shows them: RFC 3339, UTC, whole seconds (`2023-11-07T05:31:56Z`).

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Truncates to whole seconds so that what is stored is exactly what is shown.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Timestamp(DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at))
    }

    pub fn from_unix(seconds: i64) -> Option<Self> {
        DateTime::from_timestamp(seconds, 0).map(Timestamp)
    }

    pub fn parse(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Self::from_datetime(t.with_timezone(&Utc)))
    }

    pub fn unix(self) -> i64 {
        self.0.timestamp()
    }

    pub fn plus_days(self, days: i64) -> Self {
        Timestamp(self.0 + TimeDelta::days(days))
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0 + TimeDelta::seconds(seconds))
    }

    pub fn seconds_until(self, later: Timestamp) -> i64 {
        later.unix() - self.unix()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_utc_whole_seconds() {
        let t = Timestamp::parse("2023-11-07T07:31:56.789+02:00").unwrap();
        assert_eq!(t.to_string(), "2023-11-07T05:31:56Z");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2023-11-07T05:31:56Z\"");
    }

    #[test]
    fn arithmetic_in_days_and_seconds() {
        let t = Timestamp::parse("2023-11-07T05:31:56Z").unwrap();
        assert_eq!(t.plus_days(7).to_string(), "2023-11-14T05:31:56Z");
        assert_eq!(t.seconds_until(t.plus_days(7)), 7 * 86_400);
        assert_eq!(Timestamp::from_unix(t.unix()), Some(t));
        assert!(Timestamp::parse("yesterday").is_none());
    }
}
