//! Recursive-descent parser for the SOQL subset: SELECT … FROM … WHERE … ORDER BY … LIMIT … OFFSET.

use chrono::NaiveDate;

use super::lexer::{Tok, Token, lex};
use super::malformed;
use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct Path {
    pub parts: Vec<String>,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Date(NaiveDate),
    DateTime(i64),
    /// A date constant such as `TODAY` or `LAST_N_DAYS:7`, resolved when bound.
    Relative(String, i64),
    /// Half-open range of epoch seconds, the bound form of `Relative`.
    Range(i64, i64),
}

#[derive(Debug, Clone)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Cmp(Path, Op, Lit),
    In(Path, bool, Vec<Lit>),
    Like(Path, String),
}

#[derive(Debug, Clone)]
pub struct Order {
    pub path: Path,
    pub desc: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub fields: Vec<Path>,
    /// Child-relationship subqueries in the select list: `(SELECT … FROM Contacts)`; their
    /// `object` is the relationship's name.
    pub children: Vec<Query>,
    pub count: bool,
    pub object: String,
    pub object_col: usize,
    pub filter: Option<Cond>,
    pub order: Vec<Order>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

struct Parser<'q> {
    query: &'q str,
    tokens: Vec<Token>,
    pos: usize,
}

pub fn parse(query: &str) -> Result<Query, ApiError> {
    let mut p = Parser {
        query,
        tokens: lex(query)?,
        pos: 0,
    };
    let q = p.query()?;
    match p.peek().tok {
        Tok::End => Ok(q),
        _ => Err(p.unexpected()),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn unexpected(&self) -> ApiError {
        let t = self.peek();
        malformed(self.query, t.col, &t.text)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.is_kw(kw);
        self.pos += usize::from(found);
        found
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ApiError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<(), ApiError> {
        if self.peek().tok == tok {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn query(&mut self) -> Result<Query, ApiError> {
        self.select(None)
    }

    /// A query, or with `nested` (where its parenthesis opens) a subquery of a select list,
    /// which holds no subquery of its own: Salesforce allows one level.
    fn select(&mut self, nested: Option<usize>) -> Result<Query, ApiError> {
        self.expect_kw("SELECT")?;
        let mut fields = Vec::new();
        let mut children = Vec::new();
        let mut count = false;
        loop {
            if self.is_kw("COUNT")
                && self
                    .tokens
                    .get(self.pos + 1)
                    .is_some_and(|t| t.tok == Tok::Open)
            {
                self.pos += 1;
                self.expect(Tok::Open)?;
                self.expect(Tok::Close)?;
                count = true;
            } else if self.peek().tok == Tok::Open && nested.is_none() {
                let open = self.next();
                children.push(self.select(Some(open.col))?);
                self.expect(Tok::Close)?;
            } else {
                fields.push(self.path()?);
            }
            if self.peek().tok != Tok::Comma {
                break;
            }
            self.pos += 1;
        }
        if count && !fields.is_empty() {
            return Err(malformed(
                self.query,
                fields[0].col,
                &fields[0].parts.join("."),
            ));
        }
        if count && !children.is_empty() {
            return Err(malformed(self.query, children[0].object_col, "SELECT"));
        }
        if let Some(col) = nested
            && count
        {
            return Err(malformed(self.query, col, "COUNT"));
        }
        self.expect_kw("FROM")?;
        let from = self.next();
        let Tok::Word(object) = from.tok else {
            return Err(malformed(self.query, from.col, &from.text));
        };
        let filter = if self.eat_kw("WHERE") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                order.push(self.order_item()?);
                if self.peek().tok != Tok::Comma {
                    break;
                }
                self.pos += 1;
            }
        }
        let limit = if self.eat_kw("LIMIT") {
            Some(self.integer()?)
        } else {
            None
        };
        let offset = if self.eat_kw("OFFSET") {
            Some(self.integer()?)
        } else {
            None
        };
        Ok(Query {
            fields,
            children,
            count,
            object,
            object_col: from.col,
            filter,
            order,
            limit,
            offset,
        })
    }

    fn integer(&mut self) -> Result<usize, ApiError> {
        match self.peek().tok {
            Tok::Num(n) if n >= 0.0 && n.fract() == 0.0 => {
                self.pos += 1;
                Ok(n as usize)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn path(&mut self) -> Result<Path, ApiError> {
        let col = self.peek().col;
        let mut parts = Vec::new();
        loop {
            match self.next().tok {
                Tok::Word(w) => parts.push(w),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected());
                }
            }
            if self.peek().tok != Tok::Dot {
                return Ok(Path { parts, col });
            }
            self.pos += 1;
        }
    }

    fn order_item(&mut self) -> Result<Order, ApiError> {
        let path = self.path()?;
        let desc = self.eat_kw("DESC");
        if !desc {
            self.eat_kw("ASC");
        }
        // Salesforce sorts nulls first unless told, descending too.
        let mut nulls_last = false;
        if self.eat_kw("NULLS") {
            nulls_last = if self.eat_kw("LAST") {
                true
            } else {
                self.expect_kw("FIRST")?;
                false
            };
        }
        Ok(Order {
            path,
            desc,
            nulls_last,
        })
    }

    /// AND and OR may not be mixed without parentheses, as in real SOQL.
    fn condition(&mut self) -> Result<Cond, ApiError> {
        let first = self.term()?;
        let joiner = if self.is_kw("AND") {
            "AND"
        } else if self.is_kw("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut terms = vec![first];
        while self.eat_kw(joiner) {
            terms.push(self.term()?);
        }
        if self.is_kw("AND") || self.is_kw("OR") {
            return Err(self.unexpected());
        }
        Ok(if joiner == "AND" {
            Cond::All(terms)
        } else {
            Cond::Any(terms)
        })
    }

    fn term(&mut self) -> Result<Cond, ApiError> {
        if self.eat_kw("NOT") {
            return Ok(Cond::Not(Box::new(self.term()?)));
        }
        if self.peek().tok == Tok::Open {
            self.pos += 1;
            let inner = self.condition()?;
            self.expect(Tok::Close)?;
            return Ok(inner);
        }
        let path = self.path()?;
        if self.eat_kw("LIKE") {
            return match self.next().tok {
                Tok::Str(s) => Ok(Cond::Like(path, s)),
                _ => {
                    self.pos -= 1;
                    Err(self.unexpected())
                }
            };
        }
        let negated = self.eat_kw("NOT");
        if self.eat_kw("IN") {
            self.expect(Tok::Open)?;
            let mut values = vec![self.literal()?];
            while self.peek().tok == Tok::Comma {
                self.pos += 1;
                values.push(self.literal()?);
            }
            self.expect(Tok::Close)?;
            return Ok(Cond::In(path, negated, values));
        }
        if negated {
            return Err(self.unexpected());
        }
        let op = match self.peek().tok {
            Tok::Op("=") => Op::Eq,
            Tok::Op("!=") => Op::Ne,
            Tok::Op("<") => Op::Lt,
            Tok::Op("<=") => Op::Le,
            Tok::Op(">") => Op::Gt,
            Tok::Op(">=") => Op::Ge,
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(Cond::Cmp(path, op, self.literal()?))
    }

    fn literal(&mut self) -> Result<Lit, ApiError> {
        let lit = match &self.peek().tok {
            Tok::Str(s) => Lit::Str(super::lexer::plain(s)),
            Tok::Num(n) => Lit::Num(*n),
            Tok::Date(d) => Lit::Date(*d),
            Tok::DateTime(t) => Lit::DateTime(*t),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Tok::Word(w) => relative(w).ok_or_else(|| self.unexpected())?,
            _ => return Err(self.unexpected()),
        };
        self.pos += 1;
        Ok(lit)
    }
}

fn relative(word: &str) -> Option<Lit> {
    let upper = word.to_ascii_uppercase();
    let (name, n) = match upper.split_once(':') {
        Some((name, n)) => (name.to_string(), n.parse().ok()?),
        None => (upper, 1),
    };
    let needs_n = matches!(name.as_str(), "LAST_N_DAYS" | "NEXT_N_DAYS");
    let plain = matches!(name.as_str(), "TODAY" | "YESTERDAY" | "TOMORROW");
    (needs_n || plain).then_some(Lit::Relative(name, n))
}
