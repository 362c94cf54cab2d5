use sea_orm_migration::prelude::*;

/// The Salesforce user the integration signs in as (`005…`, from the sign-in's identity
/// URL): another user of the same org may see other records, and is told from the same
/// one even when its username cannot be read.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Integration {
    Table,
    UserId,
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
                    .table(Integration::Table)
                    .add_column(ColumnDef::new(Integration::UserId).string().null())
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Integration::Table)
                    .drop_column(Integration::UserId)
                    .take(),
            )
            .await
    }
}
