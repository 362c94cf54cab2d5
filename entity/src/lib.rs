//! SeaORM entities for Tandem's tables, with typed ids.

pub mod account;
pub mod agent;
pub mod contact;
pub mod create_key;
pub mod field_mapping;
pub mod former_link;
pub mod ids;
pub mod integration;
pub mod outbox;
pub mod pending_create;
pub mod profile;
pub mod record_link;
pub mod sync_cursor;
pub mod sync_event;
pub mod sync_failure;
pub mod sync_history;
pub mod ticket;

pub use ids::{AccountId, AgentId, ContactId, ProfileId, TicketId};
