use sea_orm_migration::prelude::*;

/// Creates sent to Salesforce whose answer has not been recorded yet. A create without an
/// external id cannot be repeated safely: when its answer is lost (a crash, a dropped
/// connection), the next round looks for what it made before anything is sent or read again.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PendingCreate {
    Table,
    Id,
    Module,
    DeskId,
    Sent,
    SentAt,
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
            .create_table(
                Table::create()
                    .table(PendingCreate::Table)
                    .col(
                        ColumnDef::new(PendingCreate::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PendingCreate::Module).string().not_null())
                    .col(
                        ColumnDef::new(PendingCreate::DeskId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PendingCreate::Sent).text().not_null())
                    .col(
                        ColumnDef::new(PendingCreate::SentAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pending_create_desk")
                    .table(PendingCreate::Table)
                    .col(PendingCreate::Module)
                    .col(PendingCreate::DeskId)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PendingCreate::Table).take())
            .await
    }
}
