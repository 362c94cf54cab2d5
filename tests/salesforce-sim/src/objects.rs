//! The standard objects the sidebar needs, each with one custom field.

use crate::schema::{Field, Kind, SObject};

fn f(name: &'static str, label: &'static str, kind: Kind, length: u32) -> Field {
    Field {
        name,
        label,
        kind,
        length,
        scale: match kind {
            Kind::Currency => 2,
            Kind::Double => 15,
            _ => 0,
        },
        digits: match kind {
            Kind::Currency | Kind::Double => 18,
            Kind::Percent => 3,
            Kind::Int => 9,
            _ => 0,
        },
        nillable: kind != Kind::Boolean,
        createable: true,
        updateable: true,
        defaulted: kind == Kind::Boolean,
        default: None,
        external_id: false,
        reference_to: &[],
        relationship: None,
        picklist: &[],
        restricted: false,
    }
}

fn text(name: &'static str, label: &'static str, length: u32) -> Field {
    f(name, label, Kind::String, length)
}

fn reference(
    name: &'static str,
    label: &'static str,
    to: &'static [&'static str],
    rel: &'static str,
) -> Field {
    Field {
        reference_to: to,
        relationship: Some(rel),
        ..f(name, label, Kind::Reference, 18)
    }
}

fn picklist(name: &'static str, label: &'static str, values: &'static [&'static str]) -> Field {
    Field {
        picklist: values,
        ..f(name, label, Kind::Picklist, 255)
    }
}

impl Field {
    fn scale(self, scale: u32) -> Self {
        Field { scale, ..self }
    }
    fn digits(self, digits: u32) -> Self {
        Field { digits, ..self }
    }
    fn required(self) -> Self {
        Field {
            nillable: false,
            ..self
        }
    }
    fn read_only(self) -> Self {
        Field {
            createable: false,
            updateable: false,
            ..self
        }
    }
    fn create_only(self) -> Self {
        Field {
            updateable: false,
            ..self
        }
    }
    fn defaults_to(self, value: &'static str) -> Self {
        Field {
            nillable: false,
            defaulted: true,
            default: Some(value),
            ..self
        }
    }
    fn external(self) -> Self {
        Field {
            external_id: true,
            ..self
        }
    }
}

fn system(owner: bool) -> Vec<Field> {
    let mut fields = vec![
        Field {
            nillable: false,
            defaulted: true,
            ..f("Id", "Record ID", Kind::Id, 18).read_only()
        },
        f("IsDeleted", "Deleted", Kind::Boolean, 0).read_only(),
        Field {
            nillable: false,
            defaulted: true,
            ..f("CreatedDate", "Created Date", Kind::DateTime, 0).read_only()
        },
        Field {
            nillable: false,
            defaulted: true,
            ..reference("CreatedById", "Created By ID", &["User"], "CreatedBy").read_only()
        },
        Field {
            nillable: false,
            defaulted: true,
            ..f("LastModifiedDate", "Last Modified Date", Kind::DateTime, 0).read_only()
        },
        Field {
            nillable: false,
            defaulted: true,
            ..reference(
                "LastModifiedById",
                "Last Modified By ID",
                &["User"],
                "LastModifiedBy",
            )
            .read_only()
        },
        Field {
            nillable: false,
            defaulted: true,
            ..f("SystemModstamp", "System Modstamp", Kind::DateTime, 0).read_only()
        },
    ];
    if owner {
        fields.push(Field {
            nillable: false,
            defaulted: true,
            ..reference("OwnerId", "Owner ID", &["User"], "Owner")
        });
    }
    fields
}

fn object(
    name: &'static str,
    label: &'static str,
    plural: &'static str,
    prefix: &'static str,
    owner: bool,
    own: Vec<Field>,
) -> SObject {
    let mut fields = system(owner);
    fields.extend(own);
    SObject::new(name, label, plural, prefix, fields)
}

const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

