use sea_orm_migration::prelude::*;

/// How far the sync event log has been pruned: a subscriber resuming after an id the log no
/// longer holds is told what it missed instead of being served from the oldest kept, and one
/// resuming after an id never given out is refused even when the log is empty.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncEventPruned {
    Table,
    Id,
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
                    .table(SyncEventPruned::Table)
                    .col(
                        ColumnDef::new(SyncEventPruned::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncEventPruned::Through)
                            .big_integer()
                            .not_null(),
                    )
                    .take(),
            )
            .await?;
        // What was pruned before is known only as far as the log's oldest kept event tells.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO sync_event_pruned (id, through) \
                 SELECT 1, COALESCE(MIN(id) - 1, 0) FROM sync_event",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncEventPruned::Table).take())
            .await
    }
}
