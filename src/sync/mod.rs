//! Use cases that join the desk store and Salesforce: the connection, field mappings, and
//! the sync engine.

mod desk;
mod engine;
mod integration;
mod lost;
pub mod mapping;
mod pull;
mod push;
pub mod records;
mod vault;
pub mod worker;

pub use crate::store::{SyncEvent, SyncEventKind};
pub use engine::{Counts, EngineSettings, RoundReport, SyncEngine};
pub use integration::{Connect, ConnectAuth, Integrations, OrgView, SyncError};
pub use mapping::Mapping;
pub use push::{DESK_ID_FIELD, desk_ref};
pub use vault::{Vault, VaultError};
