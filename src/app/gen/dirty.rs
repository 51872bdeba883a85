//! The fixed, documented set of dirty rows a `dirty: true` drop carries, and what a validator must
//! conclude about each one.
//!
//! Each dirty row starts as an ordinary generated row with an index in the entity's dirty range (so
//! its ID is fresh and its references are valid), then exactly one cell is broken. Nothing references
//! a dirty row except where the point is a cascade (the duplicate client and the duplicate unit).
//!
//! | entity | cell | value | outcome |
//! |---|---|---|---|
//! | usuarios | Activo | `X` | warning `type.boolean` |
//! | usuarios | Email | upper case with stray spaces | clean |
//! | clientes | Nro Cliente | empty | `id.empty` |
//! | clientes | Nro Cliente | `000880000101` and `880000101` | `id.duplicate` (both rows) |
//! | clientes | Fecha Alta | `99/99/2020` | warning `type.date` |
//! | clientes | Domicilio | holds `;` / a line break | clean (quoted) |
//! | clientes | Razón Social | holds `"` | clean (quote doubled) |
//! | clientes | Nro Cliente | zero-padded | clean |
//! | ventas | Fecha | `31/02/2026`, `sin fecha` | `type.date` |
//! | ventas | Fecha | empty | `required` |
//! | ventas | Nro Cliente | unknown `889999999` | `ref.missing` |
//! | ventas | Nro Cliente | `880000101` (the duplicate client) | `ref.missing` (cascade) |
//! | ventas | Nro Cliente | empty | `required` |
//! | ventas | Vendedor | unknown `V999999` | warning `ref.optional_missing` |
//! | ventas | Importe Total | `12,3,4abc` | warning `type.decimal` |
//! | unidades | id | `U99000101` twice | `id.duplicate` (both rows) |
//! | unidades | Anio / Km | `dos mil` / `35.4OO` | warning `type.integer` |
//! | unidades | Venta / Cliente | unknown | warning `ref.optional_missing` |
//! | unidades | Version | holds `"`, `&`, `<`, `>` | clean (escaped) |
//! | servicios | Unidad | unknown `U99999999` | `ref.missing` |
//! | servicios | Taller | unknown `TAL-9999` | `ref.missing` |
//! | servicios | Unidad | `U99000101` (the duplicate unit) | `ref.missing` (cascade) |
//! | servicios | Nro Cliente | unknown | `ref.missing` |
//! | servicios | Fecha Ingreso | `31/02/2026` | `type.date` |
//! | servicios | Fecha Ingreso / Unidad | empty | `required` |
//! | servicios | Asesor | unknown `A999999` | warning `ref.optional_missing` |
//! | servicios | Importe / Fecha Entrega / Kilometraje | `abc` / `32/13/2025` / `12.3x` | warning `type.*` |

use super::entity::Entity;
use super::plan::Plan;
use super::record::Record;
use super::{clientes as cl, servicios as sv, unidades as un, usuarios as us, ventas as ve};

/// What the validator must make of a dirty row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Accepted without warnings (tricky but legal).
    Clean,
    /// Rejected by this rule.
    Reject(&'static str),
    /// Accepted with this warning.
    Warn(&'static str),
}

/// One dirty row, ready to write.
#[derive(Debug, Clone)]
pub(super) struct DirtyRow {
    /// The cells.
    pub rec: Record,
    /// The validator's verdict.
    pub outcome: Outcome,
}

/// The client number both duplicate rows carry (one of them zero-padded).
pub(super) const DUP_CLIENT: &str = "880000101";
/// The unit ID both duplicate units carry.
pub(super) const DUP_UNIT: &str = "U99000101";

/// (column, value, outcome) overrides, one per dirty row, in file order.
type Spec = &'static [(usize, &'static str, Outcome)];

use Outcome::{Clean, Reject, Warn};

const USUARIOS: Spec = &[
    (us::ACTIVO, "X", Warn("type.boolean")),
    (us::EMAIL, "  MGOMEZ@AUTOMOTORESDELPLATA.COM.AR ", Clean),
];

const CLIENTES: Spec = &[
    (cl::NRO, "", Reject("id.empty")),
    (cl::NRO, "000880000101", Reject("id.duplicate")),
    (cl::NRO, DUP_CLIENT, Reject("id.duplicate")),
    (cl::FECHA_ALTA, "99/99/2020", Warn("type.date")),
    (cl::DOMICILIO, "Av. San Martín 1234; Piso 3 Dto. B", Clean),
    (cl::DOMICILIO, "Ruta 8 km 50\nLote 3", Clean),
    (cl::NOMBRE, "Transportes \"El Ombú\" S.R.L.", Clean),
    (cl::NRO, "000880000008", Clean),
];

