//! The recipe file format as written by people (`recipes/<entity>.toml`) and the pipeline
//! config (`recipes/pipeline.toml`). Everything here is plain serde with
//! `deny_unknown_fields`, so a typo is an error with a location instead of a silently
//! ignored key; meaning is checked later by `compile`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// One entity's recipe: where its rows come from and how they become CRM fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeFile {
    /// Entity name; also the staging table, the sheet and (by default) the CRM object.
    pub entity: Spanned<String>,
    /// CRM object (table) name, when it differs from the entity name.
    pub crm_object: Option<Spanned<String>>,
    /// REST targets: the CRM property holding our ID (the upsert's `idProperty`).
    pub crm_id_property: Option<String>,
    pub source: SourceSpec,
    pub id: IdSpec,
    #[serde(default)]
    pub deletes: DeleteSpec,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldSpec>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleSpec>,
}

/// Which file in a drop holds the entity and how to read it when sniffing is not enough.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// File names or `*` patterns, matched case-insensitively; the first match wins.
    pub files: Vec<String>,
    /// `auto` (sniff: BOM, valid UTF-8, else Windows-1252), `utf-8` or `windows-1252`.
    #[serde(default)]
    pub encoding: EncodingSpec,
    /// `auto` or one of `;` `,` `\t` `|`.
    #[serde(default = "auto")]
    pub delimiter: String,
    /// How to find records in an XML export; required when a file ends in `.xml`.
    pub xml: Option<XmlSpec>,
    /// What a run does with a file whose columns drifted from this recipe (a column it reads
    /// missing or renamed): `warn` (default: report it, read what is there) or `quarantine`
    /// (set the file aside: the entity keeps its last state until the recipe is fixed).
    #[serde(default)]
    pub on_drift: OnDrift,
}

/// See [`SourceSpec::on_drift`]. A column only added never stops a file.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnDrift {
    #[default]
    Warn,
    Quarantine,
}

fn auto() -> String {
    "auto".to_string()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncodingSpec {
    #[default]
    Auto,
    #[serde(alias = "utf8")]
    Utf8,
    #[serde(alias = "cp1252", alias = "latin1")]
    Windows1252,
}

/// Streaming XML layout: one element per record, the ID in an attribute, fields as children.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmlSpec {
    /// Element name of one record, e.g. `Unidad`.
    pub record: String,
    /// Attribute of the record element that holds the ID; exposed as a column of that name.
    pub id_attribute: Option<String>,
}

/// The entity's unique ID column and how IDs compare.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdSpec {
    /// Source column (or XML attribute) holding the ID.
    pub column: String,
    /// Numeric IDs compare without leading zeros (`000123` = `123`), in references too.
    #[serde(default)]
    pub numeric: bool,
    /// Upper-case text IDs so `suc-03` and `SUC-03` match.
    #[serde(default)]
    pub uppercase: bool,
}

/// What to do in the CRM with rows whose ID disappeared from the snapshot.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSpec {
    #[serde(default)]
    pub policy: DeletePolicy,
    /// Hold deletes above this share of the entity's rows (overrides the pipeline guard).
    pub max_share: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeletePolicy {
    /// Leave the CRM row alone.
    Ignore,
    /// Mark the CRM row deleted (`_deleted = 1`); it comes back if the ID reappears.
    #[default]
    Soft,
    /// Remove the CRM row.
    Hard,
}

impl DeletePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletePolicy::Ignore => "ignore",
            DeletePolicy::Soft => "soft",
            DeletePolicy::Hard => "hard",
        }
    }
}

/// One target field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Target field name (staging column; CRM column unless `crm` says otherwise).
    pub name: Spanned<String>,
    /// Source column; exactly one of `from` and `extract` is given.
    pub from: Option<Spanned<String>>,
    /// Computed from another column with a regex capture group.
    pub extract: Option<ExtractSpec>,
    #[serde(default, rename = "type")]
    pub kind: FieldType,
    /// Empty or unparsable is a reject (`required` / `type.<type>`) instead of a warning.
    #[serde(default)]
    pub required: bool,
    /// Cleanup steps applied in order before typing.
    #[serde(default)]
    pub clean: Vec<CleanStep>,
    /// Value map applied after cleanup, matched ignoring case and surrounding spaces.
    pub map: Option<BTreeMap<String, String>>,
    /// A value not in `map`: `keep` it as is, or `warn` (warning `map.unknown`, value emptied).
    #[serde(default)]
    pub unmapped: Unmapped,
    /// Value used when the source is empty (written in the target type's own format).
    pub default: Option<String>,
    /// strptime formats for `date`/`datetime`; the first that parses wins.
    pub formats: Option<Vec<String>>,
    /// Decimals a `decimal` field keeps (default 2). A value with more is reported, never
    /// rounded.
    pub scale: Option<Spanned<i64>>,
    /// Total digits a `decimal` field holds, decimals included (default 18, at most 38).
    pub precision: Option<Spanned<i64>>,
    /// Entity whose ID this field holds; it is normalised like that entity's IDs.
    pub references: Option<Spanned<String>>,
    /// Written on insert only: never compared, never overwritten on update.
    #[serde(default)]
    pub create_only: bool,
    /// The CRM owns this field (people edit it there): dropsync gives it its first value on
    /// insert and never overwrites it, whatever the export says later.
    #[serde(default)]
    pub crm_owned: bool,
    /// CRM column name when it differs from `name`.
    pub crm: Option<Spanned<String>>,
}

