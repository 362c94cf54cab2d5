use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "profile")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: crate::ProfileId,
    #[sea_orm(unique)]
    pub name: String,
    pub is_admin: bool,
    pub salesforce_visible: bool,
    pub show_contacts: bool,
    pub show_accounts: bool,
    pub grant_information: bool,
    pub grant_opportunities: bool,
    pub grant_notes: bool,
    pub grant_events: bool,
    pub grant_tasks: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::agent::Entity")]
    Agent,
}

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
