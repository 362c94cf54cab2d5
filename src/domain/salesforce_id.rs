use std::fmt;

use super::Invalid;

const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// A Salesforce record id, always held in its 18-character form.
///
/// Accepts the case-sensitive 15-character form (and computes the checksum suffix) or the
/// 18-character form (whose suffix must match). Two ids are equal when their 18-character forms
/// are; the suffix encodes the case of the first 15 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SalesforceId(String);

impl SalesforceId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let raw = raw.trim();
        let invalid = |why: &str| {
            Invalid::new(
                "salesforceId",
                format!("'{raw}' is not a Salesforce id: {why}"),
            )
        };
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("only letters and digits are allowed"));
        }
        match raw.len() {
            15 => Ok(Self(format!("{raw}{}", suffix(raw)))),
            18 => {
                let (base, given) = raw.split_at(15);
                let restored =
                    restore_case(base, given).ok_or_else(|| invalid("its checksum is wrong"))?;
                Ok(Self(format!("{restored}{}", suffix(&restored))))
            }
            n => Err(invalid(&format!("it has {n} characters, not 15 or 18"))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-sensitive 15-character form.
    pub fn short(&self) -> &str {
        &self.0[..15]
    }

    /// The three-character key prefix naming the object type, e.g. `003` for Contact.
    pub fn key_prefix(&self) -> &str {
        &self.0[..3]
    }
}

impl fmt::Display for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn suffix(base: &str) -> String {
    base.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            SUFFIX[bits] as char
        })
        .collect()
}

/// Checks an 18-character id's suffix, tolerating an id whose letters were lower- or
/// upper-cased in transit: the suffix says which letters are capitals.
fn restore_case(base: &str, given: &str) -> Option<String> {
    let mut out = String::with_capacity(15);
    for (chunk, code) in base.as_bytes().chunks(5).zip(given.bytes()) {
        let bits = SUFFIX
            .iter()
            .position(|c| *c == code.to_ascii_uppercase())?;
        for (i, b) in chunk.iter().enumerate() {
            let upper = bits & (1 << i) != 0;
            match (b.is_ascii_alphabetic(), upper) {
                (true, true) => out.push(b.to_ascii_uppercase() as char),
                (true, false) => out.push(b.to_ascii_lowercase() as char),
                (false, false) => out.push(*b as char),
                (false, true) => return None,
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::SalesforceId;

    const VECTORS: [(&str, &str); 6] = [
        ("00190000001pPvH", "00190000001pPvHAAU"),
        ("001D000000K0fXO", "001D000000K0fXOIAZ"),
        ("003D000000QV9n2", "003D000000QV9n2IAD"),
        ("0018a00001rBqb8", "0018a00001rBqb8AAC"),
        ("005D0000001QX8W", "005D0000001QX8WIAW"),
        ("a00D0000008pQSN", "a00D0000008pQSNIA2"),
    ];

    #[test]
    fn fifteen_character_ids_gain_the_documented_suffix() {
        for (short, long) in VECTORS {
            let id = SalesforceId::parse(short).unwrap();
            assert_eq!(id.as_str(), long);
            assert_eq!(id.short(), short);
            assert_eq!(SalesforceId::parse(long).unwrap(), id);
        }
    }

    #[test]
    fn an_eighteen_character_id_survives_a_change_of_case() {
        for (short, long) in VECTORS {
            let lowered = SalesforceId::parse(&long.to_lowercase()).unwrap();
            assert_eq!(lowered.short(), short);
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "003",
            "003D000000QV9n2IAX",
            "003D000000QV9n2I",
            "003D00000-QV9n2",
            "003D000000QV9n2IAD1",
        ] {
            assert!(SalesforceId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SalesforceId::parse("003D000000QV9n2").unwrap().key_prefix(),
            "003"
        );
    }
}
