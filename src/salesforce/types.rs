use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::SalesforceId;

/// A record as Salesforce returns it: field name → JSON value (plus `attributes`).
pub type Record = Map<String, Value>;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    pub name: String,
    /// The field's name in Salesforce's own UI.
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub length: u32,
    /// Digits after the decimal point, for `double`, `currency` and `percent` fields.
    #[serde(default)]
    pub scale: u32,
    /// Digits in all, for `double`, `currency` and `percent` fields.
    #[serde(default)]
    pub precision: u32,
    /// Digits in all, for `int` fields.
    #[serde(default)]
    pub digits: u32,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub defaulted_on_create: bool,
    #[serde(default)]
    pub external_id: bool,
    /// No two records may hold one value (case-insensitive unless said otherwise).
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub custom: bool,
    /// A formula or roll-up: computed when read, so it can change without the record changing.
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// Whether SOQL may filter on the field: long text areas and encrypted fields it may not.
    #[serde(default = "filterable_unless_said")]
    pub filterable: bool,
    /// A picklist's values (those of a restricted one are the only ones it takes).
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
}

/// One value of a picklist.
#[derive(Debug, Clone, Deserialize)]
pub struct PicklistValue {
    pub value: String,
    #[serde(default)]
    pub active: bool,
}

fn filterable_unless_said() -> bool {
    true
}

impl FieldDescribe {
    /// The digits a number field holds before the decimal point: Salesforce refuses a value
    /// with more. `None` for other fields, and where the describe does not say.
    pub fn whole_digits(&self) -> Option<u32> {
        let (all, whole) = match self.kind.as_str() {
            "int" => (self.digits, self.digits),
            "double" | "currency" | "percent" => {
                (self.precision, self.precision.saturating_sub(self.scale))
            }
            _ => return None,
        };
        (all > 0).then_some(whole)
    }

    /// Salesforce requires a value on create for a field that is not nillable, is createable,
    /// and has no platform default.
    pub fn required_on_create(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Describe {
    pub name: String,
    #[serde(default)]
    pub key_prefix: Option<String>,
    pub fields: Vec<FieldDescribe>,
}

impl Describe {
    /// Looks a field up by name, ignoring case as Salesforce does.
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// One record's outcome inside a collection call.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordResult {
    pub id: Option<SalesforceId>,
    pub success: bool,
    /// For upserts: whether the record was created.
    pub created: Option<bool>,
    /// `(statusCode, message, fields)` of each error.
    pub errors: Vec<(String, String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpsertResult {
    pub id: SalesforceId,
    pub created: bool,
}

#[derive(Debug, Clone)]
pub struct Updated {
    pub ids: Vec<SalesforceId>,
    pub latest_date_covered: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct DeletedRecord {
    pub id: SalesforceId,
    pub deleted_date: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Deleted {
    pub records: Vec<DeletedRecord>,
    pub earliest_date_available: Option<DateTime<Utc>>,
    pub latest_date_covered: DateTime<Utc>,
}

/// The org's daily API usage as the last response reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// Parses `api-usage=25/15000` out of a `Sforce-Limit-Info` header.
    pub fn parse(header: &str) -> Option<Self> {
        let usage = header
            .split(';')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("api-usage="))?;
        let (used, max) = usage.split_once('/')?;
        Some(Self {
            used: used.trim().parse().ok()?,
            max: max.trim().parse().ok()?,
        })
    }
}

/// Parses Salesforce's datetime form `2024-05-20T20:49:32.000+0000` (and RFC 3339).
pub fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(raw))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_header_and_datetimes_parse() {
        assert_eq!(
            ApiUsage::parse("api-usage=25/15000; per-app-api-usage=17/250(appName=X)"),
            Some(ApiUsage {
                used: 25,
                max: 15000
            })
        );
        assert_eq!(ApiUsage::parse("api-bursts=1/750"), None);
        let t = parse_datetime("2024-05-20T20:49:32.000+0000").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-20T20:49:32+00:00");
        assert!(parse_datetime("2024-05-20T20:49:32Z").is_some());
    }
}
