use sea_orm::entity::prelude::*;

/// A key an agent sent a desk create with, and the record that create made: the same create
/// sent again under it is answered with that record, not made twice.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "create_key")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub agent_id: i64,
    pub key: String,
    /// `contact`, `account` or `ticket`.
    pub entity: String,
    pub record_id: i64,
    /// The create's input, as JSON: the key sent with another is refused.
    pub request: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
