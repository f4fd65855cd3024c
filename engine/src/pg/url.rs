//! Taking libpq parameters the `postgres` crate does not know (`sslrootcert`, `verify-full`
//! as an `sslmode`, ...) out of a connection string before it parses the rest.
//!
//! Both of libpq's forms: the URI (`postgresql://...?key=value&...`, values
//! percent-encoded) and `key=value` pairs (values optionally single-quoted, `\` escapes).

/// Split `conn` into the connection string without the parameters named in `keys` and
/// those parameters' values (decoded), in order.
pub fn take_params(conn: &str, keys: &[&str]) -> Result<(String, Vec<(String, String)>), String> {
    let trimmed = conn.trim_start();
    if trimmed.starts_with("postgresql://") || trimmed.starts_with("postgres://") {
        take_from_uri(trimmed, keys)
    } else {
        take_from_pairs(conn, keys)
    }
}

fn take_from_uri(uri: &str, keys: &[&str]) -> Result<(String, Vec<(String, String)>), String> {
    let Some((base, query)) = uri.split_once('?') else {
        return Ok((uri.to_string(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(k)?;
        if keys.contains(&key.as_str()) {
            taken.push((key, percent_decode(v)?));
        } else {
            kept.push(part);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, taken))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "invalid percent-encoding in the URL".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URL parameter is not UTF-8".to_string())
}

fn take_from_pairs(conn: &str, keys: &[&str]) -> Result<(String, Vec<(String, String)>), String> {
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("missing `=` after `{key}`"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value for `{key}`")),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quoted value for `{key}`")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if keys.contains(&key.as_str()) {
            taken.push((key, value));
        } else {
            kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
    }
    Ok((kept.join(" "), taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_params_are_taken_and_decoded() {
        let (rest, taken) = take_params(
            "postgresql://u:p@db:5432/x?sslmode=verify-full&connect_timeout=5&sslrootcert=%2Fetc%2Fca.pem",
            &["sslmode", "sslrootcert"],
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:p@db:5432/x?connect_timeout=5");
        assert_eq!(
            taken,
            vec![
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/etc/ca.pem".into())
            ]
        );
    }

    #[test]
    fn pairs_keep_quoting() {
        let (rest, taken) = take_params(
            "host=/tmp/s  dbname = 'we\\'ird db' sslmode=require sslcert='/a b/c.crt'",
            &["sslmode", "sslcert"],
        )
        .unwrap();
        assert_eq!(rest, "host='/tmp/s' dbname='we\\'ird db'");
        assert_eq!(
            taken,
            vec![
                ("sslmode".into(), "require".into()),
                ("sslcert".into(), "/a b/c.crt".into())
            ]
        );
        assert!(take_params("host", &[]).is_err());
    }
}
