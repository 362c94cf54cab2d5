use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

/// Names as searches compare them: a contact's first and last name, and an account's name,
/// lower-cased by the gateway for every script. SQLite's `lower()` folds ASCII letters only,
/// so a search for «иван» never found «Иван» there; keys made once on write find both.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contact {
    Table,
    NameKey,
}

/// Rows recomputed per statement.
const CHUNK: usize = 500;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too: a crash part way must not leave the column added and the
    /// migration unrecorded, which the next start would trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Contact::Table)
                    .add_column(ColumnDef::new(Contact::NameKey).string().null())
                    .take(),
            )
            .await?;
        let db = manager.get_connection();
        rekey(
            db,
            ("contact", "name_key"),
            "coalesce(first_name, '') || ' ' || last_name",
            lowered,
        )
        .await?;
        rekey(db, ("account", "name_key"), "name", lowered).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Contact::Table)
                    .drop_column(Contact::NameKey)
                    .take(),
            )
            .await
    }
}

/// Keys as this migration made them: trimmed and lower-cased.
pub(crate) fn lowered(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Sets `key` of every row of `table` to `key_of` the value of `name` (an SQL expression),
/// as the gateway makes it (NULL stays NULL), a chunk of rows per statement.
pub(crate) async fn rekey<C: ConnectionTrait>(
    db: &C,
    (table, key): (&str, &str),
    name: &str,
    key_of: impl Fn(&str) -> String,
) -> Result<(), DbErr> {
    rekey_where(db, (table, key), name, "1 = 1", key_of).await
}

/// [`rekey`] for the rows `only` (an SQL condition) holds for.
pub(crate) async fn rekey_where<C: ConnectionTrait>(
    db: &C,
    (table, key): (&str, &str),
    name: &str,
    only: &str,
    key_of: impl Fn(&str) -> String,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let param = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    // Rows read are locked until the migration commits, so a gateway still running an older
    // version cannot change a name between its read and its key's write. On SQLite a write
    // comes first: a transaction that has read cannot wait for the write lock, only fail.
    let lock = match backend {
        DbBackend::Postgres => " FOR UPDATE",
        _ => {
            db.execute_unprepared(&format!("UPDATE {table} SET {key} = {key} WHERE 1 = 0"))
                .await?;
            ""
        }
    };
    let mut after = 0i64;
    loop {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT id, {name} AS name FROM {table} WHERE id > {} AND ({only}) ORDER BY id LIMIT {CHUNK}{lock}",
                    param(1)
                ),
                [after.into()],
            ))
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut cases = String::new();
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 2 + 2);
        let first: i64 = rows[0].try_get("", "id")?;
        for row in &rows {
            let id: i64 = row.try_get("", "id")?;
            let name: Option<String> = row.try_get("", "name")?;
            values.push(id.into());
            values.push(name.map(|name| key_of(&name)).into());
            cases.push_str(&format!(
                " WHEN {} THEN {}",
                param(values.len() - 1),
                param(values.len())
            ));
            after = id;
        }
        values.push(first.into());
        values.push(after.into());
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE {table} SET {key} = CASE id{cases} ELSE {key} END WHERE id BETWEEN {} AND {} AND ({only})",
                param(values.len() - 1),
                param(values.len())
            ),
            values,
        ))
        .await?;
    }
}
