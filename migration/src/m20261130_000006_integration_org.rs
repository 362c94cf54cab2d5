use sea_orm_migration::prelude::*;

/// The Salesforce org a connection signed in to, so that connecting to another org starts
/// from a clean slate instead of following the first org's links and cursors.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Integration {
    Table,
    OrgId,
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
                    .table(Integration::Table)
                    .add_column(ColumnDef::new(Integration::OrgId).text().null())
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Integration::Table)
                    .drop_column(Integration::OrgId)
                    .take(),
            )
            .await
    }
}
