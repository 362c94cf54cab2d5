use sea_orm_migration::prelude::*;

/// The sync event log: history entries, failures and status changes in one sequence, so a
/// subscriber can resume after the last event it saw.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncEvent {
    Table,
    Id,
    At,
    Kind,
    Module,
    Payload,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too: a crash part way must not leave the schema changed and
    /// the migration unrecorded, which the next start would trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncEvent::Table)
                    .col(
                        ColumnDef::new(SyncEvent::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncEvent::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncEvent::Kind).string().not_null())
                    .col(ColumnDef::new(SyncEvent::Module).string().null())
                    .col(ColumnDef::new(SyncEvent::Payload).text().not_null())
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sync_event_at")
                    .table(SyncEvent::Table)
                    .col(SyncEvent::At)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncEvent::Table).take())
            .await
    }
}
