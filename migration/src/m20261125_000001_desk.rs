use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Profile {
    Table,
    Id,
    Name,
    IsAdmin,
    SalesforceVisible,
    ShowContacts,
    ShowAccounts,
    GrantInformation,
    GrantOpportunities,
    GrantNotes,
    GrantEvents,
    GrantTasks,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Agent {
    Table,
    Id,
    Name,
    Email,
    ProfileId,
    CreatedAt,
}

#[derive(DeriveIden)]
#[allow(clippy::enum_variant_names)]
enum Account {
    Table,
    Id,
    Name,
    Website,
    Phone,
    Industry,
    AccountType,
    Employees,
    AnnualRevenue,
    BillingStreet,
    BillingCity,
    BillingState,
    BillingPostalCode,
    BillingCountry,
    Description,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Contact {
    Table,
    Id,
    FirstName,
    LastName,
    Email,
    Phone,
    Mobile,
    Title,
    AccountId,
    MailingStreet,
    MailingCity,
    MailingState,
    MailingPostalCode,
    MailingCountry,
    Description,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Ticket {
    Table,
    Id,
    Subject,
    Description,
    Status,
    Priority,
    ContactId,
    AccountId,
    AssigneeId,
    CreatedAt,
    UpdatedAt,
}

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().null().take()
}

fn required_text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().not_null().take()
}

fn flag(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .boolean()
        .not_null()
        .default(false)
        .take()
}

fn timestamp(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn reference(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().null().take()
}

fn index(table: impl IntoIden, name: &str, col: impl IntoIden) -> IndexCreateStatement {
    Index::create().name(name).table(table).col(col).take()
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
                    .table(Profile::Table)
                    .col(id(Profile::Id))
                    .col(required_text(Profile::Name).unique_key().take())
                    .col(flag(Profile::IsAdmin))
                    .col(flag(Profile::SalesforceVisible))
                    .col(flag(Profile::ShowContacts))
                    .col(flag(Profile::ShowAccounts))
                    .col(flag(Profile::GrantInformation))
                    .col(flag(Profile::GrantOpportunities))
                    .col(flag(Profile::GrantNotes))
                    .col(flag(Profile::GrantEvents))
                    .col(flag(Profile::GrantTasks))
                    .col(timestamp(Profile::CreatedAt))
                    .col(timestamp(Profile::UpdatedAt))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Agent::Table)
                    .col(id(Agent::Id))
                    .col(required_text(Agent::Name))
                    .col(required_text(Agent::Email).unique_key().take())
                    .col(ColumnDef::new(Agent::ProfileId).big_integer().not_null())
                    .col(timestamp(Agent::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_profile")
                            .from(Agent::Table, Agent::ProfileId)
                            .to(Profile::Table, Profile::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Account::Table)
                    .col(id(Account::Id))
                    .col(required_text(Account::Name))
                    .col(text(Account::Website))
                    .col(text(Account::Phone))
                    .col(text(Account::Industry))
                    .col(text(Account::AccountType))
                    .col(ColumnDef::new(Account::Employees).integer().null())
                    .col(ColumnDef::new(Account::AnnualRevenue).double().null())
                    .col(text(Account::BillingStreet))
                    .col(text(Account::BillingCity))
                    .col(text(Account::BillingState))
                    .col(text(Account::BillingPostalCode))
                    .col(text(Account::BillingCountry))
                    .col(ColumnDef::new(Account::Description).text().null())
                    .col(timestamp(Account::CreatedAt))
                    .col(timestamp(Account::UpdatedAt))
                    .col(
                        ColumnDef::new(Account::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(Account::Table, "idx_account_name", Account::Name))
            .await?;
        manager
            .create_index(index(
                Account::Table,
                "idx_account_updated_at",
                Account::UpdatedAt,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Contact::Table)
                    .col(id(Contact::Id))
                    .col(text(Contact::FirstName))
                    .col(required_text(Contact::LastName))
                    .col(text(Contact::Email))
                    .col(text(Contact::Phone))
                    .col(text(Contact::Mobile))
                    .col(text(Contact::Title))
                    .col(reference(Contact::AccountId))
                    .col(text(Contact::MailingStreet))
                    .col(text(Contact::MailingCity))
                    .col(text(Contact::MailingState))
                    .col(text(Contact::MailingPostalCode))
                    .col(text(Contact::MailingCountry))
                    .col(ColumnDef::new(Contact::Description).text().null())
                    .col(timestamp(Contact::CreatedAt))
                    .col(timestamp(Contact::UpdatedAt))
                    .col(
                        ColumnDef::new(Contact::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_contact_account")
                            .from(Contact::Table, Contact::AccountId)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(Contact::Table, "idx_contact_email", Contact::Email))
            .await?;
        manager
            .create_index(index(
                Contact::Table,
                "idx_contact_account",
                Contact::AccountId,
            ))
            .await?;
        manager
            .create_index(index(
                Contact::Table,
                "idx_contact_updated_at",
                Contact::UpdatedAt,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Ticket::Table)
                    .col(id(Ticket::Id))
                    .col(required_text(Ticket::Subject))
                    .col(ColumnDef::new(Ticket::Description).text().null())
                    .col(required_text(Ticket::Status))
                    .col(required_text(Ticket::Priority))
                    .col(reference(Ticket::ContactId))
                    .col(reference(Ticket::AccountId))
                    .col(reference(Ticket::AssigneeId))
                    .col(timestamp(Ticket::CreatedAt))
                    .col(timestamp(Ticket::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ticket_contact")
                            .from(Ticket::Table, Ticket::ContactId)
                            .to(Contact::Table, Contact::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ticket_account")
                            .from(Ticket::Table, Ticket::AccountId)
                            .to(Account::Table, Account::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ticket_assignee")
                            .from(Ticket::Table, Ticket::AssigneeId)
                            .to(Agent::Table, Agent::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                Ticket::Table,
                "idx_ticket_contact",
                Ticket::ContactId,
            ))
            .await?;
        manager
            .create_index(index(Ticket::Table, "idx_ticket_status", Ticket::Status))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Ticket::Table.into_iden(),
            Contact::Table.into_iden(),
            Account::Table.into_iden(),
            Agent::Table.into_iden(),
            Profile::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
