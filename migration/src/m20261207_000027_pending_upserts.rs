use sea_orm_migration::prelude::*;

/// Whether a create noted as pending went out as an upsert by desk id: such a create may be
/// sent again, and its record names the desk record it was made from.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PendingCreate {
    Table,
    Upsert,
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
                    .table(PendingCreate::Table)
                    .add_column(
                        ColumnDef::new(PendingCreate::Upsert)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PendingCreate::Table)
                    .drop_column(PendingCreate::Upsert)
                    .take(),
            )
            .await
    }
}
