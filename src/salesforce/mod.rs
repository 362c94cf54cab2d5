//! The Salesforce REST client: OAuth sessions, CRUD, SOQL paging, collections, replication
//! windows and limits, with retries only where a repeat cannot do harm.

mod client;
mod error;
mod session;
pub mod soql;
mod types;

pub use client::{
    COLLECTION_LIMIT, COMPOSITE_QUERIES, ClientConfig, ORG_CLOCK_SKEW, Rows, SalesforceClient,
};
pub use error::SalesforceError;
pub use session::{Credentials, OnRotation};
pub use types::{
    ApiUsage, Deleted, DeletedRecord, Describe, FieldDescribe, Record, RecordResult, Updated,
    UpsertResult, parse_datetime,
};
