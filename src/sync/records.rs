//! Translating records between the desk and Salesforce through the field mappings, and the
//! value hash that tells a real change from an echo of the sync's own write.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::mapping::{DeskKind, Mapping, desk_field};
use crate::domain::{
    AccountFields, AccountInput, ContactFields, ContactInput, FailureReason, Invalid, Module,
};
use crate::salesforce::Record;

/// Mapped values in Salesforce terms, keyed by Salesforce field name.
pub type SalesforceValues = BTreeMap<String, Value>;

/// Account links both ways, for translating `accountId` ↔ `AccountId`.
#[derive(Debug, Default)]
pub struct AccountLinks {
    pub to_salesforce: HashMap<i64, String>,
    pub to_desk: HashMap<String, i64>,
}

/// A desk record's fields as a JSON object keyed by desk field name (`lastName`, …).
pub fn desk_values<T: serde::Serialize>(input: &T) -> Map<String, Value> {
    match serde_json::to_value(input) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn canonical_text(value: &Value) -> Value {
    match value {
        // Trimmed as the desk keeps text, of what shows nothing too (a zero-width space, a
        // byte-order mark): a value differing only there is the same value.
        Value::String(s) if crate::domain::trim_invisible(s).is_empty() => Value::Null,
        Value::String(s) => Value::String(crate::domain::trim_invisible(s).to_owned()),
        // 1200 and 1200.0 are one value; whole numbers travel as integers, which integer
        // fields such as NumberOfEmployees require. Past 2^53 a number is the double nearest
        // it, as the desk keeps its decimals, whether read as an integer or a float.
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::from(f as i64),
            Some(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            None => Value::Null,
        },
        Value::Bool(b) => Value::String(b.to_string()),
        _ => Value::Null,
    }
}

/// A value of a desk field of this kind as the sync sends and compares it: addresses in
/// lower case, as Salesforce keeps them in its email fields (sent `Ada@Example.com`, it
/// answers `ada@example.com` ever after, which must not read as an edit).
fn canonical(kind: DeskKind, value: &Value) -> Value {
    match (kind, canonical_text(value)) {
        (DeskKind::Email, Value::String(s)) => Value::String(s.to_lowercase()),
        (_, value) => value,
    }
}

/// The desk record in Salesforce terms. A link to an account Salesforce does not know yet is
/// left out rather than cleared, and a contact with no desk account names `kept`, the
/// Salesforce account it stays in since its desk account was purged.
pub fn to_salesforce(
    mappings: &[Mapping],
    module: Module,
    desk: &Map<String, Value>,
    accounts: &AccountLinks,
    kept: Option<&str>,
) -> SalesforceValues {
    let mut out = SalesforceValues::new();
    for m in mappings {
        let Some(field) = desk_field(module, &m.desk_field) else {
            continue;
        };
        let value = desk.get(field.name).cloned().unwrap_or(Value::Null);
        let value = match field.kind {
            DeskKind::AccountRef => match value.as_i64() {
                Some(id) => match accounts.to_salesforce.get(&id) {
                    Some(sf) => Value::String(sf.clone()),
                    None => continue,
                },
                None => kept.map_or(Value::Null, |sf| Value::String(sf.to_owned())),
            },
            kind => canonical(kind, &value),
        };
        out.insert(m.salesforce_field.clone(), value);
    }
    out
}

/// The Salesforce account a record's mapped account field names when the desk does not
/// know it (no link): the record waits until the account syncs.
pub fn unknown_account<'v>(
    mappings: &[Mapping],
    module: Module,
    values: &'v SalesforceValues,
    accounts: &AccountLinks,
) -> Option<&'v str> {
    let account = salesforce_account(mappings, module, values)?;
    (!accounts.to_desk.contains_key(account)).then_some(account)
}

/// The Salesforce account a record's mapped account field names, if any.
pub fn salesforce_account<'v>(
    mappings: &[Mapping],
    module: Module,
    values: &'v SalesforceValues,
) -> Option<&'v str> {
    values.get(account_field(mappings, module)?)?.as_str()
}

/// The Salesforce field the desk's account link is mapped to, if it is.
pub fn account_field(mappings: &[Mapping], module: Module) -> Option<&str> {
    mappings
        .iter()
        .find(|m| {
            desk_field(module, &m.desk_field)
                .is_some_and(|f| matches!(f.kind, DeskKind::AccountRef))
        })
        .map(|m| m.salesforce_field.as_str())
}

