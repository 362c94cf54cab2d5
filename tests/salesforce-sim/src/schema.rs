//! The org's metadata: objects, fields and the flags describe reports for them.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Id,
    String,
    Textarea,
    Email,
    Phone,
    Url,
    Picklist,
    Combobox,
    Reference,
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    /// A file's body: written base64-encoded, read as the URL of the blob.
    Base64,
}

impl Kind {
    pub fn api_name(self) -> &'static str {
        match self {
            Kind::Id => "id",
            Kind::String => "string",
            Kind::Textarea => "textarea",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Url => "url",
            Kind::Picklist => "picklist",
            Kind::Combobox => "combobox",
            Kind::Reference => "reference",
            Kind::Boolean => "boolean",
            Kind::Int => "int",
            Kind::Double => "double",
            Kind::Currency => "currency",
            Kind::Percent => "percent",
            Kind::Date => "date",
            Kind::DateTime => "datetime",
            Kind::Base64 => "base64",
        }
    }

    pub fn soap_type(self) -> &'static str {
        match self {
            Kind::Id | Kind::Reference => "tns:ID",
            Kind::Boolean => "xsd:boolean",
            Kind::Int => "xsd:int",
            Kind::Double | Kind::Currency | Kind::Percent => "xsd:double",
            Kind::Date => "xsd:date",
            Kind::DateTime => "xsd:dateTime",
            Kind::Base64 => "xsd:base64Binary",
            _ => "xsd:string",
        }
    }

    pub fn is_text(self) -> bool {
        matches!(
            self,
            Kind::String
                | Kind::Textarea
                | Kind::Email
                | Kind::Phone
                | Kind::Url
                | Kind::Picklist
                | Kind::Combobox
        )
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub length: u32,
    /// Digits after the decimal point of a `double`, `currency` or `percent` field.
    pub scale: u32,
    /// Digits in all of a `double`, `currency` or `percent` field (`precision`), or of an
    /// `int` (`digits`): a value with more before the point is refused.
    pub digits: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub defaulted: bool,
    pub default: Option<&'static str>,
    pub external_id: bool,
    pub reference_to: &'static [&'static str],
    pub relationship: Option<&'static str>,
    pub picklist: &'static [&'static str],
    /// A picklist that takes only its values (`restrictedPicklist`), as an admin may make one.
    pub restricted: bool,
}

impl Field {
    pub fn is_custom(&self) -> bool {
        self.name.ends_with("__c")
    }

    pub fn is_required(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted
    }

    pub fn filterable(&self) -> bool {
        !(self.kind == Kind::Textarea && self.length > 255) && self.kind != Kind::Base64
    }
}

#[derive(Debug)]
pub struct SObject {
    pub name: &'static str,
    pub label: &'static str,
    pub plural: &'static str,
    pub prefix: &'static str,
    pub fields: Vec<Field>,
    /// Field positions by API name as written, then by its lowercase form (names are
    /// case-insensitive; the exact spelling is the common case and needs no allocation).
    by_exact_name: HashMap<&'static str, usize>,
    by_name: HashMap<String, usize>,
}

impl SObject {
    pub fn new(
        name: &'static str,
        label: &'static str,
        plural: &'static str,
        prefix: &'static str,
        fields: Vec<Field>,
    ) -> Self {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        let by_exact_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name, i))
            .collect();
        SObject {
            name,
            label,
            plural,
            prefix,
            fields,
            by_exact_name,
            by_name,
        }
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        match self.by_exact_name.get(name) {
            Some(&i) => Some(i),
            None => self.by_name.get(&name.to_ascii_lowercase()).copied(),
        }
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// Whether `name` is a base64 field, whose bytes sObject Blob Get serves.
    pub fn is_blob(&self, name: &str) -> bool {
        self.field(name).is_some_and(|f| f.kind == Kind::Base64)
    }

    pub fn relationship(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.relationship.is_some_and(|r| r.eq_ignore_ascii_case(name)))
    }

    pub fn name_field(&self) -> Option<&Field> {
        ["Name", "Subject", "Title"]
            .iter()
            .find_map(|n| self.field(n))
    }
}

/// Index of an object in [`Schema::objects`]; also its table number in the store.
pub type ObjIdx = usize;

pub struct Schema {
    pub objects: Vec<SObject>,
}

impl Schema {
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema {
            objects: crate::objects::all(),
        })
    }

    pub fn index(&self, name: &str) -> Option<ObjIdx> {
        self.objects
            .iter()
            .position(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub fn by_prefix(&self, prefix: &str) -> Option<ObjIdx> {
        self.objects.iter().position(|o| o.prefix == prefix)
    }

    pub fn object(&self, idx: ObjIdx) -> &SObject {
        &self.objects[idx]
    }

    /// The child relationship `name` of `parent`, as a subquery names it in its FROM: the
    /// child object, the index of its field pointing at the parent, and the name as
    /// Salesforce spells it.
    pub fn child_relationship(
        &self,
        parent: ObjIdx,
        name: &str,
    ) -> Option<(ObjIdx, usize, &'static str)> {
        let parent = self.object(parent).name;
        CHILD_RELATIONSHIPS
            .iter()
            .filter(|(_, _, relationship)| relationship.eq_ignore_ascii_case(name))
            .find_map(|&(child, field, relationship)| {
                let child = self.index(child)?;
                let index = self.object(child).field_index(field)?;
                self.object(child).fields[index]
                    .reference_to
                    .contains(&parent)
                    .then_some((child, index, relationship))
            })
    }
}

/// Child relationships by child object and reference field, named as Salesforce names them.
const CHILD_RELATIONSHIPS: &[(&str, &str, &str)] = &[
    ("Account", "ParentId", "ChildAccounts"),
    ("Contact", "AccountId", "Contacts"),
    ("Opportunity", "AccountId", "Opportunities"),
    ("Opportunity", "ContactId", "Opportunities"),
    (
        "OpportunityContactRole",
        "OpportunityId",
        "OpportunityContactRoles",
    ),
    (
        "OpportunityContactRole",
        "ContactId",
        "OpportunityContactRoles",
    ),
    ("Note", "ParentId", "Notes"),
    (
        "ContentDocumentLink",
        "LinkedEntityId",
        "ContentDocumentLinks",
    ),
    (
        "ContentDocumentLink",
        "ContentDocumentId",
        "ContentDocumentLinks",
    ),
    ("Task", "WhoId", "Tasks"),
    ("Task", "WhatId", "Tasks"),
    ("Event", "WhoId", "Events"),
    ("Event", "WhatId", "Events"),
];

/// The name of the child relationship of `child`'s `field`, if Salesforce names one.
pub fn child_relationship_name(child: &str, field: &str) -> Option<&'static str> {
    CHILD_RELATIONSHIPS
        .iter()
        .find(|(c, f, _)| *c == child && *f == field)
        .map(|(_, _, name)| *name)
}
