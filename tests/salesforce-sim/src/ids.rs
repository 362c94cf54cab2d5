//! Record ids: key prefix, fake pod, base-62 counter and the 18-character checksum suffix.

const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const POD: &str = "5g0";

/// The three-character suffix that makes a 15-character id case-insensitive.
pub fn checksum(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            char::from(SUFFIX[bits])
        })
        .collect()
}

pub fn to18(id15: &str) -> String {
    format!("{id15}{}", checksum(id15))
}

/// An 18-character id for the `counter`-th record with key prefix `prefix`.
pub fn make(prefix: &str, counter: u64) -> String {
    let mut digits = [b'0'; 9];
    let mut n = counter;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    to18(&format!(
        "{prefix}{POD}{}",
        String::from_utf8_lossy(&digits)
    ))
}

/// Parses a 15- or 18-character id into its case-correct 15-character form.
pub fn normalize(input: &str) -> Option<String> {
    if !input.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match input.len() {
        15 => Some(input.to_string()),
        18 => {
            let (body, suffix) = input.split_at(15);
            let suffix = suffix.to_ascii_uppercase();
            let mut restored = String::with_capacity(15);
            for (chunk, flag) in body.as_bytes().chunks(5).zip(suffix.bytes()) {
                let bits = SUFFIX.iter().position(|&s| s == flag)?;
                for (i, &c) in chunk.iter().enumerate() {
                    let upper = bits & (1 << i) != 0;
                    let c = if upper {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    };
                    restored.push(char::from(c));
                }
            }
            (checksum(&restored) == suffix).then_some(restored)
        }
        _ => None,
    }
}

/// Splits a simulator-issued id into key prefix and counter.
pub fn decode(input: &str) -> Option<(String, u64)> {
    let id15 = normalize(input)?;
    if &id15[3..6] != POD {
        return None;
    }
    let counter = id15[6..].bytes().try_fold(0u64, |acc, b| {
        let digit = BASE62.iter().position(|&d| d == b)? as u64;
        Some(acc * 62 + digit)
    })?;
    Some((id15[..3].to_string(), counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        for (short, long) in [
            ("00190000001pPvH", "00190000001pPvHAAU"),
            ("001D000000K0fXO", "001D000000K0fXOIAZ"),
            ("003D000000QV9n2", "003D000000QV9n2IAD"),
            ("0018a00001rBqb8", "0018a00001rBqb8AAC"),
            ("005D0000001QX8W", "005D0000001QX8WIAW"),
            ("a00D0000008pQSN", "a00D0000008pQSNIA2"),
            ("003xx000004TmiQ", "003xx000004TmiQAAS"),
        ] {
            assert_eq!(to18(short), long);
            assert_eq!(
                normalize(&long.to_ascii_lowercase()).as_deref(),
                Some(short)
            );
        }
    }

    #[test]
    fn made_ids_round_trip() {
        let id = make("003", 123_456);
        assert_eq!(id.len(), 18);
        assert_eq!(decode(&id), Some(("003".to_string(), 123_456)));
        assert!(make("003", 9) < make("003", 10));
        assert!(make("003", 61) < make("003", 62));
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(normalize("003xx000004TmiQAAX"), None);
        assert_eq!(normalize("003-x000004TmiQ"), None);
        assert_eq!(normalize("003"), None);
    }
}
