//! Identifiers that records carry: brokers and topics.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A broker's id, unique in the cluster and stable across restarts.
pub type BrokerId = u32;

/// A topic's id: 128 bits chosen by whoever proposes the `CreateTopic` record.
///
/// A name can be deleted and created again; the id tells the two topics apart, so a
/// record meant for the old topic (a delete proposed against a stale image) cannot hit
/// the new one. It is written as 32 lowercase hex digits, because JSON numbers do not
/// hold 128 bits everywhere and the hex form is what an operator can read and copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(pub u128);

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for TopicId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("topic id `{s}` is not 32 hex digits"));
        }
        u128::from_str_radix(s, 16)
            .map(TopicId)
            .map_err(|e| format!("topic id `{s}`: {e}"))
    }
}

impl Serialize for TopicId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_round_trips_as_hex() {
        let id = TopicId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let json = serde_json::to_string(&id).expect("encode");
        assert_eq!(json, "\"0123456789abcdef0011223344556677\"");
        assert_eq!(serde_json::from_str::<TopicId>(&json).expect("decode"), id);
        assert!("xyz".parse::<TopicId>().is_err());
        assert!(
            "+0123456789abcdef001122334455667"
                .parse::<TopicId>()
                .is_err()
        );
    }
}
