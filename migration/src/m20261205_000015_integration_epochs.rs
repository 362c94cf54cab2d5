use sea_orm_migration::prelude::*;

/// A number that changes whenever the connection is replaced, removed or remapped, saved
/// before the change waits for a running round: a round in another process on the database
/// sees it at its next batch and stops there, rather than running on to its end under the
/// connection being changed.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Integration {
    Table,
    Epoch,
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
                    .add_column(
                        ColumnDef::new(Integration::Epoch)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Integration::Table)
                    .drop_column(Integration::Epoch)
                    .take(),
            )
            .await
    }
}
