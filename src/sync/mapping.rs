//! Field mappings: which desk field syncs with which Salesforce field, checked against the
//! org's describe when saved so that most failures are refused up front.

use std::collections::HashSet;

use crate::domain::{EMPLOYEES_DIGITS, Invalid, Module};
use crate::salesforce::Describe;

/// The kind of value a desk field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeskKind {
    Text {
        max: u32,
    },
    Email,
    /// A whole number of at most `digits` digits.
    Integer {
        digits: u32,
    },
    /// A number of at most `digits` digits before the point.
    Decimal {
        digits: u32,
    },
    /// A link to the desk account, synced as a Salesforce `AccountId`.
    AccountRef,
}

#[derive(Debug, Clone, Copy)]
pub struct DeskField {
    pub name: &'static str,
    pub kind: DeskKind,
    pub required: bool,
}

const fn text(name: &'static str, max: u32) -> DeskField {
    DeskField {
        name,
        kind: DeskKind::Text { max },
        required: false,
    }
}

const CONTACT_FIELDS: &[DeskField] = &[
    text("firstName", 40),
    DeskField {
        required: true,
        ..text("lastName", 80)
    },
    DeskField {
        name: "email",
        kind: DeskKind::Email,
        required: false,
    },
    text("phone", 40),
    text("mobile", 40),
    text("title", 128),
    DeskField {
        name: "accountId",
        kind: DeskKind::AccountRef,
        required: false,
    },
    text("mailingStreet", 255),
    text("mailingCity", 40),
    text("mailingState", 80),
    text("mailingPostalCode", 20),
    text("mailingCountry", 80),
    text("description", 32_000),
];

/// The digits before the point a field the annual revenue is written to must hold: 16, as
/// Salesforce's default currency field (Currency(16, 2)) does, which holds any revenue there
/// is. The desk takes up to 18, as AnnualRevenue does; one past 16 is refused for its record
/// alone.
const REVENUE_WRITTEN_DIGITS: u32 = 16;

const ACCOUNT_FIELDS: &[DeskField] = &[
    DeskField {
        required: true,
        ..text("name", 255)
    },
    text("website", 255),
    text("phone", 40),
    text("industry", 255),
    text("accountType", 255),
    DeskField {
        name: "employees",
        kind: DeskKind::Integer {
            digits: EMPLOYEES_DIGITS,
        },
        required: false,
    },
    DeskField {
        name: "annualRevenue",
        kind: DeskKind::Decimal {
            digits: REVENUE_WRITTEN_DIGITS,
        },
        required: false,
    },
    text("billingStreet", 255),
    text("billingCity", 40),
    text("billingState", 80),
    text("billingPostalCode", 20),
    text("billingCountry", 80),
    text("description", 32_000),
];

pub fn desk_fields(module: Module) -> &'static [DeskField] {
    match module {
        Module::Contacts => CONTACT_FIELDS,
        Module::Accounts => ACCOUNT_FIELDS,
    }
}

pub fn desk_field(module: Module, name: &str) -> Option<&'static DeskField> {
    desk_fields(module).iter().find(|f| f.name == name)
}

/// A desk field and the Salesforce field it syncs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub desk_field: String,
    pub salesforce_field: String,
}

impl Mapping {
    pub fn new(desk: &str, salesforce: &str) -> Self {
        Self {
            desk_field: desk.to_owned(),
            salesforce_field: salesforce.to_owned(),
        }
    }
}

/// The standard fields, mapped out of the box.
pub fn default_mappings(module: Module) -> Vec<Mapping> {
    let pairs: &[(&str, &str)] = match module {
        Module::Contacts => &[
            ("firstName", "FirstName"),
            ("lastName", "LastName"),
            ("email", "Email"),
            ("phone", "Phone"),
            ("mobile", "MobilePhone"),
            ("title", "Title"),
            ("accountId", "AccountId"),
            ("mailingStreet", "MailingStreet"),
            ("mailingCity", "MailingCity"),
            ("mailingState", "MailingState"),
            ("mailingPostalCode", "MailingPostalCode"),
            ("mailingCountry", "MailingCountry"),
            ("description", "Description"),
        ],
        Module::Accounts => &[
            ("name", "Name"),
            ("website", "Website"),
            ("phone", "Phone"),
            ("industry", "Industry"),
            ("accountType", "Type"),
            ("employees", "NumberOfEmployees"),
            ("annualRevenue", "AnnualRevenue"),
            ("billingStreet", "BillingStreet"),
            ("billingCity", "BillingCity"),
            ("billingState", "BillingState"),
            ("billingPostalCode", "BillingPostalCode"),
            ("billingCountry", "BillingCountry"),
            ("description", "Description"),
        ],
    };
    pairs.iter().map(|(d, s)| Mapping::new(d, s)).collect()
}

