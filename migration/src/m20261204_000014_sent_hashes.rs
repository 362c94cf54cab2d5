use sea_orm_migration::prelude::*;

/// The hash of the values an update is sending to a linked Salesforce record, noted before it
/// goes out and cleared with its answer: an update Salesforce made though its answer was lost
/// is then known for the sync's own when a pull reads it back, not taken for an edit made in
/// Salesforce after the desk's.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordLink {
    Table,
    SentHash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordLink::Table)
                    .add_column(ColumnDef::new(RecordLink::SentHash).string().null())
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordLink::Table)
                    .drop_column(RecordLink::SentHash)
                    .take(),
            )
            .await
    }
}
