//! Second phase of recipe loading: the deserialized files are checked for meaning (unknown
//! entities and fields, bad regexes, reference cycles) all at once, and turned into
//! `Recipe`s that cannot be invalid. The pipeline never re-checks what is proven here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;

use super::diagnostic::{suggest, Diagnostic, SourceMap};
use super::files::*;
use super::RecipeError;

/// A field ready to be planned.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub crm_name: String,
    pub input: FieldInput,
    pub kind: FieldType,
    pub required: bool,
    pub clean: Vec<CleanStep>,
    /// (lower-cased key, value), longest first is irrelevant: keys are exact after folding.
    pub map: Vec<(String, String)>,
    pub unmapped: Unmapped,
    pub default: Option<String>,
    pub formats: Vec<String>,
    /// For `decimal` fields: (total digits, decimals), as PostgreSQL's `NUMERIC(p,s)`.
    pub decimal: Option<DecimalSpec>,
    pub reference: Option<Reference>,
    pub create_only: bool,
}

/// Digits of an exact decimal field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalSpec {
    pub precision: usize,
    pub scale: usize,
}

impl DecimalSpec {
    /// Cents, and up to 10^16 before them: every amount the export contract describes.
    pub const DEFAULT: DecimalSpec = DecimalSpec {
        precision: 18,
        scale: 2,
    };
    /// polars (and parquet) hold decimals in 128 bits: 38 digits.
    pub const MAX_PRECISION: usize = 38;
}

#[derive(Debug, Clone)]
pub enum FieldInput {
    Column(String),
    Extract {
        column: String,
        pattern: String,
        group: usize,
    },
}

impl FieldInput {
    pub fn column(&self) -> &str {
        match self {
            FieldInput::Column(c) => c,
            FieldInput::Extract { column, .. } => column,
        }
    }
}

/// A link to another entity's ID, normalised the way that entity normalises its IDs.
#[derive(Debug, Clone)]
pub struct Reference {
    pub entity: String,
    pub id: IdSpec,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub action: RuleAction,
    pub field: String,
    pub condition: Condition,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum Condition {
    Equals(String),
    NotEquals(String),
    OneOf(Vec<String>),
    IsEmpty(bool),
    Matches(String),
    LessThan(f64),
    GreaterThan(f64),
}

/// One entity's compiled recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub entity: String,
    pub file: PathBuf,
    pub crm_object: String,
    pub crm_id_property: String,
    pub source: SourceSpec,
    pub id: IdSpec,
    pub delete_policy: DeletePolicy,
    pub max_delete_share: f64,
    pub fields: Vec<Field>,
    pub rules: Vec<Rule>,
}

impl Recipe {
    /// Source columns the reader must find; missing ones make the file unreadable as this entity.
    pub fn required_columns(&self) -> Vec<&str> {
        let mut cols = vec![self.id.column.as_str()];
        for f in &self.fields {
            if f.required && !cols.contains(&f.input.column()) {
                cols.push(f.input.column());
            }
        }
        cols
    }

