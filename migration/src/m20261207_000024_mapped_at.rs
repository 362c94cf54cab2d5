use sea_orm_migration::prelude::*;

/// When each field mapping was made: a record whose link was last agreed before then was
/// never agreed on that field, so a desk edit winning over it has no value there to send.
/// Mappings saved before this column, and the standard ones, were mapped from the start.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FieldMapping {
    Table,
    MappedAt,
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
                    .table(FieldMapping::Table)
                    .add_column(
                        ColumnDef::new(FieldMapping::MappedAt)
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
                    .table(FieldMapping::Table)
                    .drop_column(FieldMapping::MappedAt)
                    .take(),
            )
            .await
    }
}
