use sea_orm_migration::prelude::*;

/// Indexes for the lists and lookups that walked whole tables: the recycle bins, tickets by
/// account, assignee and change, and the failures of one record or still open. The bins'
/// indexes hold binned rows only, in the lists' order, so live records (and the first sync's
/// inserts) pay nothing for them and SQLite takes them without statistics.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each index: its name and what it covers, as PostgreSQL and SQLite both write it.
const INDEXES: [(&str, &str); 8] = [
    (
        "idx_contact_binned",
        "contact (id) WHERE deleted_at IS NOT NULL",
    ),
    (
        "idx_account_binned",
        "account (id) WHERE deleted_at IS NOT NULL",
    ),
    ("idx_ticket_account", "ticket (account_id)"),
    ("idx_ticket_assignee", "ticket (assignee_id)"),
    ("idx_ticket_updated_at", "ticket (updated_at)"),
    ("idx_sync_failure_desk", "sync_failure (desk_id)"),
    (
        "idx_sync_failure_salesforce",
        "sync_failure (salesforce_id)",
    ),
    (
        "idx_sync_failure_open",
        "sync_failure (id) WHERE resolved_at IS NULL",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, covers) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {name} ON {covers}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }
}
