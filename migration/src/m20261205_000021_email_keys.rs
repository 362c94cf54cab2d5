use sea_orm_migration::prelude::*;

use crate::m20261130_000009_name_keys::{lowered, rekey};

/// Email keys as the gateway makes them. The first were made by the database's `lower()`,
/// which on SQLite (and PostgreSQL under the C locale) folds ASCII letters only: a contact
/// kept from then with «Jürgen.Ölm@…» never met its Salesforce twin by email.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rekey(
            manager.get_connection(),
            ("contact", "email_key"),
            "email",
            lowered,
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
