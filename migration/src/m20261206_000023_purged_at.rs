use sea_orm_migration::prelude::*;

/// When a linked desk record that was purged had been deleted: only a Salesforce update saved
/// after that brings it back, as one saved after a record went to the recycle bin does.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RecordLink {
    Table,
    DeskDeletedAt,
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
                    .add_column(
                        ColumnDef::new(RecordLink::DeskDeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RecordLink::Table)
                    .drop_column(RecordLink::DeskDeletedAt)
                    .take(),
            )
            .await
    }
}
