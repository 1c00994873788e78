//! How topic configs name plugins: `NAME` (follow the newest version) or
//! `NAME@VERSION` (pinned), in the `partitioner` and `compaction.policy` keys.

use crate::record::PluginKind;

/// The topic config keys that name a plugin, with the kind each needs.
pub const PLUGIN_CONFIG_KEYS: [(&str, PluginKind); 2] = [
    ("partitioner", PluginKind::Partitioner),
    ("compaction.policy", PluginKind::Compactor),
];

/// The longest plugin name allowed.
pub const MAX_PLUGIN_NAME: usize = 128;

/// A parsed `NAME[@VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    pub name: String,
    /// `None` follows the newest version.
    pub version: Option<u32>,
}

impl PluginRef {
    /// Splits `NAME[@VERSION]`, saying what is wrong when it does not parse.
    pub fn parse(value: &str) -> Result<PluginRef, String> {
        let (name, version) = match value.split_once('@') {
            Some((name, v)) => {
                let v = v
                    .parse::<u32>()
                    .map_err(|_| format!("version `{v}` is not a whole number"))?;
                (name, Some(v))
            }
            None => (value, None),
        };
        check_plugin_name(name)?;
        Ok(PluginRef {
            name: name.to_string(),
            version,
        })
    }
}

/// Plugin names follow the topic name rules, shorter, and never start with `.` (which
/// would hide them among a plugin store's own files).
pub fn check_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_PLUGIN_NAME {
        return Err(format!("a name has 1 to {MAX_PLUGIN_NAME} characters"));
    }
    if name.starts_with('.') {
        return Err("a name cannot start with '.'".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "'{bad}' is not allowed: use A-Z, a-z, 0-9, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_version() {
        assert_eq!(
            PluginRef::parse("hash").expect("plain"),
            PluginRef {
                name: "hash".into(),
                version: None
            }
        );
        assert_eq!(
            PluginRef::parse("hash@3").expect("pinned"),
            PluginRef {
                name: "hash".into(),
                version: Some(3)
            }
        );
        for bad in ["", "@1", "hash@x", ".hidden", "a b", "a@-1"] {
            assert!(PluginRef::parse(bad).is_err(), "{bad}");
        }
    }
}
