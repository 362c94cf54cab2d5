use sea_orm_migration::prelude::*;

/// The match key (a contact's email, an account's name, as records meet by) that a
/// `MULTIPLE_MATCHES` failure is about: when one of the records sharing it settles — merged
/// away, re-keyed, linked — the others that waited on the same key are tried again.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncFailure {
    Table,
    MatchKey,
}

const INDEX: &str = "idx_sync_failure_match_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SyncFailure::Table)
                    .add_column(ColumnDef::new(SyncFailure::MatchKey).string().null())
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(SyncFailure::Table)
                    .col(SyncFailure::MatchKey)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(SyncFailure::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SyncFailure::Table)
                    .drop_column(SyncFailure::MatchKey)
                    .take(),
            )
            .await
    }
}
