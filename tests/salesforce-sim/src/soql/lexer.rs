//! Splits SOQL text into tokens, decoding Salesforce's quoted-string escapes.

use chrono::NaiveDate;

use super::malformed;
use crate::error::ApiError;
use crate::record::parse_datetime;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Date(NaiveDate),
    DateTime(i64),
    Op(&'static str),
    Comma,
    Dot,
    Open,
    Close,
    End,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub col: usize,
    pub text: String,
}

pub fn lex(query: &str) -> Result<Vec<Token>, ApiError> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ',' => single(&mut i, Tok::Comma),
            '.' => single(&mut i, Tok::Dot),
            '(' => single(&mut i, Tok::Open),
            ')' => single(&mut i, Tok::Close),
            '\'' => Tok::Str(string(query, &chars, &mut i)?),
            '=' => single(&mut i, Tok::Op("=")),
            '!' | '<' | '>' => operator(query, &chars, &mut i)?,
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                number_or_date(query, &chars, &mut i)?
            }
            c if c.is_alphanumeric() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                Tok::Word(chars[start..i].iter().collect())
            }
            other => return Err(malformed(query, start + 1, &other.to_string())),
        };
        tokens.push(Token {
            tok,
            col: start + 1,
            text: chars[start..i].iter().collect(),
        });
    }
    tokens.push(Token {
        tok: Tok::End,
        col: chars.len() + 1,
        text: "<EOF>".into(),
    });
    Ok(tokens)
}

fn single(i: &mut usize, tok: Tok) -> Tok {
    *i += 1;
    tok
}

fn operator(query: &str, chars: &[char], i: &mut usize) -> Result<Tok, ApiError> {
    let next = chars.get(*i + 1).copied();
    let (op, len) = match (chars[*i], next) {
        ('!', Some('=')) => ("!=", 2),
        ('<', Some('>')) => ("!=", 2),
        ('<', Some('=')) => ("<=", 2),
        ('>', Some('=')) => (">=", 2),
        ('<', _) => ("<", 1),
        ('>', _) => (">", 1),
        (c, _) => return Err(malformed(query, *i + 1, &c.to_string())),
    };
    *i += len;
    Ok(Tok::Op(op))
}

/// `\_` and `\%` in a string literal: wildcards that LIKE must match literally. Kept apart from
/// a literal backslash so that `\\_` (a backslash, then the `_` wildcard) stays unambiguous.
pub const LITERAL_UNDERSCORE: char = '\u{E000}';
pub const LITERAL_PERCENT: char = '\u{E001}';

/// A string literal outside LIKE, where the wildcard escapes mean the plain characters.
pub fn plain(s: &str) -> String {
    s.replace(LITERAL_UNDERSCORE, "_")
        .replace(LITERAL_PERCENT, "%")
}

fn string(query: &str, chars: &[char], i: &mut usize) -> Result<String, ApiError> {
    let start = *i;
    let mut out = String::new();
    *i += 1;
    loop {
        let Some(&c) = chars.get(*i) else {
            return Err(malformed(query, start + 1, "<EOF>"));
        };
        *i += 1;
        match c {
            '\'' => return Ok(out),
            '\\' => {
                let Some(&e) = chars.get(*i) else {
                    return Err(malformed(query, start + 1, "<EOF>"));
                };
                *i += 1;
                match e {
                    '\'' | '"' | '\\' => out.push(e),
                    'n' | 'N' => out.push('\n'),
                    'r' | 'R' => out.push('\r'),
                    't' | 'T' => out.push('\t'),
                    'b' | 'B' => out.push('\u{8}'),
                    'f' | 'F' => out.push('\u{c}'),
                    '_' => out.push(LITERAL_UNDERSCORE),
                    '%' => out.push(LITERAL_PERCENT),
                    'u' => {
                        let hex: String =
                            chars.get(*i..*i + 4).unwrap_or_default().iter().collect();
                        let decoded = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        out.push(decoded.ok_or_else(|| invalid_escape(query, *i))?);
                        *i += 4;
                    }
                    _ => return Err(invalid_escape(query, *i)),
                }
            }
            c => out.push(c),
        }
    }
}

fn invalid_escape(query: &str, col: usize) -> ApiError {
    ApiError::bad_request(
        "MALFORMED_QUERY",
        format!(
            "\n{query}\n{}^\nERROR at Row:1:Column:{col}\nInvalid string literal. Illegal escape sequence",
            " ".repeat(col.saturating_sub(1))
        ),
    )
}

fn number_or_date(query: &str, chars: &[char], i: &mut usize) -> Result<Tok, ApiError> {
    let start = *i;
    *i += 1;
    while *i < chars.len()
        && (chars[*i].is_ascii_alphanumeric() || matches!(chars[*i], '.' | ':' | '-' | '+'))
    {
        *i += 1;
    }
    let text: String = chars[start..*i].iter().collect();
    let bad = || malformed(query, start + 1, &text);
    if text.len() >= 10 && text.as_bytes()[4] == b'-' {
        if text.len() == 10 {
            return NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map(Tok::Date)
                .map_err(|_| bad());
        }
        return parse_datetime(&text).map(Tok::DateTime).ok_or_else(bad);
    }
    text.parse().map(Tok::Num).map_err(|_| bad())
}
