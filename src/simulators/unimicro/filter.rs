//! The small `filter=` language the Unimicro simulator understands: `Field eq literal`
//! clauses joined by `and`, where a field may be a dotted path into nested objects
//! (`BusinessRelationInfo.DefaultEmail.EmailAddress`) and a literal is an integer, a
//! single-quoted string (`''` is a quote), `true`, `false` or `null`. That covers every form
//! the connector sends; anything else is refused with a message, as Unimicro refuses a filter
//! it cannot parse.
//!
//! Invariant: pure; field names and string values compare case-insensitively (Unimicro's
//! database collation is assumed case-insensitive).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Str(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub path: Vec<String>,
    pub value: Literal,
}

/// A parsed filter: every clause must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter(pub Vec<Clause>);

fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::from("'");
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some('\'') => break,
                    Some(ch) => s.push(ch),
                    None => return Err("a string literal is not closed".into()),
                }
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '\'' {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

impl Filter {
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokens(text)?;
        let mut clauses = Vec::new();
        let mut rest = tokens.as_slice();
        loop {
            let [field, op, literal, tail @ ..] = rest else {
                return Err(format!(
                    "cannot parse filter `{text}`: expected `Field eq value`"
                ));
            };
            if !op.eq_ignore_ascii_case("eq") {
                return Err(format!("unsupported operator `{op}` in filter `{text}`"));
            }
            if field.is_empty()
                || !field.split('.').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            {
                return Err(format!("`{field}` is not a field name"));
            }
            let value = if let Some(s) = literal.strip_prefix('\'') {
                Literal::Str(s.to_owned())
            } else if literal.eq_ignore_ascii_case("true") {
                Literal::Bool(true)
            } else if literal.eq_ignore_ascii_case("false") {
                Literal::Bool(false)
            } else if literal.eq_ignore_ascii_case("null") {
                Literal::Null
            } else {
                Literal::Int(
                    literal
                        .parse()
                        .map_err(|_| format!("`{literal}` is not a literal"))?,
                )
            };
            clauses.push(Clause {
                path: field.split('.').map(str::to_owned).collect(),
                value,
            });
            match tail {
                [] => return Ok(Self(clauses)),
                [and, more @ ..] if and.eq_ignore_ascii_case("and") => rest = more,
                [other, ..] => return Err(format!("unexpected `{other}` in filter `{text}`")),
            }
        }
    }

    pub fn matches(&self, item: &Value) -> bool {
        self.0.iter().all(|c| {
            let mut at = Some(item);
            for part in &c.path {
                at = at.and_then(Value::as_object).and_then(|o| {
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(part))
                        .map(|(_, v)| v)
                });
            }
            match (&c.value, at) {
                (Literal::Null, None | Some(Value::Null)) => true,
                (Literal::Int(i), Some(Value::Number(n))) => n.as_i64() == Some(*i),
                (Literal::Int(i), Some(Value::String(s))) => s.trim() == i.to_string(),
                (Literal::Str(s), Some(Value::String(v))) => v.eq_ignore_ascii_case(s),
                (Literal::Bool(b), Some(Value::Bool(v))) => v == b,
                _ => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_forms_the_connector_sends() {
        let item = json!({"ID": 7, "EmployeeNumber": 17,
            "BusinessRelationInfo": {"DefaultEmail": {"EmailAddress": "O'Neil@Example.no"}}});
        for (text, hit) in [
            ("ID eq 7", true),
            ("ID eq 8", false),
            ("employeenumber eq 17 and ID eq 7", true),
            (
                "BusinessRelationInfo.DefaultEmail.EmailAddress eq 'o''neil@example.no'",
                true,
            ),
            (
                "BusinessRelationInfo.DefaultEmail.EmailAddress eq 'x'",
                false,
            ),
            ("Missing eq null", true),
        ] {
            let f = Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(f.matches(&item), hit, "{text}");
        }
        for bad in [
            "ID",
            "ID gt 5",
            "ID eq",
            "ID eq 'x",
            "ID eq 5 or ID eq 6",
            "A..B eq 1",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
