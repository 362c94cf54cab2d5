use sea_orm_migration::prelude::*;

/// How far the sync event log has been pruned of each kind of event and module: a
/// subscriber following some kinds or modules only, resuming after the last event it was
/// given, has missed nothing when none of those went, however far the others were pruned.
/// The row `('*', '*')` holds how far the log was pruned before these were kept, which
/// nothing can tell apart any more.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncEventPrunedKind {
    Table,
    Kind,
    Module,
    Through,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncEventPrunedKind::Table)
                    .col(
                        ColumnDef::new(SyncEventPrunedKind::Kind)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncEventPrunedKind::Module)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncEventPrunedKind::Through)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(SyncEventPrunedKind::Kind)
                            .col(SyncEventPrunedKind::Module),
                    )
                    .take(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO sync_event_pruned_kind (kind, module, through) \
                 SELECT '*', '*', through FROM sync_event_pruned",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncEventPrunedKind::Table).take())
            .await
    }
}