/// Salesforce field types any text goes into. An `email` field checks what it is given, so
/// only the desk's email goes there.
const TEXT_TYPES: &[&str] = &[
    "string",
    "textarea",
    "phone",
    "url",
    "picklist",
    "combobox",
    "encryptedstring",
];

/// Salesforce kinds a desk text field may show, written as Salesforce gives them, when the
/// sync only reads: their values are text, numbers or checkboxes, none of which a desk text
/// field could send back.
const SHOWN_AS_TEXT: &[&str] = &[
    "email",
    "multipicklist",
    "int",
    "long",
    "double",
    "currency",
    "percent",
    "date",
    "datetime",
    "time",
    "boolean",
];

/// Checks a whole set of mappings for a module against the org's describe. On success the
/// Salesforce field names come back in the org's canonical casing. Only a sync that `writes`
/// to Salesforce (two-way) needs its fields writable and every field Salesforce requires
/// mapped: one-way, a formula or other read-only field may be mapped into the desk.
pub fn validate(
    module: Module,
    mappings: &[Mapping],
    describe: &Describe,
    writes: bool,
) -> Result<Vec<Mapping>, Invalid> {
    let object = module.salesforce_object();
    let mut seen_desk = HashSet::new();
    let mut seen_salesforce = HashSet::new();
    let mut out = Vec::with_capacity(mappings.len());
    for (i, m) in mappings.iter().enumerate() {
        let at = format!("mappings[{i}]");
        let desk = desk_field(module, &m.desk_field).ok_or_else(|| {
            let known: Vec<&str> = desk_fields(module).iter().map(|f| f.name).collect();
            Invalid::new(
                format!("{at}.deskField"),
                format!(
                    "'{}' is not a desk field of {module}; known: {}",
                    m.desk_field,
                    known.join(", ")
                ),
            )
        })?;
        let sf = describe.field(&m.salesforce_field).ok_or_else(|| {
            Invalid::new(
                format!("{at}.salesforceField"),
                format!("{object} has no field '{}'", m.salesforce_field),
            )
        })?;
        if !seen_desk.insert(desk.name) {
            return Err(Invalid::new(
                format!("{at}.deskField"),
                format!("'{}' is mapped twice", desk.name),
            ));
        }
        if !seen_salesforce.insert(sf.name.to_ascii_lowercase()) {
            return Err(Invalid::new(
                format!("{at}.salesforceField"),
                format!("{object}.{} is mapped twice", sf.name),
            ));
        }
        fits(module, desk, sf, writes)
            .map_err(|why| Invalid::new(format!("{at}.salesforceField"), why))?;
        out.push(Mapping::new(desk.name, &sf.name));
    }
    for field in desk_fields(module).iter().filter(|f| f.required) {
        if !seen_desk.contains(field.name) {
            return Err(Invalid::new(
                "mappings",
                format!("the desk's mandatory field '{}' must be mapped", field.name),
            ));
        }
    }
    // Without it the first sync meets no record on both sides: each would be created again
    // on the other.
    let key = super::desk::match_field(module);
    if !seen_desk.contains(key) {
        return Err(Invalid::new(
            "mappings",
            format!(
                "'{key}' must be mapped: the sync finds the Salesforce twin of a desk {} by it, and without it would create every record already on both sides a second time",
                object.to_lowercase()
            ),
        ));
    }
    for field in describe
        .fields
        .iter()
        .filter(|f| writes && f.required_on_create())
    {
        if !seen_salesforce.contains(&field.name.to_ascii_lowercase()) {
            return Err(Invalid::new(
                "mappings",
                format!(
                    "{object}.{} is mandatory in Salesforce and must be mapped",
                    field.name
                ),
            ));
        }
    }
    Ok(out)
}

