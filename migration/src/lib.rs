//! Schema migrations, written once for SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_desk;
mod m20261125_000002_integration;
mod m20261125_000003_match_keys;
mod m20261129_000004_sync_events;
mod m20261130_000005_link_fields;
mod m20261130_000006_integration_org;
mod m20261130_000007_unread_links;
mod m20261130_000008_kept_accounts;
mod m20261130_000009_name_keys;
mod m20261130_000010_failed_versions;
mod m20261130_000011_unused_indexes;
mod m20261202_000012_pending_creates;
mod m20261204_000013_failure_match_keys;
mod m20261204_000014_sent_hashes;
mod m20261205_000015_integration_epochs;
mod m20261205_000016_desk_tags;
mod m20261205_000017_pruned_events;
mod m20261205_000018_list_indexes;
mod m20261205_000019_resolved_failures;
mod m20261205_000020_former_links;
mod m20261205_000021_email_keys;
mod m20261206_000022_folded_keys;
mod m20261206_000023_purged_at;
mod m20261207_000024_mapped_at;
mod m20261207_000025_create_keys;
mod m20261207_000026_integration_users;
mod m20261207_000027_pending_upserts;
mod m20261207_000028_pruned_events_by_kind;
mod m20261207_000029_pending_create_orgs;

pub mod keys;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_desk::Migration),
            Box::new(m20261125_000002_integration::Migration),
            Box::new(m20261125_000003_match_keys::Migration),
            Box::new(m20261129_000004_sync_events::Migration),
            Box::new(m20261130_000005_link_fields::Migration),
            Box::new(m20261130_000006_integration_org::Migration),
            Box::new(m20261130_000007_unread_links::Migration),
            Box::new(m20261130_000008_kept_accounts::Migration),
            Box::new(m20261130_000009_name_keys::Migration),
            Box::new(m20261130_000010_failed_versions::Migration),
            Box::new(m20261130_000011_unused_indexes::Migration),
            Box::new(m20261202_000012_pending_creates::Migration),
            Box::new(m20261204_000013_failure_match_keys::Migration),
            Box::new(m20261204_000014_sent_hashes::Migration),
            Box::new(m20261205_000015_integration_epochs::Migration),
            Box::new(m20261205_000016_desk_tags::Migration),
            Box::new(m20261205_000017_pruned_events::Migration),
            Box::new(m20261205_000018_list_indexes::Migration),
            Box::new(m20261205_000019_resolved_failures::Migration),
            Box::new(m20261205_000020_former_links::Migration),
            Box::new(m20261205_000021_email_keys::Migration),
            Box::new(m20261206_000022_folded_keys::Migration),
            Box::new(m20261206_000023_purged_at::Migration),
            Box::new(m20261207_000024_mapped_at::Migration),
            Box::new(m20261207_000025_create_keys::Migration),
            Box::new(m20261207_000026_integration_users::Migration),
            Box::new(m20261207_000027_pending_upserts::Migration),
            Box::new(m20261207_000028_pruned_events_by_kind::Migration),
            Box::new(m20261207_000029_pending_create_orgs::Migration),
        ]
    }
}
