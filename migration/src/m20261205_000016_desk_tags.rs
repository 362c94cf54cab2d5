use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

/// A tag drawn once for this desk's database, which the push writes before the desk id in
/// `Helpdesk_Id__c`: a Salesforce record that names a desk record names this desk's, not
/// one of another desk with the same ids (a staging desk connected to a sandbox copied from
/// production, or a desk started afresh on the same org).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeskTag {
    Table,
    Id,
    Tag,
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
                    .table(DeskTag::Table)
                    .col(
                        ColumnDef::new(DeskTag::Id)
                            .integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(DeskTag::Tag).string().not_null())
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        let random_hex = match db.get_database_backend() {
            DbBackend::Postgres => "substr(md5(random()::text || clock_timestamp()::text), 1, 8)",
            _ => "lower(hex(randomblob(4)))",
        };
        db.execute_unprepared(&format!(
            "INSERT INTO desk_tag (id, tag) VALUES (1, {random_hex})"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeskTag::Table).take())
            .await
    }
}
