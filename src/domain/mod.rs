//! Tandem's vocabulary: validated values parsed at the boundary, and the enums the layers share.

mod desk;
mod email;
mod events;
mod permission;
mod salesforce_id;
mod sync;
mod text;
mod text_enum;
mod ticket;

pub use desk::{
    AccountFields, AccountInput, AccountPatch, CONTACT_EMAIL_LEN, Change, ContactFields,
    ContactInput, ContactPatch, EMPLOYEES_DIGITS, TicketFields, TicketInput, TicketPatch,
};
pub use email::Email;
pub use entity::{AccountId, AgentId, ContactId, ProfileId, TicketId};
pub use events::{DeskAction, DeskEntity, DeskEvent};
pub use permission::{PermissionItem, Permissions, SalesforcePanel};
pub use salesforce_id::SalesforceId;
pub use sync::{
    Direction, FailureReason, FirstSync, IntegrationStatus, Module, RetryPolicy, SyncType,
};
pub use text::{Name, OptionalText, fold, search_term, trim as trim_invisible};
pub(crate) use text_enum::text_enum;
pub use ticket::{TicketPriority, TicketStatus};

/// Input that failed validation, naming the field a person must fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Names the record the message is about, where a write covers several.
    pub fn about(mut self, record: impl std::fmt::Display) -> Self {
        self.message = format!("{record}: {}", self.message);
        self
    }

    /// Prefixes the field with its position, e.g. `input.email` or `contacts[3].email`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// A time to list from, held to the years both databases store and compare alike (1 to
/// 9999): PostgreSQL refuses a time before 4713 BC, and SQLite, comparing times as text,
/// would take a five-digit year for one before every stored time.
pub fn since(
    field: &str,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Invalid> {
    use chrono::Datelike;
    match at {
        Some(at) if !(1..=9999).contains(&at.year()) => Err(Invalid::new(
            field,
            format!(
                "{} is out of range: give a time in the years 1 to 9999",
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        )),
        _ => Ok(at),
    }
}
