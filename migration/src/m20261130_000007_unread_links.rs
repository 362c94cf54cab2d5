use sea_orm_migration::prelude::*;

/// Links whose record was never read: each sync round looks for them, and without this index
/// the look reads every link, wide records and all, to find none.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A partial index, written the same for SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS record_link_unread ON record_link (module, id) \
                 WHERE salesforce_fields IS NULL",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS record_link_unread")
            .await
            .map(|_| ())
    }
}