pub fn all() -> Vec<SObject> {
    vec![
        object(
            "Account",
            "Account",
            "Accounts",
            "001",
            true,
            vec![
                text("Name", "Account Name", 255).required(),
                reference(
                    "MasterRecordId",
                    "Master Record ID",
                    &["Account"],
                    "MasterRecord",
                )
                .read_only(),
                picklist(
                    "Type",
                    "Account Type",
                    &[
                        "Prospect",
                        "Customer - Direct",
                        "Customer - Channel",
                        "Channel Partner / Reseller",
                        "Installation Partner",
                        "Technology Partner",
                        "Other",
                    ],
                ),
                picklist(
                    "Industry",
                    "Industry",
                    &[
                        "Agriculture",
                        "Banking",
                        "Education",
                        "Healthcare",
                        "Manufacturing",
                        "Retail",
                        "Technology",
                        "Telecommunications",
                        "Other",
                    ],
                ),
                f("Website", "Website", Kind::Url, 255),
                f("Phone", "Account Phone", Kind::Phone, 40),
                f("Fax", "Account Fax", Kind::Phone, 40),
                f("AnnualRevenue", "Annual Revenue", Kind::Currency, 0).scale(0),
                f("NumberOfEmployees", "Employees", Kind::Int, 0).digits(8),
                text("AccountNumber", "Account Number", 40),
                text("Site", "Account Site", 80),
                f("BillingStreet", "Billing Street", Kind::Textarea, 255),
                text("BillingCity", "Billing City", 40),
                text("BillingState", "Billing State/Province", 80),
                text("BillingPostalCode", "Billing Zip/Postal Code", 20),
                text("BillingCountry", "Billing Country", 80),
                f("BillingLatitude", "Billing Latitude", Kind::Double, 0),
                f("BillingLongitude", "Billing Longitude", Kind::Double, 0),
                reference("ParentId", "Parent Account ID", &["Account"], "Parent"),
                f("Description", "Account Description", Kind::Textarea, 32000),
                picklist(
                    "Subscription_Type__c",
                    "Subscription Type",
                    &["Free", "Standard", "Premium"],
                ),
                text("Helpdesk_Id__c", "Helpdesk Id", 255).external(),
            ],
        ),
        object(
            "Contact",
            "Contact",
            "Contacts",
            "003",
            true,
            vec![
                picklist(
                    "Salutation",
                    "Salutation",
                    &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx."],
                ),
                text("FirstName", "First Name", 40),
                text("LastName", "Last Name", 80).required(),
                text("Name", "Full Name", 121).read_only(),
                f("Email", "Email", Kind::Email, 80),
                f("Phone", "Business Phone", Kind::Phone, 40),
                f("MobilePhone", "Mobile Phone", Kind::Phone, 40),
                text("Title", "Title", 128),
                text("Department", "Department", 80),
                reference("AccountId", "Account ID", &["Account"], "Account"),
                reference("ReportsToId", "Reports To ID", &["Contact"], "ReportsTo"),
                // Set on the records a merge deleted: the one they were merged into.
                reference(
                    "MasterRecordId",
                    "Master Record ID",
                    &["Contact"],
                    "MasterRecord",
                )
                .read_only(),
                f("MailingStreet", "Mailing Street", Kind::Textarea, 255),
                text("MailingCity", "Mailing City", 40),
                text("MailingState", "Mailing State/Province", 80),
                text("MailingPostalCode", "Mailing Zip/Postal Code", 20),
                text("MailingCountry", "Mailing Country", 80),
                f("MailingLatitude", "Mailing Latitude", Kind::Double, 0),
                f("Birthdate", "Birthdate", Kind::Date, 0),
                picklist("LeadSource", "Lead Source", LEAD_SOURCES),
                f("Description", "Contact Description", Kind::Textarea, 32000),
                f("HasOptedOutOfEmail", "Email Opt Out", Kind::Boolean, 0),
                f("DoNotCall", "Do Not Call", Kind::Boolean, 0),
                text("Helpdesk_Id__c", "Helpdesk Id", 255).external(),
            ],
        ),
        object(
            "Opportunity",
            "Opportunity",
            "Opportunities",
            "006",
            true,
            vec![
                text("Name", "Name", 120).required(),
                picklist("StageName", "Stage", STAGES).required(),
                f("CloseDate", "Close Date", Kind::Date, 0).required(),
                f("Amount", "Amount", Kind::Currency, 0),
                f("Probability", "Probability (%)", Kind::Percent, 0),
                f("IsClosed", "Closed", Kind::Boolean, 0).read_only(),
                f("IsWon", "Won", Kind::Boolean, 0).read_only(),
                reference("AccountId", "Account ID", &["Account"], "Account"),
                reference("ContactId", "Contact ID", &["Contact"], "Contact"),
                picklist(
                    "Type",
                    "Opportunity Type",
                    &[
                        "Existing Customer - Upgrade",
                        "Existing Customer - Replacement",
                        "Existing Customer - Downgrade",
                        "New Customer",
                    ],
                ),
                picklist("LeadSource", "Lead Source", LEAD_SOURCES),
                text("NextStep", "Next Step", 255),
                f("Description", "Description", Kind::Textarea, 32000),
                f("IsPrivate", "Private", Kind::Boolean, 0),
                text("Helpdesk_Ticket__c", "Helpdesk Ticket", 80),
            ],
        ),
        object(
            "OpportunityContactRole",
            "Opportunity Contact Role",
            "Opportunity Contact Role",
            "00K",
            false,
            vec![
                reference(
                    "OpportunityId",
                    "Opportunity ID",
                    &["Opportunity"],
                    "Opportunity",
                )
                .required()
                .create_only(),
                reference("ContactId", "Contact ID", &["Contact"], "Contact").required(),
                picklist(
                    "Role",
                    "Role",
                    &[
                        "Business User",
                        "Decision Maker",
                        "Economic Buyer",
                        "Economic Decision Maker",
                        "Evaluator",
                        "Executive Sponsor",
                        "Influencer",
                        "Technical Buyer",
                        "Other",
                    ],
                ),
                f("IsPrimary", "Primary", Kind::Boolean, 0),
                text("Helpdesk_Role__c", "Helpdesk Role", 80),
            ],
        ),
        object(
            "Note",
            "Note",
            "Notes",
            "002",
            true,
            vec![
                text("Title", "Title", 80).required(),
                f("Body", "Body", Kind::Textarea, 32000),
                reference(
                    "ParentId",
                    "Parent ID",
                    &["Account", "Contact", "Opportunity"],
                    "Parent",
                )
                .required()
                .create_only(),
                f("IsPrivate", "Private", Kind::Boolean, 0),
                text("Helpdesk_Note_Id__c", "Helpdesk Note Id", 40),
            ],
        ),
        // Enhanced notes. In Salesforce a ContentNote is a ContentDocument of type SNOTE, and
        // links reference ContentDocument; here every document is a note, so links reference
        // ContentNote.
        object(
            "ContentNote",
            "Note",
            "Notes",
            "069",
            true,
            vec![
                text("Title", "Title", 255).required(),
                f("Content", "Content", Kind::Base64, 0),
                text("TextPreview", "Text Preview", 255).read_only(),
                text("FileType", "File Type", 20).read_only(),
                text("FileExtension", "File Extension", 20).read_only(),
                // `P`: "Private on Records", seen by its owner alone.
                picklist("SharingPrivacy", "Sharing Privacy", &["N", "P"]),
            ],
        ),
        object(
            "ContentDocumentLink",
            "Content Document Link",
            "Content Document Links",
            "06A",
            false,
            vec![
                reference(
                    "ContentDocumentId",
                    "ContentDocument ID",
                    &["ContentNote"],
                    "ContentDocument",
                )
                .required()
                .create_only(),
                reference(
                    "LinkedEntityId",
                    "Linked Entity ID",
                    &["Account", "Contact", "Opportunity", "User"],
                    "LinkedEntity",
                )
                .required()
                .create_only(),
                picklist("ShareType", "Share Type", &["V", "C", "I"]).defaults_to("V"),
                picklist(
                    "Visibility",
                    "Visibility",
                    &["AllUsers", "InternalUsers", "SharedUsers"],
                )
                .defaults_to("AllUsers"),
            ],
        ),
        object(
            "Task",
            "Task",
            "Tasks",
            "00T",
            true,
            vec![
                f("Subject", "Subject", Kind::Combobox, 255),
                picklist(
                    "Status",
                    "Status",
                    &[
                        "Not Started",
                        "In Progress",
                        "Completed",
                        "Waiting on someone else",
                        "Deferred",
                    ],
                )
                .defaults_to("Not Started"),
                picklist("Priority", "Priority", &["High", "Normal", "Low"]).defaults_to("Normal"),
                f("ActivityDate", "Due Date Only", Kind::Date, 0),
                reference("WhoId", "Name ID", &["Contact"], "Who"),
                reference(
                    "WhatId",
                    "Related To ID",
                    &["Account", "Opportunity"],
                    "What",
                ),
                // Derived: the account of what it is related to, else of its contact.
                reference("AccountId", "Account ID", &["Account"], "Account").read_only(),
                f("Description", "Description", Kind::Textarea, 32000),
                f("IsClosed", "Closed", Kind::Boolean, 0).read_only(),
                f("IsArchived", "Archived", Kind::Boolean, 0).read_only(),
                picklist("Type", "Type", &["Call", "Email", "Meeting", "Other"]),
                text("Helpdesk_Ticket_Id__c", "Helpdesk Ticket Id", 40),
            ],
        ),
        object(
            "Event",
            "Event",
            "Events",
            "00U",
            true,
            vec![
                f("Subject", "Subject", Kind::Combobox, 255),
                f("StartDateTime", "Start Date Time", Kind::DateTime, 0),
                f("EndDateTime", "End Date Time", Kind::DateTime, 0),
                f("ActivityDate", "Due Date Only", Kind::Date, 0),
                f("DurationInMinutes", "Duration", Kind::Int, 0),
                f("IsAllDayEvent", "All-Day Event", Kind::Boolean, 0),
                text("Location", "Location", 255),
                picklist("ShowAs", "Show Time As", &["Busy", "OutOfOffice", "Free"]),
                f("IsPrivate", "Private", Kind::Boolean, 0),
                reference("WhoId", "Name ID", &["Contact"], "Who"),
                reference(
                    "WhatId",
                    "Related To ID",
                    &["Account", "Opportunity"],
                    "What",
                ),
                reference("AccountId", "Account ID", &["Account"], "Account").read_only(),
                f("Description", "Description", Kind::Textarea, 32000),
                f("IsArchived", "Archived", Kind::Boolean, 0).read_only(),
                // An invitee's copy of an event on their own calendar (`SimHandle::invite`).
                f("IsChild", "Is Child", Kind::Boolean, 0).read_only(),
                text("Helpdesk_Ticket_Id__c", "Helpdesk Ticket Id", 40),
            ],
        ),
        object(
            "User",
            "User",
            "Users",
            "005",
            false,
            vec![
                text("Username", "Username", 80).required(),
                text("FirstName", "First Name", 40),
                text("LastName", "Last Name", 80).required(),
                text("Name", "Full Name", 121).read_only(),
                f("Email", "Email", Kind::Email, 128).required(),
                text("Alias", "Alias", 8),
                Field {
                    nillable: false,
                    ..f("IsActive", "Active", Kind::Boolean, 0)
                },
                text("Helpdesk_Agent_Id__c", "Helpdesk Agent Id", 40).external(),
            ],
        ),
    ]
}
