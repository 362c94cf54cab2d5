use sea_orm::entity::prelude::*;

/// A persisted position: a pull watermark (SystemModstamp, Id) or a first-sync page position.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_cursor")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub modstamp: Option<DateTimeUtc>,
    pub salesforce_id: Option<String>,
    pub desk_id: Option<i64>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
