use sea_orm_migration::prelude::*;

use crate::keys::key;
use crate::m20261130_000009_name_keys::{rekey, rekey_where};

/// Keys made again composed, and with one Greek sigma (`keys::key`), where they were
/// lower-cased only: a name or email in decomposed form (as some systems store it) meets its
/// composed twin, and a Greek name ending in «Σ» is found by its first letters. The keys
/// failures waiting on rival matches are logged under are made again too, so that settling
/// a rival still wakes them.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        rekey(
            db,
            ("contact", "name_key"),
            "coalesce(first_name, '') || ' ' || last_name",
            key,
        )
        .await?;
        rekey(db, ("contact", "email_key"), "email", key).await?;
        rekey(db, ("account", "name_key"), "name", key).await?;
        // Other failures keep other things there (a Salesforce id, which has case).
        rekey_where(
            db,
            ("sync_failure", "match_key"),
            "match_key",
            "reason = 'MULTIPLE_MATCHES'",
            key,
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
