use super::Invalid;

/// The value without what shows nothing at either end: as it is stored, and as records
/// are matched and searched by ([`migration::keys::trim`]).
pub fn trim(raw: &str) -> &str {
    migration::keys::trim(raw)
}

/// Text as records are matched and searched by: trimmed of what shows nothing, then composed
/// and lower-cased ([`migration::keys::key`], which the migrations rebuilding stored keys
/// use too).
pub fn fold(raw: &str) -> String {
    migration::keys::key(raw)
}

/// A required name: trimmed, not empty, at most `max` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(field: &str, raw: &str, max: usize) -> Result<Self, Invalid> {
        let value = trim(raw);
        if value.is_empty() {
            return Err(Invalid::new(field, "is required and must not be blank"));
        }
        check_len(field, value, max)?;
        Ok(Self(value.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An optional free-text value: trimmed; blank becomes absent.
pub struct OptionalText;

impl OptionalText {
    pub fn parse(field: &str, raw: Option<&str>, max: usize) -> Result<Option<String>, Invalid> {
        match raw.map(trim) {
            None | Some("") => Ok(None),
            Some(value) => {
                check_len(field, value, max)?;
                Ok(Some(value.to_owned()))
            }
        }
    }
}

/// A search term as given, held to the rules stored text keeps: a term no stored value could
/// hold is refused, not searched. It is matched as records are, by its key: folded, and
/// trimmed of what shows nothing at its ends (`"ada "` finds Adam too).
/// So is one of nothing but spaces (or characters that show nothing): searched, it would
/// match every record, as if no filter had been given.
pub fn search_term(
    field: &str,
    raw: Option<String>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    if let Some(term) = &raw {
        // Measured as it is looked for: a name pasted with a line break after it fits.
        check_len(field, crate::domain::trim_invisible(term), max)?;
        if crate::domain::trim_invisible(term).is_empty() {
            return Err(Invalid::new(
                field,
                "is blank: give what to look for, or leave the filter out to list every record",
            ));
        }
    }
    Ok(raw)
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    // PostgreSQL's text cannot hold NUL, and Salesforce refuses control characters: only
    // tabs and line breaks are text.
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Invalid::new(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    // Counted as Salesforce counts (in UTF-16 units): an emoji or another character beyond
    // the Basic Multilingual Plane takes two, so a value that fits here fits there too.
    let len = value.encode_utf16().count();
    if len > max {
        let astral = value.chars().any(|c| c.len_utf16() == 2);
        let note = if astral {
            ", an emoji or other character beyond the Basic Multilingual Plane counting as two"
        } else {
            ""
        };
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters (got {len}{note})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Name, OptionalText};

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("n", "  Ada ", 10).unwrap().into_inner(), "Ada");
        assert_eq!(Name::parse("n", "   ", 10).unwrap_err().field, "n");
        assert!(Name::parse("n", "abcdefghijk", 10).is_err());
        assert!(Name::parse("n", "äöüäöüäöüä", 10).is_ok());
        assert!(Name::parse("n", &"😀".repeat(5), 10).is_ok());
        let err = Name::parse("n", &"😀".repeat(6), 10).unwrap_err();
        assert!(err.message.contains("(got 12, an emoji"), "{}", err.message);
    }

    #[test]
    fn control_characters_other_than_line_breaks_and_tabs_are_refused() {
        assert!(Name::parse("n", "a\u{0}b", 10).is_err());
        assert!(OptionalText::parse("t", Some("bell\u{7}"), 10).is_err());
        assert!(OptionalText::parse("t", Some("two\nlines\tok"), 20).is_ok());
    }

    #[test]
    fn search_terms_are_kept_as_typed_and_held_to_the_rules_of_stored_text() {
        use super::search_term;
        assert_eq!(
            search_term("f", Some(" ada ".into()), 10)
                .unwrap()
                .as_deref(),
            Some(" ada ")
        );
        assert_eq!(search_term("f", None, 10).unwrap(), None);
        for blank in ["", "  ", "\u{200B}", " \u{FEFF} "] {
            assert_eq!(
                search_term("f", Some(blank.into()), 10).unwrap_err().field,
                "f",
                "{blank:?}"
            );
        }
        assert_eq!(
            search_term("f", Some("a\u{0}".into()), 10)
                .unwrap_err()
                .field,
            "f"
        );
        assert!(search_term("f", Some("x".repeat(11)), 10).is_err());
    }

    #[test]
    fn what_shows_nothing_is_trimmed_and_a_value_of_nothing_else_is_blank() {
        for blank in ["\u{200B}", " \u{FEFF} ", "\u{3164}", "\u{00AD}\u{2060}"] {
            assert!(Name::parse("n", blank, 10).is_err(), "{blank:?}");
            assert_eq!(OptionalText::parse("t", Some(blank), 10).unwrap(), None);
        }
        assert_eq!(
            Name::parse("n", "\u{FEFF}Acme\u{200B}", 10)
                .unwrap()
                .into_inner(),
            "Acme"
        );
        // Joiners inside a word are text: emoji sequences and Indic scripts need them.
        let family = "👩\u{200D}👧";
        assert_eq!(Name::parse("n", family, 10).unwrap().into_inner(), family);
    }

    #[test]
    fn blank_optional_text_is_absent() {
        assert_eq!(OptionalText::parse("t", Some("  "), 5).unwrap(), None);
        assert_eq!(
            OptionalText::parse("t", Some(" x "), 5).unwrap().as_deref(),
            Some("x")
        );
        assert!(OptionalText::parse("t", Some("toolong"), 5).is_err());
    }
}
