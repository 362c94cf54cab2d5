use unicode_normalization::UnicodeNormalization;

use super::Invalid;

/// An email address: trimmed, at most 254 characters, one `@` between a local part and a
/// dotted domain. Compared case-insensitively through [`Email::normalized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim();
        let invalid = |why: &str| {
            Invalid::new(
                field,
                format!("'{value}' is not a valid email address: {why}"),
            )
        };
        if value.is_empty() {
            return Err(Invalid::new(field, "must not be empty"));
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(Invalid::new(
                field,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        // Checked composed: an address pasted with its accents as combining marks (as macOS
        // gives them) is the same address as one typed with them, and matched as one.
        let composed: String = value.nfc().collect();
        let Some((local, domain)) = composed.rsplit_once('@') else {
            return Err(invalid("it has no '@'"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(invalid(
                "the part before '@' must be 1 to 64 bytes (a letter outside ASCII takes 2 to 4)",
            ));
        }
        if local.contains('@') || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "it contains a space, a control character or a second '@'",
            ));
        }
        // The unquoted form every mail system (Salesforce's email fields included) takes:
        // dot-separated pieces of letters, digits and a few signs.
        let piece_ok = |p: &str| {
            !p.is_empty()
                && p.chars().all(|c| {
                    c.is_alphanumeric() || (c.is_ascii() && "!#$%&'*+/=?^_`{|}~-".contains(c))
                })
        };
        if !local.split('.').all(piece_ok) {
            return Err(invalid(
                "the part before '@' may hold letters, digits and ! # $ % & ' * + / = ? ^ _ ` { | } ~ -, with single dots between them",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(invalid("the domain must look like example.com"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key two addresses are matched on: composed and lower-cased ([`super::fold`]).
    pub fn normalized(&self) -> String {
        super::fold(&self.0)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn accepts_ordinary_addresses_and_trims_them() {
        let email = Email::parse("email", "  Ada.Lovelace+desk@Example.co.uk ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace+desk@Example.co.uk");
        assert_eq!(email.normalized(), "ada.lovelace+desk@example.co.uk");
        for good in [
            "o'brien@example.ie",
            "a!#$%&*/=?^_`{|}~-z@example.com",
            "zoë@example.com",
            // The same address, its ë written as e and a combining diaeresis.
            "zoe\u{308}@example.com",
        ] {
            assert!(Email::parse("email", good).is_ok(), "{good}");
        }
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        for bad in [
            "",
            "plain",
            "a@b",
            "a b@example.com",
            "@example.com",
            "a@-x.com",
            "a@@example.com",
            "a@example..com",
            "a,b@example.com",
            "a;b@example.com",
            "<ada>@example.com",
            "a\"b@example.com",
            "a\\b@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "ada..lovelace@example.com",
        ] {
            let err = Email::parse("email", bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
    }

    #[test]
    fn a_long_local_part_is_measured_in_bytes_and_says_so() {
        // 28 letters, 54 bytes: taken. 36 letters, 69 bytes: refused, saying why.
        assert!(Email::parse("email", "иван.петрович.сидоренковский@example.ru").is_ok());
        let err =
            Email::parse("email", "иван.петрович.сидоренковский.младший@example.ru").unwrap_err();
        assert!(err.to_string().contains("64 bytes"), "{err}");
    }
}
