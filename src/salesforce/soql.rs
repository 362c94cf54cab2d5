//! A SOQL builder: identifiers are checked, every literal is escaped, datetimes are UTC.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::domain::{Invalid, SalesforceId};

/// A value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Int(i64),
    Number(f64),
    Bool(bool),
    Null,
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Id(SalesforceId),
}

impl Literal {
    fn render(&self, out: &mut String) {
        match self {
            Literal::Text(s) => out.push_str(&quote(s)),
            Literal::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Literal::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Literal::Null => out.push_str("null"),
            Literal::Date(d) => {
                let _ = write!(out, "{}", d.format("%Y-%m-%d"));
            }
            Literal::DateTime(t) => out.push_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            Literal::Id(id) => out.push_str(&quote(id.as_str())),
        }
    }
}

impl From<&str> for Literal {
    fn from(s: &str) -> Self {
        Literal::Text(s.to_owned())
    }
}

impl From<DateTime<Utc>> for Literal {
    fn from(t: DateTime<Utc>) -> Self {
        Literal::DateTime(t)
    }
}

impl From<SalesforceId> for Literal {
    fn from(id: SalesforceId) -> Self {
        Literal::Id(id)
    }
}

/// Quotes a string literal: backslash first, then quotes and control characters.
pub fn quote(value: &str) -> String {
    format!("'{}'", escape(value, false))
}

/// Quotes a LIKE pattern that matches `value` literally (anywhere, when `contains`).
pub fn quote_like(value: &str, contains: bool) -> String {
    let wildcard = if contains { "%" } else { "" };
    format!("'{wildcard}{}{wildcard}'", escape(value, true))
}

fn escape(value: &str, like: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '%' if like => out.push_str("\\%"),
            '_' if like => out.push_str("\\_"),
            c => out.push(c),
        }
    }
    out
}

/// An object or field name (`Contact`, `Account.Name`, `Helpdesk_Id__c`), never user text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

