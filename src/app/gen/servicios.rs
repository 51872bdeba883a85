//! servicios.csv: workshop orders. Each names a client, a unit and a Taller (all required).

use std::fmt::Write;

use super::calendar::{days_from_civil, push_date};
use super::codes;
use super::entity::Entity;
use super::plan::{base_day, Plan};
use super::record::Record;
use super::rng::{Rng, Stream};
use super::unidades;
use super::values::{parse_amount, push_amount, push_thousands};
use super::ventas;

/// Contract header.
pub(super) const HEADERS: [&str; 11] = [
    "Nro OT",
    "Fecha Ingreso",
    "Fecha Entrega",
    "Nro Cliente",
    "Unidad",
    "Taller",
    "Asesor",
    "Tipo Servicio",
    "Kilometraje",
    "Importe",
    "Estado",
];
/// Column of the intake date (required).
pub(super) const INGRESO: usize = 1;
/// Column of the delivery date (optional).
pub(super) const ENTREGA: usize = 2;
/// Column of the client reference (required).
pub(super) const CLIENTE: usize = 3;
/// Column of the unit reference (required).
pub(super) const UNIDAD: usize = 4;
/// Column of the workshop reference (required).
pub(super) const TALLER: usize = 5;
/// Column of the advisor reference (optional).
pub(super) const ASESOR: usize = 6;
/// Column of the odometer (optional integer).
pub(super) const KILOMETRAJE: usize = 8;
/// Column of the amount (optional decimal).
pub(super) const IMPORTE: usize = 9;
/// Column of the status.
pub(super) const ESTADO: usize = 10;
/// Dirty rows use order numbers from 99000001 on.
pub(super) const DIRTY_OFFSET: usize = 99_000_000;

/// Fills row `k`.
pub(super) fn fill(plan: &Plan, k: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Servicios.tag(), Stream::Row, k as u64);
    let _ = write!(rec.f(0), "OT-{:07}", k + 1);
    let added = k >= plan.sizes.services && k < DIRTY_OFFSET;
    let estado = if added {
        "Abierta"
    } else {
        *rng.weighted(&[("Abierta", 10), ("Cerrada", 35), ("Facturada", 55)])
    };
    let unit = plan.unit(&mut rng);
    let links = unidades::core(plan, unit);
    let client = links.client.unwrap_or_else(|| plan.client(&mut rng));
    // A sold unit comes to the workshop after its sale.
    let first = links
        .sale
        .map_or(days_from_civil(2018, 1, 1), |s| ventas::core(plan, s).day);
    let ingreso = if added {
        base_day() + 1
    } else {
        rng.range(
            first.max(days_from_civil(2018, 1, 1)) as u64,
            base_day() as u64,
        ) as i32
    };
    push_date(rec.f(INGRESO), ingreso);
    if estado != "Abierta" {
        push_date(
            rec.f(ENTREGA),
            (ingreso + rng.below(10) as i32).min(base_day()),
        );
    }
    codes::push_client_number(rec.f(CLIENTE), client, rng.chance(80));
    unidades::push_id(rec.f(UNIDAD), unit);
    codes::push_branch_code(rec.f(TALLER), plan.taller(&mut rng));
    if rng.chance(850) {
        if let Some(a) = plan.advisor(&mut rng) {
            codes::push_user_code(rec.f(ASESOR), plan.seed, a);
        }
    }
    let tipo = *rng.weighted(&[
        ("Service", 50),
        ("Garantía", 15),
        ("Chapa y Pintura", 15),
        ("Mecánica", 20),
    ]);
    rec.f(7).push_str(tipo);
    push_thousands(rec.f(KILOMETRAJE), rng.range(1_000, 250_000));
    push_amount(
        rec.f(IMPORTE),
        rng.range(30_000, 3_500_000) * 100 + rng.below(100),
    );
    rec.f(ESTADO).push_str(estado);
}

/// Changes row `k`: the order closes (with today's delivery date), gets invoiced, or is re-priced.
pub(super) fn change(plan: &Plan, k: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Servicios.tag(), Stream::Change, k as u64);
    match rec.get(ESTADO) {
        "Abierta" => {
            rec.set(ESTADO, "Cerrada");
            let mut d = String::new();
            push_date(&mut d, plan.day);
            rec.set(ENTREGA, &d);
        }
        "Cerrada" => rec.set(ESTADO, "Facturada"),
        _ => {
            let old = parse_amount(rec.get(IMPORTE)).unwrap_or(0);
            let mut new = String::new();
            push_amount(&mut new, old + old / 10 + rng.range(5_000, 90_000) * 100);
            rec.set(IMPORTE, &new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_name_a_taller_and_the_units_owner() {
        let plan = Plan::new(6, 1000, false);
        let mut rec = Entity::Servicios.new_record();
        for k in 0..plan.sizes.services {
            Entity::Servicios.fill(&plan, k, &mut rec);
            assert!(rec.get(TALLER).starts_with("TAL-"));
            let unit: usize = rec.get(UNIDAD)[1..].parse().unwrap();
            if let Some(owner) = unidades::core(&plan, unit - 1).client {
                assert_eq!(rec.get(CLIENTE).parse::<usize>().unwrap(), owner + 1);
            }
            assert_eq!(rec.get(ESTADO) == "Abierta", rec.get(ENTREGA).is_empty());
        }
    }
}