/// The desk account a desk record's mapped account field names when Salesforce does not
/// know it (no link): sent without it, the record would reach Salesforce without its account
/// and nothing would send it again once the account synced, so it waits instead.
pub fn unlinked_account(
    mappings: &[Mapping],
    module: Module,
    desk: &Map<String, Value>,
    accounts: &AccountLinks,
) -> Option<i64> {
    let field = mappings
        .iter()
        .filter_map(|m| desk_field(module, &m.desk_field))
        .find(|f| matches!(f.kind, DeskKind::AccountRef))?;
    let account = desk.get(field.name)?.as_i64()?;
    (!accounts.to_salesforce.contains_key(&account)).then_some(account)
}

/// Of the values a push would send, those Salesforce's record as last read (`read`, every
/// field a pull saw, as a JSON object) does not hold already; all of them when the record was
/// never read, and any field the read did not include.
pub fn changed_since(values: &SalesforceValues, read: Option<&str>) -> SalesforceValues {
    let read: Option<Map<String, Value>> = read.and_then(|r| serde_json::from_str(r).ok());
    // A link whose record could not be read keeps an empty object: nothing is known.
    let Some(read) = read.filter(|r| r.contains_key("Id")) else {
        return values.clone();
    };
    values
        .iter()
        .filter(|(field, value)| {
            let was = read.get(field.as_str()).or_else(|| {
                read.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(field))
                    .map(|(_, v)| v)
            });
            was.is_none_or(|was| canonical_text(was) != **value)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A record as last read (`read`, a JSON object) with the values a push just wrote over it;
/// `None` when it was never read (the next pull reads it whole).
pub fn with_sent(read: Option<&str>, sent: &Record) -> Option<String> {
    let mut read: Map<String, Value> = serde_json::from_str(read?).ok()?;
    if !read.contains_key("Id") {
        return None;
    }
    for (field, value) in sent {
        // Written under the name the read used, so the record holds each field once.
        let name = read
            .keys()
            .find(|k| k.eq_ignore_ascii_case(field))
            .cloned()
            .unwrap_or_else(|| field.clone());
        read.insert(name, value.clone());
    }
    serde_json::to_string(&read).ok()
}

/// The mapped values of a Salesforce record.
/// A field of a record read from Salesforce. Field names are case-insensitive, and records
/// spell them as the org's describe does, which may not be as they were asked for.
pub fn field<'r>(record: &'r Record, name: &str) -> Option<&'r Value> {
    record.get(name).or_else(|| {
        record
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

pub fn from_salesforce(mappings: &[Mapping], module: Module, record: &Record) -> SalesforceValues {
    mappings
        .iter()
        .map(|m| {
            let kind = desk_field(module, &m.desk_field).map(|f| f.kind);
            let value = field(record, &m.salesforce_field).unwrap_or(&Value::Null);
            let value = match kind {
                Some(kind) => canonical(kind, value),
                None => canonical_text(value),
            };
            (m.salesforce_field.clone(), value)
        })
        .collect()
}

/// Whether a value is blank, as either side holds one: none, or empty text. A blank is no
/// edit where two records first meet.
pub fn blank(value: &Value) -> bool {
    value.is_null() || value.as_str().is_some_and(str::is_empty)
}

/// Writes Salesforce values over a desk record's fields. An account Salesforce links that the
/// desk does not know leaves the desk's link as it was, and so does no account in Salesforce
/// when the desk's account is one Salesforce does not know (`accounts.to_salesforce`).
pub fn apply_to_desk(
    mappings: &[Mapping],
    module: Module,
    values: &SalesforceValues,
    desk: &mut Map<String, Value>,
    accounts: &AccountLinks,
) {
    for m in mappings {
        let Some(field) = desk_field(module, &m.desk_field) else {
            continue;
        };
        let value = values
            .get(&m.salesforce_field)
            .cloned()
            .unwrap_or(Value::Null);
        let value = match field.kind {
            DeskKind::AccountRef => match value.as_str() {
                Some(sf) => match accounts.to_desk.get(sf) {
                    Some(id) => Value::from(*id),
                    None => continue,
                },
                // The desk's account is one Salesforce does not know (it was never sent,
                // or Salesforce refused it), so Salesforce cannot have cleared it.
                None => match desk.get(field.name).and_then(Value::as_i64) {
                    Some(current) if !accounts.to_salesforce.contains_key(&current) => continue,
                    _ => Value::Null,
                },
            },
            // Salesforce keeps addresses in lower case: the desk's spelling of the same
            // address stays.
            DeskKind::Email
                if desk
                    .get(field.name)
                    .and_then(Value::as_str)
                    .zip(value.as_str())
                    .is_some_and(|(own, theirs)| own.to_lowercase() == theirs.to_lowercase()) =>
            {
                continue;
            }
            kind => desk_value(kind, value),
        };
        desk.insert(field.name.to_owned(), value);
    }
}

/// A Salesforce value as a desk field of this kind holds it; account references are
/// translated through the links instead.
fn desk_value(kind: DeskKind, value: Value) -> Value {
    match kind {
        DeskKind::Integer { .. } => value
            .as_f64()
            .map_or(Value::Null, |f| Value::from(f.round() as i64)),
        DeskKind::Text { .. } | DeskKind::Email => match value {
            // Written out in full, as Salesforce shows it, not as `1.2345678901234568e16`.
            Value::Number(n) => Value::String(match n.as_f64() {
                Some(f) if !(n.is_i64() || n.is_u64()) && f.abs() < 1e21 => f.to_string(),
                _ => n.to_string(),
            }),
            Value::Bool(b) => Value::String(b.to_string()),
            other => other,
        },
        // As the desk holds it, a float: 5000 read is the desk's 5000.0, not a change.
        DeskKind::Decimal { .. } => match value.as_f64() {
            Some(f) if value.is_number() => Value::from(f),
            _ => value,
        },
        DeskKind::AccountRef => value,
    }
}

/// The value `apply_to_desk` writes to one desk field (not an account reference), read
/// straight from the Salesforce values.
pub fn mapped_desk_value(
    mappings: &[Mapping],
    module: Module,
    values: &SalesforceValues,
    name: &str,
) -> Option<Value> {
    mappings.iter().find_map(|m| {
        let field = desk_field(module, &m.desk_field).filter(|f| f.name == name)?;
        let value = values
            .get(&m.salesforce_field)
            .cloned()
            .unwrap_or(Value::Null);
        Some(desk_value(field.kind, value))
    })
}

/// A new desk record's fields, read from a Salesforce record before the links are: a
/// contact's account is left out until they are (`with_account`).
pub enum NewRecord {
    Contact(ContactFields),
    Account(AccountFields),
}

impl NewRecord {
    pub fn read(
        mappings: &[Mapping],
        module: Module,
        values: &SalesforceValues,
    ) -> Result<Self, Invalid> {
        let mut desk = Map::new();
        apply_to_desk(
            mappings,
            module,
            values,
            &mut desk,
            &AccountLinks::default(),
        );
        Ok(match module {
            Module::Contacts => Self::Contact(contact_fields(desk)?),
            Module::Accounts => Self::Account(account_fields(desk)?),
        })
    }

    /// Gives a contact the desk account its Salesforce account is linked to, as
    /// `apply_to_desk` does for a contact with no account yet.
    pub fn with_account(
        mut self,
        mappings: &[Mapping],
        values: &SalesforceValues,
        accounts: &AccountLinks,
    ) -> Self {
        if let Self::Contact(fields) = &mut self {
            fields.account_id = salesforce_account(mappings, Module::Contacts, values)
                .and_then(|sf| accounts.to_desk.get(sf))
                .map(|id| crate::domain::AccountId(*id));
        }
        self
    }
}

pub fn contact_fields(desk: Map<String, Value>) -> Result<ContactFields, Invalid> {
    let input: ContactInput = serde_json::from_value(Value::Object(desk))
        .map_err(|e| Invalid::new("record", format!("cannot read the values: {e}")))?;
    input.validate()
}

pub fn account_fields(desk: Map<String, Value>) -> Result<AccountFields, Invalid> {
    let input: AccountInput = serde_json::from_value(Value::Object(desk))
        .map_err(|e| Invalid::new("record", format!("cannot read the values: {e}")))?;
    input.validate()
}

/// The failure-log reason for a value the desk refuses, told by how its message begins
/// (a message may go on to quote the value, whatever it holds).
pub fn reason_for(invalid: &Invalid) -> FailureReason {
    let message = invalid.message.as_str();
    // A contact of an account the desk holds in its recycle bin waits for it to come out;
    // one of an account purged while the pull read waits for Salesforce's to come back.
    if invalid.field == "accountId"
        && (message.ends_with("in the recycle bin") || message.starts_with("no account with id"))
    {
        FailureReason::AccountNotSynced
    } else if message.starts_with("is required") {
        FailureReason::MandatoryFieldMissing
    } else if message.starts_with("must be at most") {
        FailureReason::StringTooLong
    } else if message.starts_with("cannot read") {
        FailureReason::TypeMismatch
    } else {
        FailureReason::InvalidParameter
    }
}

/// A stable hash of mapped values (FNV-1a, 64 bits, hex).
pub fn hash(values: &SalesforceValues) -> String {
    let mut h = Fnv1a(0xcbf2_9ce4_8422_2325);
    for (k, v) in values {
        h.add(k.as_bytes());
        h.add(&[0]);
        // The value's compact JSON, as `to_string` writes it, without building the string.
        let _ = serde_json::to_writer(&mut h, v);
        h.add(&[0]);
    }
    format!("{:016x}", h.0)
}

/// 64-bit FNV-1a over the bytes written to it.
struct Fnv1a(u64);

impl Fnv1a {
    fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.add(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sync::mapping::default_mappings;

    #[test]
    fn a_round_trip_through_salesforce_terms_keeps_the_hash() {
        let mappings = default_mappings(Module::Contacts);
        let mut accounts = AccountLinks::default();
        accounts
            .to_salesforce
            .insert(7, "001xx0000000001AAA".into());
        accounts.to_desk.insert("001xx0000000001AAA".into(), 7);
        let desk = desk_values(&ContactInput {
            first_name: Some(" Ada ".into()),
            last_name: Some("Lovelace".into()),
            email: Some("ada@example.com".into()),
            account_id: Some(crate::domain::AccountId(7)),
            ..Default::default()
        });
        let outbound = to_salesforce(&mappings, Module::Contacts, &desk, &accounts, None);
        assert_eq!(outbound["FirstName"], "Ada");
        assert_eq!(outbound["AccountId"], "001xx0000000001AAA");
        assert_eq!(outbound["Phone"], Value::Null);

        let mut record = Record::new();
        for (k, v) in &outbound {
            record.insert(k.clone(), v.clone());
        }
        record.insert("attributes".into(), json!({ "type": "Contact" }));
        let inbound = from_salesforce(&mappings, Module::Contacts, &record);
        assert_eq!(hash(&inbound), hash(&outbound), "an echo is recognised");

        let mut back = Map::new();
        apply_to_desk(&mappings, Module::Contacts, &inbound, &mut back, &accounts);
        let fields = contact_fields(back).unwrap();
        assert_eq!(fields.account_id, Some(crate::domain::AccountId(7)));
        assert_eq!(fields.first_name.as_deref(), Some("Ada"));
    }

    #[test]
    fn numbers_hash_alike_whatever_their_json_form() {
        let a: SalesforceValues =
            [("NumberOfEmployees".to_owned(), canonical_text(&json!(40)))].into();
        let b: SalesforceValues =
            [("NumberOfEmployees".to_owned(), canonical_text(&json!(40.0)))].into();
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn the_hash_is_the_one_links_already_keep() {
        // Links store hashes: the same values must keep hashing to the same text, or every
        // record would be written again once after an upgrade.
        let values: SalesforceValues = [
            ("Email".to_owned(), json!("ada@example.com")),
            ("LastName".to_owned(), json!("Lovelace \"Ada\" ✓")),
            ("NumberOfEmployees".to_owned(), json!(40)),
            ("Phone".to_owned(), Value::Null),
        ]
        .into();
        assert_eq!(hash(&values), "276fd734f9819adb");
        assert_eq!(hash(&SalesforceValues::new()), "cbf29ce484222325");
    }

    #[test]
    fn a_refusal_is_told_by_its_kind_not_by_the_value_it_quotes() {
        let reason = |message: &str| reason_for(&Invalid::new("email", message));
        assert_eq!(
            reason("'required.example.com' is not an email address"),
            FailureReason::InvalidParameter
        );
        assert_eq!(
            reason("'at most' is not an email address"),
            FailureReason::InvalidParameter
        );
        assert_eq!(
            reason("is required and must not be blank"),
            FailureReason::MandatoryFieldMissing
        );
        assert_eq!(
            reason("must be at most 80 characters (got 81)"),
            FailureReason::StringTooLong
        );
        // Gone from the desk, or in its bin, the account is waited for.
        for message in ["no account with id 7", "account 7 is in the recycle bin"] {
            assert_eq!(
                reason_for(&Invalid::new("accountId", message)),
                FailureReason::AccountNotSynced
            );
        }
    }

    #[test]
    fn numbers_shown_in_desk_text_are_written_out_in_full() {
        let shown = |n: Value| desk_value(DeskKind::Text { max: 255 }, canonical_text(&n));
        assert_eq!(shown(json!(1200.0)), json!("1200"));
        assert_eq!(shown(json!(1e16)), json!("10000000000000000"));
        assert_eq!(
            shown(json!(12345678901234567_u64)),
            json!("12345678901234568")
        );
        assert_eq!(shown(json!(1e300)), json!("1e+300"));
        assert_eq!(shown(json!(0.5)), json!("0.5"));
        // Past 2^53 a whole float and the integer it is are still one value.
        assert_eq!(canonical_text(&json!(1e16)), json!(10000000000000000_u64));
        assert_eq!(
            canonical_text(&json!(12345678901234567_u64)),
            canonical_text(&json!(12345678901234568.0))
        );
    }

    #[test]
    fn mapped_fields_are_read_whatever_the_case_of_their_name() {
        let mappings = vec![Mapping {
            desk_field: "lastName".into(),
            salesforce_field: "lastname".into(),
        }];
        let record: Record = serde_json::from_value(json!({ "LastName": "Lovelace" })).unwrap();
        let values = from_salesforce(&mappings, Module::Contacts, &record);
        assert_eq!(values["lastname"], json!("Lovelace"));
    }

    #[test]
    fn a_push_sends_what_the_last_read_record_does_not_hold() {
        let values: SalesforceValues = [
            ("LastName".to_owned(), json!("Lovelace")),
            ("NumberOfEmployees".to_owned(), json!(1200)),
            ("Phone".to_owned(), Value::Null),
            ("Title".to_owned(), json!("Countess")),
        ]
        .into_iter()
        .collect();
        let read = r#"{"Id":"003xx0000000001AAA","LastName":" Lovelace ","NumberOfEmployees":1200.0,"Phone":"+44 1"}"#;
        let changed = changed_since(&values, Some(read));
        // The same values written differently are no change; a cleared field and one the
        // read did not include go out.
        assert_eq!(
            changed.keys().collect::<Vec<_>>(),
            ["Phone", "Title"],
            "{changed:?}"
        );
        assert_eq!(changed_since(&values, Some("{}")), values, "never read");
        assert_eq!(changed_since(&values, None), values);
    }

    #[test]
    fn a_pushed_update_is_what_the_next_push_compares_with() {
        let read = r#"{"Id":"003xx0000000001AAA","Phone":"+44 1","Title":"Countess","Department":"Maths"}"#;
        let sent: Record = serde_json::from_value(json!({ "phone": "+44 2" })).unwrap();
        let now = with_sent(Some(read), &sent).unwrap();
        let now: Value = serde_json::from_str(&now).unwrap();
        assert_eq!(
            now,
            json!({ "Id": "003xx0000000001AAA", "Phone": "+44 2", "Title": "Countess", "Department": "Maths" })
        );
        // Reverting the phone is a change to send, not one Salesforce already holds.
        let reverted: SalesforceValues =
            [("Phone".to_owned(), json!("+44 1"))].into_iter().collect();
        assert_eq!(changed_since(&reverted, Some(&now.to_string())), reverted);
        assert_eq!(
            with_sent(Some("{}"), &sent),
            None,
            "never read: read whole later"
        );
        assert_eq!(with_sent(None, &sent), None);
    }
}
