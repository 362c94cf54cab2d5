use sea_orm_migration::prelude::*;

/// The org a create in doubt was sent to: its note outlives the integration deleted and
/// connected again to that org (Salesforce may have made the record meanwhile), and goes
/// with a connection to another.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PendingCreate {
    Table,
    OrgId,
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
                    .add_column(ColumnDef::new(PendingCreate::OrgId).string().null())
                    .take(),
            )
            .await?;
        // Notes standing now were sent to the org connected now.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE pending_create SET org_id = (SELECT org_id FROM integration WHERE id = 1)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PendingCreate::Table)
                    .drop_column(PendingCreate::OrgId)
                    .take(),
            )
            .await
    }
}