const VENTAS: Spec = &[
    (ve::FECHA, "31/02/2026", Reject("type.date")),
    (ve::FECHA, "", Reject("required")),
    (ve::FECHA, "sin fecha", Reject("type.date")),
    (ve::CLIENTE, "889999999", Reject("ref.missing")),
    (ve::CLIENTE, DUP_CLIENT, Reject("ref.missing")),
    (ve::CLIENTE, "", Reject("required")),
    (ve::VENDEDOR, "V999999", Warn("ref.optional_missing")),
    (ve::IMPORTE, "12,3,4abc", Warn("type.decimal")),
];

const UNIDADES: Spec = &[
    (0, DUP_UNIT, Reject("id.duplicate")),
    (0, DUP_UNIT, Reject("id.duplicate")),
    (un::ANIO, "dos mil", Warn("type.integer")),
    (un::KM, "35.4OO", Warn("type.integer")),
    (un::VENTA, "OP-2026-99999999", Warn("ref.optional_missing")),
    (un::CLIENTE, "889999998", Warn("ref.optional_missing")),
    (5, "XLT 3.2 \"Black\" & <Sport>", Clean),
];

const SERVICIOS: Spec = &[
    (sv::UNIDAD, "U99999999", Reject("ref.missing")),
    (sv::TALLER, "TAL-9999", Reject("ref.missing")),
    (sv::UNIDAD, DUP_UNIT, Reject("ref.missing")),
    (sv::CLIENTE, "889999999", Reject("ref.missing")),
    (sv::INGRESO, "31/02/2026", Reject("type.date")),
    (sv::INGRESO, "", Reject("required")),
    (sv::UNIDAD, "", Reject("required")),
    (sv::ASESOR, "A999999", Warn("ref.optional_missing")),
    (sv::IMPORTE, "abc", Warn("type.decimal")),
    (sv::ENTREGA, "32/13/2025", Warn("type.date")),
    (sv::KILOMETRAJE, "12.3x", Warn("type.integer")),
];

fn spec(entity: Entity) -> Spec {
    match entity {
        Entity::Usuarios => USUARIOS,
        Entity::Sucursales => &[],
        Entity::Clientes => CLIENTES,
        Entity::Ventas => VENTAS,
        Entity::Unidades => UNIDADES,
        Entity::Servicios => SERVICIOS,
    }
}

/// The dirty rows of `entity`, in the order they are written.
pub(super) fn rows(plan: &Plan, entity: Entity) -> Vec<DirtyRow> {
    spec(entity)
        .iter()
        .enumerate()
        .map(|(k, &(col, value, outcome))| {
            let mut rec = entity.new_record();
            entity.fill(plan, entity.dirty_offset() + k, &mut rec);
            rec.set(col, value);
            DirtyRow { rec, outcome }
        })
        .collect()
}

/// Number of dirty rows of `entity` a validator accepts (clean or warned).
pub(super) fn accepted(entity: Entity) -> usize {
    spec(entity)
        .iter()
        .filter(|(_, _, o)| !matches!(o, Reject(_)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_twelve_per_entity_and_all_required_cases_present() {
        for e in Entity::ALL {
            assert!(spec(e).len() <= 12, "{e:?}");
        }
        let has = |e: Entity, rule: &'static str| {
            spec(e)
                .iter()
                .any(|(_, _, o)| *o == Reject(rule) || *o == Warn(rule))
        };
        assert!(has(Entity::Clientes, "id.empty") && has(Entity::Clientes, "id.duplicate"));
        assert!(has(Entity::Ventas, "ref.missing") && has(Entity::Ventas, "required"));
        assert!(has(Entity::Unidades, "id.duplicate") && has(Entity::Usuarios, "type.boolean"));
        assert!(has(Entity::Servicios, "ref.missing") && has(Entity::Servicios, "type.date"));
    }

    #[test]
    fn exactly_one_sale_references_the_duplicate_client() {
        let plan = Plan::new(1, 300, false);
        let refs = rows(&plan, Entity::Ventas)
            .iter()
            .filter(|r| r.rec.get(ve::CLIENTE).trim_start_matches('0') == DUP_CLIENT)
            .count();
        assert_eq!(refs, 1);
    }

    #[test]
    fn dirty_ids_are_fresh() {
        let plan = Plan::new(1, 300, false);
        let rows = rows(&plan, Entity::Ventas);
        assert!(rows
            .iter()
            .all(|r| r.rec.get(0).ends_with(|c: char| c.is_ascii_digit())));
        assert!(rows[0].rec.get(0).contains("-99000001"));
    }
}
