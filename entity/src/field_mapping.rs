use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "field_mapping")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub module: String,
    pub desk_field: String,
    pub salesforce_field: String,
    /// When it was made; `None` for a mapping made with the integration (a standard one).
    pub mapped_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