    /// Every source column the recipe reads (ID first).
    pub fn source_columns(&self) -> Vec<&str> {
        let mut cols = vec![self.id.column.as_str()];
        for f in &self.fields {
            if !cols.contains(&f.input.column()) {
                cols.push(f.input.column());
            }
        }
        cols
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// All recipes of a workspace, in load order (parents before children).
#[derive(Debug, Clone)]
pub struct Recipes {
    pub dir: PathBuf,
    pub pipeline: PipelineFile,
    pub entities: Vec<Recipe>,
}

impl Recipes {
    pub fn get(&self, entity: &str) -> Option<&Recipe> {
        self.entities.iter().find(|r| r.entity == entity)
    }
}

pub(super) struct Parsed {
    pub path: PathBuf,
    pub text: String,
    pub file: RecipeFile,
}

/// Checks every parsed recipe against the others and returns them in dependency order.
pub(super) fn compile(
    dir: &Path,
    pipeline: PipelineFile,
    parsed: Vec<Parsed>,
    broken: &HashSet<String>,
    mut diags: Vec<Diagnostic>,
) -> Result<Recipes, RecipeError> {
    let ids: HashMap<String, IdSpec> = parsed
        .iter()
        .map(|p| (p.file.entity.get_ref().clone(), p.file.id.clone()))
        .collect();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    // Effective CRM object, folded (SQLite table names ignore case) -> (entity, file).
    let mut crm_objects: HashMap<String, (String, PathBuf)> = HashMap::new();
    let mut recipes = Vec::new();
    for p in &parsed {
        let map = SourceMap {
            file: &p.path,
            text: &p.text,
        };
        let entity = p.file.entity.get_ref().clone();
        let duplicate = seen.insert(entity.clone(), p.path.clone());
        if let Some(other) = &duplicate {
            diags.push(map.at(
                p.file.entity.span(),
                Some("entity"),
                format!("entity `{entity}` is also defined in {}", other.display()),
            ));
        }
        if !valid_ident(&entity) {
            diags.push(map.at(
                p.file.entity.span(),
                Some("entity"),
                "entity names are lower-case letters, digits and `_`".into(),
            ));
        } else if let Some(why) = reserved_entity(&entity) {
            diags.push(map.at(
                p.file.entity.span(),
                Some("entity"),
                format!("entity name `{entity}` is reserved: {why}"),
            ));
        } else if entity.chars().count() > MAX_ENTITY_CHARS {
            diags.push(map.at(
                p.file.entity.span(),
                Some("entity"),
                format!(
                    "entity name `{entity}` is longer than {MAX_ENTITY_CHARS} characters, the most \
                     an Excel sheet name (its sheet in staging.xlsx) can hold"
                ),
            ));
        }
        let (crm_object, crm_span) = match &p.file.crm_object {
            Some(o) => (o.get_ref().clone(), o.span()),
            None => (entity.clone(), p.file.entity.span()),
        };
        if crm_object.trim().is_empty() {
            diags.push(map.at(
                crm_span.clone(),
                Some("crm_object"),
                "`crm_object` is empty; leave it out to use the entity name".into(),
            ));
        } else if duplicate.is_none() {
            match crm_objects.get(&crm_object.to_lowercase()) {
                Some((other_entity, other_file)) => diags.push(map.at(
                    crm_span,
                    Some("crm_object"),
                    format!(
                        "CRM object `{crm_object}` of entity `{entity}` ({}) is also the CRM \
                         object of entity `{other_entity}` ({}): their rows would mix in one \
                         CRM table; give one of them its own `crm_object`",
                        p.path.display(),
                        other_file.display()
                    ),
                )),
                None => {
                    crm_objects.insert(crm_object.to_lowercase(), (entity.clone(), p.path.clone()));
                }
            }
        }
        recipes.push(compile_one(p, &map, &ids, broken, &pipeline, &mut diags));
    }
    let order = match load_order(&parsed) {
        Ok(order) => order,
        Err(d) => {
            diags.push(*d);
            Vec::new()
        }
    };
    if !diags.is_empty() {
        return Err(RecipeError::Invalid(diags));
    }
    let mut by_name: BTreeMap<String, Recipe> =
        recipes.into_iter().map(|r| (r.entity.clone(), r)).collect();
    let entities = order
        .into_iter()
        .filter_map(|e| by_name.remove(&e))
        .collect();
    Ok(Recipes {
        dir: dir.to_path_buf(),
        pipeline,
        entities,
    })
}

/// Names `staging.sqlite` and `staging.xlsx` use for their own tables and sheets: an
/// entity with one of them would replace (or collide with) staging's bookkeeping. Kept in
/// step with `src/stage/staging_db.rs` (`rejects`, its index `rejects_by_run`, `runs`, the
/// per-entity hash table `_staged_<entity>` and the tokens of their cached copies,
/// `staged_hash_tokens`) and `src/stage/workbook.rs` (`rejects`, `summary`); SQLite itself
/// reserves `sqlite_*`.
pub const RESERVED_ENTITIES: [&str; 5] = [
    "rejects",
    "rejects_by_run",
    "runs",
    "summary",
    "staged_hash_tokens",
];
/// Name prefixes reserved the same way (see `RESERVED_ENTITIES`).
pub const RESERVED_ENTITY_PREFIXES: [&str; 2] = ["_staged_", "sqlite_"];
/// Longest entity name: its sheet in staging.xlsx, which Excel limits to 31 characters.
/// (Staging cuts longer names, so two long entities with one prefix would share a sheet.)
pub const MAX_ENTITY_CHARS: usize = 31;
/// Columns every CRM table has besides the recipe's (`src/sinks`): no field may take them.
pub const RESERVED_CRM_COLUMNS: [&str; 5] = [
    "id",
    "_created_run",
    "_updated_run",
    "_deleted",
    "_deleted_run",
];

/// Why `entity` cannot be an entity name, if it is one staging keeps for itself.
fn reserved_entity(entity: &str) -> Option<String> {
    if RESERVED_ENTITIES.contains(&entity) {
        return Some(format!(
            "staging uses `{entity}` for its own table or sheet; rename the entity (its CRM \
             object can keep the name with `crm_object = \"{entity}\"`)"
        ));
    }
    RESERVED_ENTITY_PREFIXES
        .iter()
        .find(|p| entity.starts_with(*p))
        .map(|p| format!("names starting with `{p}` are staging's or SQLite's own tables"))
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with('_')
}

/// The digits of a `decimal` field; `scale`/`precision` on another type, or out of range, is
/// reported at the key (and the field falls back to the default so the rest still compiles).
fn decimal_spec(
    spec: &FieldSpec,
    name: &str,
    span: &std::ops::Range<usize>,
    map: &SourceMap,
    diags: &mut Vec<Diagnostic>,
) -> Option<DecimalSpec> {
    let keys = [("scale", &spec.scale), ("precision", &spec.precision)];
    if spec.kind != FieldType::Decimal {
        for (key, value) in keys {
            if let Some(v) = value {
                diags.push(map.at(
                    v.span(),
                    Some(key),
                    format!(
                        "`{key}` only applies to decimal fields (`{name}` is {})",
                        spec.kind.as_str()
                    ),
                ));
            }
        }
        return None;
    }
    let default = DecimalSpec::DEFAULT;
    let precision = spec
        .precision
        .as_ref()
        .map_or(default.precision as i64, |p| *p.get_ref());
    let scale = spec
        .scale
        .as_ref()
        .map_or(default.scale as i64, |s| *s.get_ref());
    let max = DecimalSpec::MAX_PRECISION as i64;
    let problem = if !(1..=max).contains(&precision) {
        Some((
            "precision",
            format!("field `{name}`: precision {precision} is not between 1 and {max} digits"),
        ))
    } else if !(0..=precision).contains(&scale) {
        Some((
            "scale",
            format!(
                "field `{name}`: scale {scale} is not between 0 and its precision ({precision})"
            ),
        ))
    } else {
        None
    };
    match problem {
        Some((key, message)) => {
            let at = match key {
                "scale" => spec.scale.as_ref().map(|s| s.span()),
                _ => spec.precision.as_ref().map(|p| p.span()),
            };
            diags.push(map.at(at.unwrap_or(span.clone()), Some(key), message));
            Some(default)
        }
        None => Some(DecimalSpec {
            precision: precision as usize,
            scale: scale as usize,
        }),
    }
}

fn compile_one(
    p: &Parsed,
    map: &SourceMap,
    ids: &HashMap<String, IdSpec>,
    broken: &HashSet<String>,
    pipeline: &PipelineFile,
    diags: &mut Vec<Diagnostic>,
) -> Recipe {
    let f = &p.file;
    let is_xml = f
        .source
        .files
        .iter()
        .any(|n| n.to_lowercase().ends_with(".xml"));
    if is_xml && f.source.xml.is_none() {
        diags.push(map.at(
            f.entity.span(),
            Some("source.xml"),
            "an XML source needs [source.xml] with `record` (and `id_attribute`)".into(),
        ));
    }
    if !["auto", ";", ",", "\t", "|"].contains(&f.source.delimiter.as_str()) {
        diags.push(map.at(
            f.entity.span(),
            Some("source.delimiter"),
            format!(
                "delimiter `{}` is not one of auto, `;`, `,`, tab, `|`",
                f.source.delimiter
            ),
        ));
    }
    let mut fields: Vec<Field> = Vec::new();
    for spec in &f.fields {
        let name = spec.name.get_ref().clone();
        let span = spec.name.span();
        if !valid_ident(&name) || name == "id" {
            diags.push(map.at(
                span.clone(),
                Some("name"),
                format!("field name `{name}` must be lower-case letters, digits and `_`, not `id`, not starting with `_`"),
            ));
        }
        let twice = fields.iter().any(|x| x.name == name);
        if twice {
            diags.push(map.at(
                span.clone(),
                Some("name"),
                format!("field `{name}` is defined twice"),
            ));
        }
        let input = match (&spec.from, &spec.extract) {
            (Some(from), None) => FieldInput::Column(from.get_ref().clone()),
            (None, Some(ex)) => {
                let group = ex.group.as_ref().map(|g| *g.get_ref()).unwrap_or(1);
                match Regex::new(ex.pattern.get_ref()) {
                    Err(e) => diags.push(map.at(
                        ex.pattern.span(),
                        Some("extract.pattern"),
                        format!("invalid regex: {e}"),
                    )),
                    // captures_len counts group 0, the whole match.
                    Ok(re) if group >= re.captures_len() => {
                        let groups = re.captures_len() - 1;
                        let mut d = map.at(
                            ex.group
                                .as_ref()
                                .map(|g| g.span())
                                .unwrap_or_else(|| ex.pattern.span()),
                            Some("extract.group"),
                            format!(
                                "field `{name}` extracts group {group} but the pattern has \
                                 {groups} capture group(s): the field would always be empty"
                            ),
                        );
                        d.help = Some(if groups == 0 {
                            "put the part to keep in parentheses, e.g. '^([^,]+),'".into()
                        } else {
                            format!("use a group from 1 to {groups} (0 is the whole match)")
                        });
                        diags.push(d);
                    }
                    Ok(_) => {}
                }
                FieldInput::Extract {
                    column: ex.from.get_ref().clone(),
                    pattern: ex.pattern.get_ref().clone(),
                    group,
                }
            }
            _ => {
                diags.push(map.at(
                    span.clone(),
                    Some("from"),
                    format!("field `{name}` needs exactly one of `from` or `extract`"),
                ));
                FieldInput::Column(String::new())
            }
        };
        let reference = spec.references.as_ref().and_then(|r| {
            let target = r.get_ref();
            match ids.get(target) {
                Some(id) => Some(Reference {
                    entity: target.clone(),
                    id: id.clone(),
                }),
                // Its own file is broken and says so; this would be a follow-on.
                None if broken.contains(target) => None,
                None => {
                    let mut d = map.at(
                        r.span(),
                        Some("references"),
                        format!("field `{name}` references unknown entity `{target}`"),
                    );
                    d.help = suggest(target, ids.keys().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"));
                    diags.push(d);
                    None
                }
            }
        });
        let formats = match (spec.kind, &spec.formats) {
            (FieldType::Date | FieldType::Datetime, Some(fm)) if !fm.is_empty() => fm.clone(),
            (FieldType::Date, _) => vec!["%d/%m/%Y".into(), "%d/%m/%Y %H:%M".into()],
            (FieldType::Datetime, _) => vec![
                "%d/%m/%Y %H:%M:%S".into(),
                "%d/%m/%Y %H:%M".into(),
                "%d/%m/%Y".into(),
            ],
            (_, Some(_)) => {
                diags.push(map.at(
                    span.clone(),
                    Some("formats"),
                    format!(
                        "`formats` only applies to date and datetime fields (`{name}` is {})",
                        spec.kind.as_str()
                    ),
                ));
                Vec::new()
            }
            _ => Vec::new(),
        };
        let decimal = decimal_spec(spec, &name, &span, map, diags);
        let crm_name = spec
            .crm
            .as_ref()
            .map(|c| c.get_ref().clone())
            .unwrap_or_else(|| name.clone());
        let crm_span = spec.crm.as_ref().map(|c| c.span()).unwrap_or(span.clone());
        if crm_name.trim().is_empty() {
            diags.push(map.at(
                crm_span,
                Some("crm"),
                format!(
                    "field `{name}` has an empty `crm` column name; leave it out to use `{name}`"
                ),
            ));
        } else if let Some(r) = RESERVED_CRM_COLUMNS
            .iter()
            .find(|r| r.eq_ignore_ascii_case(&crm_name))
        {
            diags.push(map.at(
                crm_span,
                Some("crm"),
                format!("field `{name}` writes CRM column `{crm_name}`, which every CRM table has for itself (`{r}`)"),
            ));
        } else if let Some(other) = fields
            .iter()
            .find(|x| !twice && x.crm_name.eq_ignore_ascii_case(&crm_name))
        {
            diags.push(map.at(
                crm_span,
                Some("crm"),
                format!(
                    "field `{name}` writes CRM column `{crm_name}`, as field `{}` does: one \
                     column cannot hold both",
                    other.name
                ),
            ));
        }
        fields.push(Field {
            crm_name,
            name,
            input,
            kind: spec.kind,
            required: spec.required,
            clean: spec.clean.clone(),
            map: spec
                .map
                .as_ref()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            unmapped: spec.unmapped,
            default: spec.default.clone(),
            formats,
            decimal,
            reference,
            create_only: spec.create_only || spec.crm_owned,
        });
    }
    let mut rules = Vec::new();
    let mut rule_names: Vec<&str> = Vec::new();
    for r in &f.rules {
        let rule_name = r.name.get_ref();
        if rule_names.contains(&rule_name.as_str()) {
            diags.push(map.at(
                r.name.span(),
                Some("name"),
                format!(
                    "rule `{rule_name}` is defined twice: rejects name their rule \
                     (`rule.{rule_name}`), so rule names are unique in a recipe"
                ),
            ));
        }
        rule_names.push(rule_name);
        let field = r.field.get_ref().clone();
        if !fields.iter().any(|x| x.name == field) {
            let mut d = map.at(
                r.field.span(),
                Some("field"),
                format!("rule `{rule_name}` looks at unknown field `{field}`"),
            );
            d.help = suggest(&field, fields.iter().map(|x| x.name.as_str()))
                .map(|s| format!("did you mean `{s}`?"));
            diags.push(d);
        }
        let mut conds = Vec::new();
        if let Some(v) = &r.equals {
            conds.push(Condition::Equals(v.clone()));
        }
        if let Some(v) = &r.not_equals {
            conds.push(Condition::NotEquals(v.clone()));
        }
        if let Some(v) = &r.one_of {
            conds.push(Condition::OneOf(v.clone()));
        }
        if let Some(v) = r.is_empty {
            conds.push(Condition::IsEmpty(v));
        }
        if let Some(v) = &r.matches {
            if let Err(e) = Regex::new(v) {
                diags.push(map.at(
                    r.field.span(),
                    Some("matches"),
                    format!("invalid regex: {e}"),
                ));
            }
            conds.push(Condition::Matches(v.clone()));
        }
        if let Some(v) = r.less_than {
            conds.push(Condition::LessThan(v));
        }
        if let Some(v) = r.greater_than {
            conds.push(Condition::GreaterThan(v));
        }
        if conds.len() != 1 {
            diags.push(map.at(
                r.field.span(),
                Some("rule"),
                format!(
                    "rule `{rule_name}` needs exactly one condition (equals, not_equals, in, is_empty, matches, less_than, greater_than), found {}",
                    conds.len()
                ),
            ));
            continue;
        }
        rules.push(Rule {
            message: r
                .message
                .clone()
                .unwrap_or_else(|| format!("row matches rule `{rule_name}`")),
            name: rule_name.clone(),
            action: r.action,
            field,
            condition: conds.remove(0),
        });
    }
    Recipe {
        entity: f.entity.get_ref().clone(),
        file: p.path.clone(),
        crm_object: f
            .crm_object
            .as_ref()
            .map(|o| o.get_ref().clone())
            .unwrap_or_else(|| f.entity.get_ref().clone()),
        crm_id_property: f
            .crm_id_property
            .clone()
            .unwrap_or_else(|| "dropsync_id".to_string()),
        source: f.source.clone(),
        id: f.id.clone(),
        delete_policy: f.deletes.policy,
        max_delete_share: f
            .deletes
            .max_share
            .unwrap_or(pipeline.guard.max_delete_share),
        fields,
        rules,
    }
}

/// Topological order of entities by their references (parents first), ties broken by name
/// so the order is the same on every machine. A cycle is an error that names its members.
fn load_order(parsed: &[Parsed]) -> Result<Vec<String>, Box<Diagnostic>> {
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in parsed {
        let e = p.file.entity.get_ref().clone();
        let targets: Vec<String> = p
            .file
            .fields
            .iter()
            .filter_map(|f| f.references.as_ref().map(|r| r.get_ref().clone()))
            .filter(|t| *t != e && parsed.iter().any(|q| q.file.entity.get_ref() == t))
            .collect();
        deps.entry(e).or_default().extend(targets);
    }
    let mut order = Vec::new();
    let mut left = deps.clone();
    while !left.is_empty() {
        let ready: Option<String> = left
            .iter()
            .find(|(_, ds)| ds.iter().all(|d| order.contains(d)))
            .map(|(e, _)| e.clone());
        match ready {
            Some(e) => {
                left.remove(&e);
                order.push(e);
            }
            None => {
                let members: Vec<&str> = left.keys().map(String::as_str).collect();
                let first = parsed
                    .iter()
                    .find(|p| left.contains_key(p.file.entity.get_ref()))
                    .expect("a left entity has a recipe");
                let map = SourceMap {
                    file: &first.path,
                    text: &first.text,
                };
                return Err(Box::new(map.at(
                    first.file.entity.span(),
                    Some("references"),
                    format!(
                        "references form a cycle among: {}; one of these links must go",
                        members.join(", ")
                    ),
                )));
            }
        }
    }
    Ok(order)
}
