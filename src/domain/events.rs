use chrono::{DateTime, Utc};

/// A committed change to a desk record, published to subscribers after the transaction ends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeskEvent {
    pub entity: DeskEntity,
    pub action: DeskAction,
    pub record_id: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DeskEntity {
    Contact,
    Account,
    Ticket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DeskAction {
    Created,
    Updated,
    Deleted,
    Restored,
    Purged,
}
