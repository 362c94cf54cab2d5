use sea_orm_migration::prelude::*;

/// Drops two indexes no query reads: lookups and searches by email go through
/// `contact.email_key` and by account name through `account.name_key`, each with an index of
/// its own, so the indexes on the raw `email` and `name` only cost every write.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contact {
    Table,
    Email,
}

#[derive(DeriveIden)]
enum Account {
    Table,
    Name,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name) in [
            (Contact::Table.into_iden(), "idx_contact_email"),
            (Account::Table.into_iden(), "idx_account_name"),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_contact_email")
                    .table(Contact::Table)
                    .col(Contact::Email)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_account_name")
                    .table(Account::Table)
                    .col(Account::Name)
                    .take(),
            )
            .await
    }
}
