//! The `--format` template of `quiver consume`.
//!
//! Placeholders: `{topic}`, `{partition}`, `{offset}`, `{timestamp}`, `{key}`, `{value}`,
//! `{headers}` (as `k=v,k=v`), and `\t`, `\n` escapes. Bytes that are not UTF-8 print
//! lossily; a missing key or value prints as `null`.

use quiver_sdk::ConsumerRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template(Vec<Piece>);

impl std::str::FromStr for Template {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = s.as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in format '{s}'"))?;
            let name = &rest[open + 1..open + close];
            pieces.push(match name {
                "topic" => Piece::Topic,
                "partition" => Piece::Partition,
                "offset" => Piece::Offset,
                "timestamp" => Piece::Timestamp,
                "key" => Piece::Key,
                "value" => Piece::Value,
                "headers" => Piece::Headers,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}}: use topic, partition, offset, timestamp, key, value or headers"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }
}

impl Template {
    pub fn render(&self, r: &ConsumerRecord) -> String {
        let text = |b: &Option<bytes::Bytes>| match b {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => "null".to_string(),
        };
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Topic => out.push_str(&r.topic),
                Piece::Partition => out.push_str(&r.partition.to_string()),
                Piece::Offset => out.push_str(&r.offset.to_string()),
                Piece::Timestamp => out.push_str(&r.timestamp.to_string()),
                Piece::Key => out.push_str(&text(&r.key)),
                Piece::Value => out.push_str(&text(&r.value)),
                Piece::Headers => {
                    let hs: Vec<String> = r
                        .headers
                        .iter()
                        .map(|h| format!("{}={}", h.key, text(&h.value)))
                        .collect();
                    out.push_str(&hs.join(","));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders() {
        let t: Template = "{partition}@{offset}\\t{key}={value}"
            .parse()
            .expect("valid");
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: vec![],
        };
        assert_eq!(t.render(&r), "2@7\tnull=v");
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let err = "{vaule}".parse::<Template>().expect_err("typo");
        assert!(err.contains("vaule"));
    }
}