/// Why the Salesforce field `sf` cannot hold the desk field `desk` of `module`, when it
/// cannot: the sync's own field, one a two-way sync (`writes`) could not write, a type the
/// desk's values do not fit, or a match key Salesforce cannot be queried by.
fn fits(
    module: Module,
    desk: &DeskField,
    sf: &crate::salesforce::FieldDescribe,
    writes: bool,
) -> Result<(), String> {
    let object = module.salesforce_object();
    if sf.name.eq_ignore_ascii_case(super::DESK_ID_FIELD) {
        return Err(format!(
            "{object}.{} is the sync's own: it names the desk record a Salesforce record was created from, so no desk field can be mapped to it",
            sf.name
        ));
    }
    if writes && (!sf.createable || !sf.updateable) {
        return Err(format!(
            "{object}.{} cannot be written (it is not createable and updateable), and a two-way sync writes it",
            sf.name
        ));
    }
    // A match key is compared as Salesforce holds it, so it stays of a text kind.
    let key = desk.name == super::desk::match_field(module);
    check_types(desk, sf, writes, key)?;
    if key && !sf.filterable {
        return Err(format!(
            "{object}.{} cannot be filtered in a query (a {} field), yet the sync finds the Salesforce twin of a desk record by its '{}' through the field it is mapped to: map '{}' to a filterable field",
            sf.name, sf.kind, desk.name, desk.name
        ));
    }
    Ok(())
}

/// Each desk field of `module` with the org's fields it may be mapped to, as
/// [`validate`] would accept them, in the describe's order.
pub fn choices(
    module: Module,
    describe: &Describe,
    writes: bool,
) -> Vec<(&'static DeskField, Vec<&crate::salesforce::FieldDescribe>)> {
    desk_fields(module)
        .iter()
        .map(|desk| {
            let fitting = describe
                .fields
                .iter()
                .filter(|sf| fits(module, desk, sf, writes).is_ok())
                .collect();
            (desk, fitting)
        })
        .collect()
}

/// Whether a desk field of `module` must be mapped: the desk requires it, or the sync finds
/// a record's twin by it.
pub fn must_map(module: Module, desk: &DeskField) -> bool {
    desk.required || desk.name == super::desk::match_field(module)
}

/// The length of Salesforce's email fields.
const EMAIL_CHARS: u32 = 80;

