//! Topic name rules: 1 to 249 characters of `[A-Za-z0-9._-]`, and not `.` or `..`.

/// The longest topic name allowed.
pub const MAX_TOPIC_NAME: usize = 249;

/// Checks a topic name, returning a message that says what is wrong with it.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name.len() > MAX_TOPIC_NAME {
        return Err(format!(
            "topic name is {} characters, the limit is {MAX_TOPIC_NAME}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{bad}': only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn names() {
        assert!(validate("orders.v1_eu-west").is_ok());
        assert!(validate("").is_err());
        assert!(validate("..").is_err());
        assert!(validate("a/b").is_err());
        assert!(validate("ü").is_err());
        assert!(validate(&"a".repeat(249)).is_ok());
        assert!(validate(&"a".repeat(250)).is_err());
    }
}
