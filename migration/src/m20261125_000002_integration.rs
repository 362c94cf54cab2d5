use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Integration {
    Table,
    Id,
    Status,
    StatusReason,
    SyncType,
    LoginUrl,
    AuthKind,
    Username,
    ClientId,
    Secrets,
    InstanceUrl,
    FirstSync,
    LastSyncAt,
    ApiUsed,
    ApiMax,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FieldMapping {
    Table,
    Id,
    Module,
    DeskField,
    SalesforceField,
}

#[derive(DeriveIden)]
enum RecordLink {
    Table,
    Id,
    Module,
    DeskId,
    SalesforceId,
    SyncedHash,
    SalesforceModstamp,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Module,
    DeskId,
    EnqueuedAt,
}

#[derive(DeriveIden)]
enum SyncCursor {
    Table,
    Name,
    Modstamp,
    SalesforceId,
    DeskId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SyncHistory {
    Table,
    Id,
    At,
    Direction,
    Module,
    Added,
    Updated,
    Failed,
}

#[derive(DeriveIden)]
enum SyncFailure {
    Table,
    Id,
    At,
    Direction,
    Module,
    DeskId,
    SalesforceId,
    Reason,
    Message,
    Attempts,
    NextAttemptAt,
    ResolvedAt,
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
    ColumnDef::new(col).string().not_null().take()
}

fn optional_text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).string().null().take()
}

fn timestamp(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn optional_timestamp(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().take()
}

fn count(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).integer().not_null().default(0).take()
}

fn unique(table: impl IntoIden, name: &str, cols: [&'static str; 2]) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(table)
        .col(Alias::new(cols[0]))
        .col(Alias::new(cols[1]))
        .unique()
        .take()
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
                    .table(Integration::Table)
                    .col(
                        ColumnDef::new(Integration::Id)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(Integration::Status))
                    .col(optional_text(Integration::StatusReason))
                    .col(text(Integration::SyncType))
                    .col(text(Integration::LoginUrl))
                    .col(text(Integration::AuthKind))
                    .col(optional_text(Integration::Username))
                    .col(optional_text(Integration::ClientId))
                    .col(ColumnDef::new(Integration::Secrets).binary().null())
                    .col(optional_text(Integration::InstanceUrl))
                    .col(text(Integration::FirstSync))
                    .col(optional_timestamp(Integration::LastSyncAt))
                    .col(ColumnDef::new(Integration::ApiUsed).big_integer().null())
                    .col(ColumnDef::new(Integration::ApiMax).big_integer().null())
                    .col(timestamp(Integration::CreatedAt))
                    .col(timestamp(Integration::UpdatedAt))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FieldMapping::Table)
                    .col(id(FieldMapping::Id))
                    .col(text(FieldMapping::Module))
                    .col(text(FieldMapping::DeskField))
                    .col(text(FieldMapping::SalesforceField))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique(
                FieldMapping::Table,
                "ux_field_mapping_desk",
                ["module", "desk_field"],
            ))
            .await?;
        manager
            .create_index(unique(
                FieldMapping::Table,
                "ux_field_mapping_salesforce",
                ["module", "salesforce_field"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RecordLink::Table)
                    .col(id(RecordLink::Id))
                    .col(text(RecordLink::Module))
                    .col(ColumnDef::new(RecordLink::DeskId).big_integer().not_null())
                    .col(text(RecordLink::SalesforceId))
                    .col(text(RecordLink::SyncedHash))
                    .col(optional_timestamp(RecordLink::SalesforceModstamp))
                    .col(timestamp(RecordLink::CreatedAt))
                    .col(timestamp(RecordLink::UpdatedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(unique(
                RecordLink::Table,
                "ux_record_link_desk",
                ["module", "desk_id"],
            ))
            .await?;
        manager
            .create_index(unique(
                RecordLink::Table,
                "ux_record_link_salesforce",
                ["module", "salesforce_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(id(Outbox::Id))
                    .col(text(Outbox::Module))
                    .col(ColumnDef::new(Outbox::DeskId).big_integer().not_null())
                    .col(timestamp(Outbox::EnqueuedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(Outbox::Table, "idx_outbox_desk", Outbox::DeskId))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncCursor::Table)
                    .col(
                        ColumnDef::new(SyncCursor::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(optional_timestamp(SyncCursor::Modstamp))
                    .col(optional_text(SyncCursor::SalesforceId))
                    .col(ColumnDef::new(SyncCursor::DeskId).big_integer().null())
                    .col(timestamp(SyncCursor::UpdatedAt))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncHistory::Table)
                    .col(id(SyncHistory::Id))
                    .col(timestamp(SyncHistory::At))
                    .col(text(SyncHistory::Direction))
                    .col(text(SyncHistory::Module))
                    .col(count(SyncHistory::Added))
                    .col(count(SyncHistory::Updated))
                    .col(count(SyncHistory::Failed))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                SyncHistory::Table,
                "idx_sync_history_at",
                SyncHistory::At,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SyncFailure::Table)
                    .col(id(SyncFailure::Id))
                    .col(timestamp(SyncFailure::At))
                    .col(text(SyncFailure::Direction))
                    .col(text(SyncFailure::Module))
                    .col(ColumnDef::new(SyncFailure::DeskId).big_integer().null())
                    .col(optional_text(SyncFailure::SalesforceId))
                    .col(text(SyncFailure::Reason))
                    .col(ColumnDef::new(SyncFailure::Message).text().not_null())
                    .col(count(SyncFailure::Attempts))
                    .col(optional_timestamp(SyncFailure::NextAttemptAt))
                    .col(optional_timestamp(SyncFailure::ResolvedAt))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                SyncFailure::Table,
                "idx_sync_failure_reason",
                SyncFailure::Reason,
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SyncFailure::Table.into_iden(),
            SyncHistory::Table.into_iden(),
            SyncCursor::Table.into_iden(),
            Outbox::Table.into_iden(),
            RecordLink::Table.into_iden(),
            FieldMapping::Table.into_iden(),
            Integration::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).take())
                .await?;
        }
        Ok(())
    }
}
