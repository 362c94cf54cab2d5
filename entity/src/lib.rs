//! SeaORM entities for Tandem's tables, with typed ids.

pub mod account;
pub mod agent;
pub mod contact;
pub mod ids;
pub mod profile;
pub mod ticket;

pub use ids::{AccountId, AgentId, ContactId, ProfileId, TicketId};
