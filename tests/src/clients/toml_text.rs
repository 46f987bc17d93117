//! Writing the clients' TOML configuration files.

/// A TOML basic string holding `value` (JSON's string escaping is valid
/// TOML basic-string escaping).
pub fn toml_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(toml_string("/a/b"), r#""/a/b""#);
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
