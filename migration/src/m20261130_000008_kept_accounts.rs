use sea_orm_migration::prelude::*;

/// The Salesforce account a linked contact stays in once its desk account is purged: deletes
/// do not cross, so the contact's pushes keep naming that account until the contact moves.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordLink {
    Table,
    KeptAccountId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too: a crash part way must not leave the column added and the
    /// migration unrecorded, which the next start would trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordLink::Table)
                    .add_column(ColumnDef::new(RecordLink::KeptAccountId).text().null())
                    .take(),
            )
            .await?;
        // Almost every link has none: a partial index finds the few a returning account takes
        // back without reading the rest.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS record_link_kept ON record_link (kept_account_id) \
                 WHERE kept_account_id IS NOT NULL",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS record_link_kept")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RecordLink::Table)
                    .drop_column(RecordLink::KeptAccountId)
                    .take(),
            )
            .await
    }
}
