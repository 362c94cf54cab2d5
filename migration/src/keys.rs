//! The form of the keys records are matched and searched by (`contact.name_key`,
//! `contact.email_key`, `account.name_key`): here, so that the gateway writing them and the
//! migration rebuilding them make the same.

use unicode_normalization::{UnicodeNormalization, is_nfc};

/// Characters that show nothing: white space, and the invisible ones a paste brings along
/// (a byte-order mark from a CSV, zero-width spaces and joiners, a soft hyphen, Hangul
/// fillers, the marks that set the direction of text, the blank Braille pattern). Trimmed
/// from both ends of stored text; a value of nothing else is blank. (Variation selectors and
/// tags are not among them: at the end of an emoji they are part of what it shows.)
pub fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// The value without what shows nothing at either end: as the gateway stores text, and as
/// records are matched and searched by.
pub fn trim(raw: &str) -> &str {
    raw.trim_matches(invisible)
}

/// The key of a value: trimmed of what shows nothing, then [`folded`].
pub fn key(raw: &str) -> String {
    folded(trim(raw))
}

/// Text composed (NFC: «ü» typed and «u» with a combining diaeresis pasted from elsewhere
/// are one) and lower-cased, with every Greek sigma the one letter σ: lower-casing makes a
/// word-final «Σ» «ς», so a search for the first letters of a name ending in «Σ» (whose «σ»
/// stands where the key has «ς») found nothing. Case is not folded further («ß» stays «ß»):
/// Salesforce compares keys sent to it case-insensitively, but never «ß» with «ss». The text
/// is taken as given: the gateway trims it first.
pub fn folded(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let lowered = if is_nfc(text) {
        text.to_lowercase()
    } else {
        text.nfc().collect::<String>().to_lowercase()
    };
    let lowered = lowered.replace('ς', "σ");
    // Lower-casing can leave a sequence composition would join (a lowered letter before a
    // combining mark).
    if is_nfc(&lowered) {
        lowered
    } else {
        lowered.nfc().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::folded;

    #[test]
    fn matches_text_that_differs_only_in_case_or_composition() {
        assert_eq!(
            folded("Ada.Lovelace@Example.COM"),
            "ada.lovelace@example.com"
        );
        assert_eq!(folded("ΠΑΠΑΣΤΑΘΟΠΟΥΛΟΣ"), "παπασταθοπουλοσ");
        assert_eq!(folded("Σοφοκλής"), folded("ΣΟΦΟΚΛΉΣ"));
        assert!(folded("ΠΑΠΑΣΤΑΘΟΠΟΥΛΟΣ").starts_with(&folded("ΠΑΠΑΣ")));
        assert_eq!(folded("Straße AG"), folded("STRAẞE AG"));
        assert_eq!(folded("Mu\u{0308}ller"), folded("MÜLLER"));
    }
}
