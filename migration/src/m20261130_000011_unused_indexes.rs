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

/// Each dropped index: its table, its name and the one column it covered.
fn indexes() -> [(DynIden, &'static str, DynIden); 2] {
    [
        (
            Contact::Table.into_iden(),
            "idx_contact_email",
            Contact::Email.into_iden(),
        ),
        (
            Account::Table.into_iden(),
            "idx_account_name",
            Account::Name.into_iden(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, _) in indexes() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, column) in indexes() {
            manager
                .create_index(Index::create().name(name).table(table).col(column).take())
                .await?;
        }
        Ok(())
    }
}
