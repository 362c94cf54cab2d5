use sea_orm_migration::prelude::*;

/// An index of the resolved failures by when they were resolved: each round prunes those
/// older than the history window, and without it read every failure, open ones included,
/// while holding SQLite's writer.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_sync_failure_resolved ON sync_failure (resolved_at) \
                 WHERE resolved_at IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX idx_sync_failure_resolved")
            .await?;
        Ok(())
    }
}
