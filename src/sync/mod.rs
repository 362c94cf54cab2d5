//! Use cases that join the desk store and Salesforce: the connection, field mappings, and
//! the sync engine.

mod integration;
pub mod mapping;
mod vault;

pub use integration::{Connect, ConnectAuth, Integrations, SyncError};
pub use mapping::Mapping;
pub use vault::{Vault, VaultError};
