use sea_orm_migration::prelude::*;

/// Every field of a linked Salesforce record as the last pull read it, mapped or not, so that
/// a panel can show the whole Salesforce profile from the mirror.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordLink {
    Table,
    SalesforceFields,
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
            .alter_table(
                Table::alter()
                    .table(RecordLink::Table)
                    .add_column(ColumnDef::new(RecordLink::SalesforceFields).text().null())
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordLink::Table)
                    .drop_column(RecordLink::SalesforceFields)
                    .take(),
            )
            .await
    }
}