/// `extract = { from = "Razón Social / Nombre", pattern = '^([^,]+),', group = 1 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractSpec {
    pub from: Spanned<String>,
    pub pattern: Spanned<String>,
    /// Capture group of `pattern` whose text becomes the value (default 1; 0 = whole match).
    pub group: Option<Spanned<usize>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    #[default]
    String,
    Integer,
    /// `1.234.567,89`: `.` thousands, `,` decimals.
    Decimal,
    Date,
    Datetime,
    /// `S/N`, `Si/No`, `1/0`, `true/false`.
    Boolean,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Boolean => "boolean",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CleanStep {
    Trim,
    Lower,
    Upper,
    /// Runs of white space (line breaks included) become one space.
    CollapseSpaces,
    /// Keep 0-9 only: CUIT/DNI, phones.
    DigitsOnly,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unmapped {
    #[default]
    Keep,
    Warn,
}

/// A business rule on the typed row: when the condition holds, reject or skip it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Named reason recorded in rejects (`rule.<name>`); unique within the recipe.
    pub name: Spanned<String>,
    pub action: RuleAction,
    /// Target field the condition looks at.
    pub field: Spanned<String>,
    pub equals: Option<String>,
    pub not_equals: Option<String>,
    #[serde(rename = "in")]
    pub one_of: Option<Vec<String>>,
    pub is_empty: Option<bool>,
    /// Regex that the (string) value matches.
    pub matches: Option<String>,
    pub less_than: Option<f64>,
    pub greater_than: Option<f64>,
    /// Free text shown as the reason.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Reject,
    Skip,
}

/// `recipes/pipeline.toml`: settings for the whole run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    #[serde(default)]
    pub guard: GuardSpec,
    #[serde(default)]
    pub staging: StagingSpec,
    /// Which CRM the run writes to (default: the embedded `crm.sqlite`).
    #[serde(default)]
    pub target: super::specs::TargetSpec,
    /// Where to tell operators about failed, held or badly rejected runs.
    #[serde(default)]
    pub alerts: super::specs::AlertSpec,
    /// How each entity's last accepted snapshot is kept.
    #[serde(default)]
    pub snapshots: SnapshotSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// Largest delta kept beside a snapshot's base, as a share of the base's rows, before a
    /// run writes a whole new base instead. 0 writes the whole snapshot every run.
    #[serde(default = "delta_share")]
    pub max_delta_share: f64,
}

impl Default for SnapshotSpec {
    fn default() -> Self {
        SnapshotSpec {
            max_delta_share: delta_share(),
        }
    }
}

/// Why 0.15: at about 1% of an entity changed a night, a run writes on average half this
/// share, and a whole base once every share/1% nights; the sum is least near
/// sqrt(2 x 1%), 14%. Reading is hardly affected: the base is read whole anyway.
fn delta_share() -> f64 {
    0.15
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    /// Deletes above this share of an entity's current rows are held for approval.
    #[serde(default = "default_share")]
    pub max_delete_share: f64,
}

impl Default for GuardSpec {
    fn default() -> Self {
        GuardSpec {
            max_delete_share: default_share(),
        }
    }
}

fn default_share() -> f64 {
    0.10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingSpec {
    /// Write staging.xlsx (one sheet per entity) besides staging.sqlite.
    #[serde(default = "yes")]
    pub xlsx: bool,
    /// Rows per sheet before continuing on `<entity> (2)`; Excel's limit minus the header.
    #[serde(default = "excel_rows")]
    pub xlsx_max_rows: u32,
    /// Rows of each entity the workbook keeps (then one row saying the rest is in
    /// staging.sqlite). Rejects and the summary are always whole. Default 100,000: Excel
    /// opens 1,048,576 rows a sheet but is slow to use long before.
    #[serde(default = "entity_rows")]
    pub xlsx_entity_rows: usize,
    /// `[staging.gsheets]`: also publish the staging tables to one Google spreadsheet, for
    /// analysts who work in Sheets rather than Excel. Off when the table is absent.
    #[serde(default)]
    pub gsheets: Option<super::specs::GsheetsSpec>,
}

impl Default for StagingSpec {
    fn default() -> Self {
        StagingSpec {
            xlsx: true,
            xlsx_max_rows: excel_rows(),
            xlsx_entity_rows: entity_rows(),
            gsheets: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn entity_rows() -> usize {
    100_000
}

fn excel_rows() -> u32 {
    1_048_575
}
