//! Describe global and per-object describe bodies built from the schema.

use serde_json::{Value as Json, json};

use crate::schema::{Field, Kind, ObjIdx, SObject, Schema};
use crate::store::Store;

pub fn global(version: &str) -> Json {
    let sobjects: Vec<Json> = Schema::get()
        .objects
        .iter()
        .map(|o| entry(o, version))
        .collect();
    json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects })
}

pub fn basic(object: &SObject, version: &str) -> Json {
    json!({ "objectDescribe": entry(object, version), "recentItems": [] })
}

fn entry(o: &SObject, version: &str) -> Json {
    let url = format!("/services/data/v{version}/sobjects/{}", o.name);
    let writable = o.name != "User";
    json!({
        "name": o.name, "label": o.label, "labelPlural": o.plural, "keyPrefix": o.prefix,
        "custom": false, "createable": writable, "updateable": true, "deletable": writable,
        "queryable": true, "retrieveable": true, "searchable": true, "replicateable": true,
        "undeletable": writable, "triggerable": true, "layoutable": true, "mergeable": false,
        "feedEnabled": false, "activateable": false, "customSetting": false, "deprecatedAndHidden": false,
        "hasSubtypes": false, "isSubtype": false, "isInterface": false, "mruEnabled": true,
        "idEnabled": true, "deepCloneable": false,
        "urls": {
            "sobject": url,
            "describe": format!("{url}/describe"),
            "rowTemplate": format!("{url}/{{ID}}"),
        },
    })
}

pub fn object(obj: ObjIdx, store: &Store, version: &str) -> Json {
    let o = Schema::get().object(obj);
    let mut body = entry(o, version);
    let fields: Vec<Json> = o
        .fields
        .iter()
        .enumerate()
        .filter(|(i, _)| store.has_field(obj, *i))
        .map(|(i, _)| {
            let f = store.field(obj, i);
            field(o, &f, store.external_id(obj, i), store.unique(obj, i))
        })
        .collect();
    let children: Vec<Json> = Schema::get()
        .objects
        .iter()
        .flat_map(|child| child.fields.iter().map(move |f| (child, f)))
        .filter(|(_, f)| {
            f.reference_to.contains(&o.name) && !f.name.ends_with("ById") && f.name != "OwnerId"
        })
        .map(|(child, f)| {
            json!({
                "childSObject": child.name, "field": f.name,
                "relationshipName": crate::schema::child_relationship_name(child.name, f.name),
                "cascadeDelete": false, "restrictedDelete": false, "deprecatedAndHidden": false,
                "junctionIdListNames": [], "junctionReferenceTo": [],
            })
        })
        .collect();
    body["fields"] = json!(fields);
    body["childRelationships"] = json!(children);
    body["recordTypeInfos"] = json!([]);
    body["supportedScopes"] = json!([{ "label": "All", "name": "everything" }]);
    body["actionOverrides"] = json!([]);
    body["namedLayoutInfos"] = json!([]);
    body["compactLayoutable"] = json!(true);
    body["searchLayoutable"] = json!(true);
    body["listviewable"] = Json::Null;
    body["lookupLayoutable"] = Json::Null;
    body["networkScopeFieldName"] = Json::Null;
    body
}

fn field(o: &SObject, f: &Field, external_id: bool, unique: bool) -> Json {
    let numeric = matches!(f.kind, Kind::Double | Kind::Currency | Kind::Percent);
    let scale = f.scale;
    let picklist: Vec<Json> = f
        .picklist
        .iter()
        .map(|v| json!({ "active": true, "defaultValue": f.default == Some(*v), "label": v, "value": v, "validFor": Json::Null }))
        .collect();
    let long_text = (f.kind == Kind::Textarea && f.length > 255) || f.kind == Kind::Base64;
    json!({
        "name": f.name,
        "label": f.label,
        "type": f.kind.api_name(),
        "soapType": f.kind.soap_type(),
        "length": if f.kind.is_text() || f.kind == Kind::Id || f.kind == Kind::Reference { f.length } else { 0 },
        "byteLength": if f.kind.is_text() { f.length * 3 } else { 18 },
        "precision": if numeric { f.digits } else { 0 },
        "scale": if numeric { scale } else { 0 },
        "digits": if f.kind == Kind::Int { f.digits } else { 0 },
        "nillable": f.nillable,
        "createable": f.createable,
        "updateable": f.updateable,
        "defaultedOnCreate": f.defaulted,
        "defaultValue": f.default,
        "custom": f.is_custom(),
        "externalId": external_id,
        "unique": unique,
        "caseSensitive": false,
        "idLookup": external_id || f.kind == Kind::Id || f.name == "Email",
        "referenceTo": f.reference_to,
        "relationshipName": f.relationship,
        "polymorphicForeignKey": f.reference_to.len() > 1,
        "cascadeDelete": false,
        "restrictedDelete": false,
        "namePointing": f.reference_to.len() > 1,
        "picklistValues": picklist,
        "restrictedPicklist": f.restricted,
        "dependentPicklist": false,
        // Formula and roll-up fields only; read-only standard fields such as Contact.Name or
        // Opportunity.IsClosed are not calculated in Salesforce, and no simulated field is.
        "calculated": false,
        "autoNumber": false,
        "filterable": f.filterable(),
        "sortable": !long_text,
        "groupable": !long_text && !numeric,
        "aggregatable": !long_text,
        "nameField": o.name_field().is_some_and(|n| n.name == f.name),
        "htmlFormatted": false,
        "encrypted": false,
        "deprecatedAndHidden": false,
        "permissionable": f.nillable && !f.is_required(),
        "inlineHelpText": Json::Null,
        "compoundFieldName": Json::Null,
        "extraTypeInfo": Json::Null,
    })
}
