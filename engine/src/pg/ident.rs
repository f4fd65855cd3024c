//! SQL identifier and literal quoting. Every identifier Rewind puts into SQL goes through
//! [`quote_ident`]; values are bound as parameters wherever the protocol allows.

/// Quote an identifier the way PostgreSQL's `quote_ident` does, always (never bare).
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Quote a string literal (standard_conforming_strings on): for the rare statements that
/// cannot take parameters (e.g. `SET`).
pub fn quote_literal(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if c == '\'' {
            s.push('\'');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_awkward_names() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("we\"ird; DROP"), "\"we\"\"ird; DROP\"");
        assert_eq!(qualified("public", "a b"), "\"public\".\"a b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
