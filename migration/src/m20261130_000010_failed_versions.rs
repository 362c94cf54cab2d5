use sea_orm_migration::prelude::*;

/// The version (`SystemModstamp`) of the Salesforce record a pull failed on: the polling
/// window reads recent records again every round, and the same version failing again is no
/// news — only a new version, or the failure's own retry, is tried again.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncFailure {
    Table,
    SalesforceModstamp,
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
                    .table(SyncFailure::Table)
                    .add_column(
                        ColumnDef::new(SyncFailure::SalesforceModstamp)
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
                    .table(SyncFailure::Table)
                    .drop_column(SyncFailure::SalesforceModstamp)
                    .take(),
            )
            .await
    }
}
