use sea_orm_migration::prelude::*;

use crate::keys::key;
use crate::m20261130_000009_name_keys::rekey_where;

/// Keys made again where the text holds a dotted «İ» (or an «I» with a combining dot), which
/// lower-casing leaves an «i» with a dot nothing composes (`keys::folded` now drops it): a
/// search for «istanbul» finds «İstanbul Lojistik», and accounts met by name meet across the
/// two spellings. Only rows holding the dot are read.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Text holding «İ», or a combining dot above (U+0307) however it came.
fn dotted(text: &str) -> String {
    format!("({text} LIKE '%\u{130}%' OR {text} LIKE '%\u{307}%')")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let name = "coalesce(first_name, '') || ' ' || last_name";
        rekey_where(db, ("contact", "name_key"), name, &dotted(name), key).await?;
        rekey_where(db, ("contact", "email_key"), "email", &dotted("email"), key).await?;
        rekey_where(db, ("account", "name_key"), "name", &dotted("name"), key).await?;
        // The keys failures waiting on rival matches are logged under, so that settling a
        // rival still wakes them.
        rekey_where(
            db,
            ("sync_failure", "match_key"),
            "match_key",
            &format!("reason = 'MULTIPLE_MATCHES' AND {}", dotted("match_key")),
            key,
        )
        .await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
