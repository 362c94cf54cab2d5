use sea_orm_migration::prelude::*;

/// The keys desk creates were sent with (`idempotencyKey`): a create sent again under the
/// same key (its answer lost, and the client trying again) returns the record the first
/// made instead of making a second. Kept a day.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CreateKey {
    Table,
    Id,
    AgentId,
    Key,
    Entity,
    RecordId,
    Request,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CreateKey::Table)
                    .col(
                        ColumnDef::new(CreateKey::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(CreateKey::AgentId).big_integer().not_null())
                    .col(ColumnDef::new(CreateKey::Key).string().not_null())
                    .col(ColumnDef::new(CreateKey::Entity).string().not_null())
                    .col(ColumnDef::new(CreateKey::RecordId).big_integer().not_null())
                    .col(ColumnDef::new(CreateKey::Request).text().not_null())
                    .col(
                        ColumnDef::new(CreateKey::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_create_key_agent_key")
                    .table(CreateKey::Table)
                    .col(CreateKey::AgentId)
                    .col(CreateKey::Key)
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_create_key_created_at")
                    .table(CreateKey::Table)
                    .col(CreateKey::CreatedAt)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CreateKey::Table).take())
            .await
    }
}