impl Ident {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.split('.').all(|part| {
                let mut chars = part.chars();
                chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !part.ends_with('_')
                    && !part.contains("___")
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "field",
                format!("'{raw}' is not a Salesforce object or field name"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(Ident, &'static str, Literal),
    In(Ident, Vec<Literal>),
    Like(Ident, String),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    pub fn eq(field: &Ident, value: impl Into<Literal>) -> Self {
        Self::Compare(field.clone(), "=", value.into())
    }

    pub fn ne(field: &Ident, value: impl Into<Literal>) -> Self {
        Self::Compare(field.clone(), "!=", value.into())
    }

    pub fn gt(field: &Ident, value: impl Into<Literal>) -> Self {
        Self::Compare(field.clone(), ">", value.into())
    }

    pub fn gte(field: &Ident, value: impl Into<Literal>) -> Self {
        Self::Compare(field.clone(), ">=", value.into())
    }

    pub fn in_list(field: &Ident, values: impl IntoIterator<Item = Literal>) -> Self {
        Self::In(field.clone(), values.into_iter().collect())
    }

    /// `field LIKE '%value%'`, with `%` and `_` in `value` matched literally.
    pub fn contains(field: &Ident, value: &str) -> Self {
        Self::Like(field.clone(), quote_like(value, true))
    }

    fn render(&self, out: &mut String) {
        match self {
            Condition::Compare(field, op, value) => {
                let _ = write!(out, "{} {op} ", field.as_str());
                value.render(out);
            }
            Condition::In(field, values) => {
                let _ = write!(out, "{} IN (", field.as_str());
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    value.render(out);
                }
                out.push(')');
            }
            Condition::Like(field, pattern) => {
                let _ = write!(out, "{} LIKE {pattern}", field.as_str());
            }
            Condition::And(parts) | Condition::Or(parts) => {
                let joiner = if matches!(self, Condition::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                out.push('(');
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(joiner);
                    }
                    part.render(out);
                }
                out.push(')');
            }
        }
    }
}

/// A `SELECT … FROM … [WHERE …] [ORDER BY …] [LIMIT …]` query.
#[derive(Debug, Clone)]
pub struct Select {
    object: Ident,
    fields: Vec<Ident>,
    filter: Vec<Condition>,
    /// Each field with its direction (`ASC`, `DESC NULLS LAST`, …).
    order: Vec<(Ident, &'static str)>,
    limit: Option<u32>,
}

impl Select {
    pub fn new(object: &str, fields: &[&str]) -> Result<Self, Invalid> {
        Ok(Self {
            object: Ident::parse(object)?,
            fields: fields
                .iter()
                .map(|f| Ident::parse(f))
                .collect::<Result<_, _>>()?,
            filter: Vec::new(),
            order: Vec::new(),
            limit: None,
        })
    }

    /// Adds a condition; several are joined with AND.
    pub fn filter(mut self, condition: Condition) -> Self {
        self.filter.push(condition);
        self
    }

    pub fn order_by(mut self, field: &Ident, ascending: bool) -> Self {
        let direction = if ascending { "ASC" } else { "DESC" };
        self.order.push((field.clone(), direction));
        self
    }

    /// Orders by `field` from the greatest value down, records without one last (Salesforce
    /// puts them first unless told).
    pub fn newest_first(mut self, field: &Ident) -> Self {
        self.order.push((field.clone(), "DESC NULLS LAST"));
        self
    }

    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    pub fn build(&self) -> String {
        let mut out = String::from("SELECT ");
        let names: Vec<&str> = self.fields.iter().map(Ident::as_str).collect();
        out.push_str(&names.join(", "));
        let _ = write!(out, " FROM {}", self.object.as_str());
        if !self.filter.is_empty() {
            out.push_str(" WHERE ");
            Condition::And(self.filter.clone()).render(&mut out);
        }
        if !self.order.is_empty() {
            out.push_str(" ORDER BY ");
            let parts: Vec<String> = self
                .order
                .iter()
                .map(|(f, direction)| format!("{} {direction}", f.as_str()))
                .collect();
            out.push_str(&parts.join(", "));
        }
        if let Some(n) = self.limit {
            let _ = write!(out, " LIMIT {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_backslash_first_then_quotes_and_controls() {
        assert_eq!(quote(r"O'Brien"), r"'O\'Brien'");
        assert_eq!(quote("ends with \\"), r"'ends with \\'");
        assert_eq!(quote("a\\'b"), r"'a\\\'b'");
        assert_eq!(
            quote("line\nbreak\ttab \"q\""),
            r#"'line\nbreak\ttab \"q\"'"#
        );
        assert_eq!(quote("100% _x_ ünï"), "'100% _x_ ünï'");
    }

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(quote_like("50%_off", true), r"'%50\%\_off%'");
        assert_eq!(quote_like("a\\b'c", false), r"'a\\b\'c'");
    }

    #[test]
    fn identifiers_are_allowlisted_by_shape() {
        for good in ["Contact", "Account.Name", "Helpdesk_Id__c", "Who.Name"] {
            assert!(Ident::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Id; DROP", "1Name", "Name'", "A..B", "Name_", "a b"] {
            assert!(Ident::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_keyset_page_query_reads_as_salesforce_expects() {
        let stamp = Ident::parse("SystemModstamp").unwrap();
        let id = Ident::parse("Id").unwrap();
        let at = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let last = SalesforceId::parse("003D000000QV9n2").unwrap();
        let soql = Select::new("Contact", &["Id", "LastName", "SystemModstamp"])
            .unwrap()
            .filter(Condition::Or(vec![
                Condition::gt(&stamp, at),
                Condition::And(vec![Condition::eq(&stamp, at), Condition::gt(&id, last)]),
            ]))
            .order_by(&stamp, true)
            .order_by(&id, true)
            .limit(200)
            .build();
        assert_eq!(
            soql,
            "SELECT Id, LastName, SystemModstamp FROM Contact WHERE ((SystemModstamp > 2024-01-01T00:00:00Z OR \
             (SystemModstamp = 2024-01-01T00:00:00Z AND Id > '003D000000QV9n2IAD'))) ORDER BY SystemModstamp ASC, Id ASC LIMIT 200"
        );
    }
}
