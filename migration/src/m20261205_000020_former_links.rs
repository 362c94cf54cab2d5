use sea_orm_migration::prelude::*;

/// The pairs an integration linked, kept when it is deleted, with the org they were made
/// in: connected to that org again, its first sync meets each Salesforce record with the
/// desk record it was linked to, where no key would (a contact without an email), instead
/// of making both again. Connected to another org, they are dropped.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FormerLink {
    Table,
    Module,
    SalesforceId,
    DeskId,
    OrgId,
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
                    .table(FormerLink::Table)
                    .col(ColumnDef::new(FormerLink::Module).string().not_null())
                    .col(ColumnDef::new(FormerLink::SalesforceId).string().not_null())
                    .col(ColumnDef::new(FormerLink::DeskId).big_integer().not_null())
                    .col(ColumnDef::new(FormerLink::OrgId).string().not_null())
                    .primary_key(
                        Index::create()
                            .col(FormerLink::Module)
                            .col(FormerLink::SalesforceId),
                    )
                    .take(),
            )
            .await?;
        // The first sync's export holds back the desk records former links name.
        manager
            .create_index(
                Index::create()
                    .name("idx_former_link_desk")
                    .table(FormerLink::Table)
                    .col(FormerLink::Module)
                    .col(FormerLink::DeskId)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(FormerLink::Table).take())
            .await
    }
}