/// Whether the desk field's values fit the Salesforce field, and, when the sync `writes` to
/// Salesforce, fit it whole: a shorter field would refuse them there. A desk text field that
/// is not the match `key` may show numbers, dates and checkboxes while the sync only reads.
fn check_types(
    desk: &DeskField,
    sf: &crate::salesforce::FieldDescribe,
    writes: bool,
    key: bool,
) -> Result<(), String> {
    let object_field = &sf.name;
    let kind = sf.kind.as_str();
    let whole = sf.whole_digits();
    match desk.kind {
        DeskKind::Text { max } => {
            let shown = !key && SHOWN_AS_TEXT.contains(&kind);
            let holds_text = TEXT_TYPES.contains(&kind) || (shown && !writes);
            if !holds_text {
                let one_way = if shown {
                    "; a one-way sync (SALESFORCE_TO_DESK) may show it as text"
                } else {
                    ""
                };
                return Err(format!(
                    "type mismatch: '{}' holds text but {object_field} is a {kind} field (a text value given for a {kind} field fails in Salesforce){one_way}",
                    desk.name
                ));
            }
            if writes && sf.length > 0 && sf.length < max {
                return Err(format!(
                    "{object_field} holds at most {} characters but '{}' may hold {max}",
                    sf.length, desk.name
                ));
            }
        }
        DeskKind::Email if !matches!(kind, "email" | "string") => {
            return Err(format!(
                "type mismatch: '{}' is an email but {object_field} is a {kind} field",
                desk.name
            ));
        }
        // Salesforce's own email fields hold 80 characters: a text field shorter than that
        // would refuse addresses an email field takes.
        DeskKind::Email
            if writes && kind == "string" && sf.length > 0 && sf.length < EMAIL_CHARS =>
        {
            return Err(format!(
                "{object_field} holds at most {} characters but an address in '{}' may have {EMAIL_CHARS}, as Salesforce's own email fields take",
                sf.length, desk.name
            ));
        }
        DeskKind::Integer { .. }
            if !matches!(kind, "int" | "long" | "double" | "currency" | "percent") =>
        {
            return Err(format!(
                "type mismatch: '{}' is an integer but {object_field} is a {kind} field",
                desk.name
            ));
        }
        // Its fractions would be rounded away in the desk, and the rounded value sent back
        // over Salesforce's with the record's next desk edit.
        DeskKind::Integer { .. } if sf.scale > 0 => {
            return Err(format!(
                "type mismatch: '{}' is an integer but {object_field} is a {kind} field with {} decimal places",
                desk.name, sf.scale
            ));
        }
        DeskKind::Decimal { .. } if !matches!(kind, "double" | "currency" | "percent") => {
            return Err(format!(
                "type mismatch: '{}' is a decimal number but {object_field} is a {kind} field",
                desk.name
            ));
        }
        // A shorter number field would refuse the larger values, as a shorter text field
        // the longer ones.
        DeskKind::Integer { digits } | DeskKind::Decimal { digits }
            if writes && whole.is_some_and(|whole| whole < digits) =>
        {
            return Err(format!(
                "{object_field} holds numbers of at most {} digits before the point and '{}' needs {digits}",
                whole.unwrap_or(digits),
                desk.name
            ));
        }
        DeskKind::AccountRef
            if !(kind == "reference" && sf.reference_to.iter().any(|r| r == "Account")) =>
        {
            return Err(format!(
                "type mismatch: '{}' links an account but {object_field} does not reference Account",
                desk.name
            ));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(describe: serde_json::Value) -> crate::salesforce::FieldDescribe {
        serde_json::from_value(describe).expect("a field describe")
    }

    #[test]
    fn a_classic_encrypted_text_field_takes_text_but_is_no_match_key() {
        let secret = field(serde_json::json!({
            "name": "Secret__c", "type": "encryptedstring", "length": 175,
            "createable": true, "updateable": true, "filterable": false,
        }));
        let phone = desk_field(Module::Contacts, "phone").unwrap();
        assert_eq!(fits(Module::Contacts, phone, &secret, true), Ok(()));
        let name = desk_field(Module::Accounts, "name").unwrap();
        let refused = fits(Module::Accounts, name, &secret, false).unwrap_err();
        assert!(refused.contains("cannot be filtered"), "{refused}");
    }

    #[test]
    fn a_number_field_written_to_must_hold_the_whole_digits_the_desk_field_needs() {
        let int = |digits: u32| {
            field(serde_json::json!({
                "name": "Staff__c", "type": "int", "digits": digits,
                "createable": true, "updateable": true,
            }))
        };
        let employees = desk_field(Module::Accounts, "employees").unwrap();
        let refused = fits(Module::Accounts, employees, &int(5), true).unwrap_err();
        assert!(
            refused.contains("at most 5 digits before the point and 'employees' needs 8"),
            "{refused}"
        );
        assert_eq!(fits(Module::Accounts, employees, &int(8), true), Ok(()));
        // Read only, its values all fit the desk's.
        assert_eq!(fits(Module::Accounts, employees, &int(5), false), Ok(()));
        // A describe that gives no size is not held to one.
        assert_eq!(fits(Module::Accounts, employees, &int(0), true), Ok(()));
        let revenue = desk_field(Module::Accounts, "annualRevenue").unwrap();
        let currency = |precision: u32, scale: u32| {
            field(serde_json::json!({
                "name": "Revenue__c", "type": "currency", "precision": precision,
                "scale": scale, "createable": true, "updateable": true,
            }))
        };
        assert_eq!(
            fits(Module::Accounts, revenue, &currency(18, 0), true),
            Ok(())
        );
        // Salesforce's default currency field, sixteen digits and two decimal places.
        assert_eq!(
            fits(Module::Accounts, revenue, &currency(18, 2), true),
            Ok(())
        );
        assert!(fits(Module::Accounts, revenue, &currency(16, 2), true).is_err());
    }
}
