use sea_orm_migration::prelude::*;

/// Indexed, normalised copies of the values records are first matched on: a contact's
/// email and an account's name, trimmed and lower-cased.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contact {
    Table,
    EmailKey,
}

#[derive(DeriveIden)]
enum Account {
    Table,
    NameKey,
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
                    .table(Contact::Table)
                    .add_column(ColumnDef::new(Contact::EmailKey).string().null())
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Account::Table)
                    .add_column(ColumnDef::new(Account::NameKey).string().null())
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE contact SET email_key = lower(trim(email)) WHERE email IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("UPDATE account SET name_key = lower(trim(name))")
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_contact_email_key")
                    .table(Contact::Table)
                    .col(Contact::EmailKey)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_account_name_key")
                    .table(Account::Table)
                    .col(Account::NameKey)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_account_name_key")
                    .table(Account::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_contact_email_key")
                    .table(Contact::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Account::Table)
                    .drop_column(Account::NameKey)
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Contact::Table)
                    .drop_column(Contact::EmailKey)
                    .take(),
            )
            .await?;
        Ok(())
    }
}
