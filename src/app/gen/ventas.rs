//! ventas.csv: vehicle sales. Each names a client (required) and, usually, a salesperson and branch.

use std::fmt::Write;

use super::calendar::{days_from_civil, push_date, push_date_time, year_of};
use super::codes;
use super::entity::Entity;
use super::plan::{base_day, Plan};
use super::record::Record;
use super::rng::{Rng, Stream};
use super::values::{parse_amount, push_amount};

/// Contract header.
pub(super) const HEADERS: [&str; 9] = [
    "Nro Operación",
    "Fecha",
    "Nro Cliente",
    "Vendedor",
    "Sucursal",
    "Tipo",
    "Importe Total",
    "Moneda",
    "Estado",
];
/// Column of the sale date (required).
pub(super) const FECHA: usize = 1;
/// Column of the client reference (required).
pub(super) const CLIENTE: usize = 2;
/// Column of the salesperson reference (optional).
pub(super) const VENDEDOR: usize = 3;
/// Column of the amount (optional decimal).
pub(super) const IMPORTE: usize = 6;
/// Column of the status.
pub(super) const ESTADO: usize = 8;
/// Dirty rows use operation numbers from 99000001 on.
pub(super) const DIRTY_OFFSET: usize = 99_000_000;

/// The facts about sale `s` that units need too (its client and its ID's year).
#[derive(Debug, Clone, Copy)]
pub(super) struct SaleCore {
    /// Client index.
    pub client: usize,
    /// Sale date, days since 1970.
    pub day: i32,
}

/// Computes [`SaleCore`] of sale `s` from its own small stream.
pub(super) fn core(plan: &Plan, s: usize) -> SaleCore {
    let mut rng = Rng::for_row(plan.seed, Entity::Ventas.tag(), Stream::Core, s as u64);
    let client = plan.client(&mut rng);
    let day = if s >= plan.sizes.sales && s < DIRTY_OFFSET {
        base_day() + 1
    } else {
        rng.range(days_from_civil(2016, 1, 1) as u64, base_day() as u64) as i32
    };
    SaleCore { client, day }
}

/// Appends the ID of sale `s` (`OP-2024-000123`).
pub(super) fn push_id(out: &mut String, plan: &Plan, s: usize) {
    let _ = write!(out, "OP-{}-{:06}", year_of(core(plan, s).day), s + 1);
}

/// Fills row `s`.
pub(super) fn fill(plan: &Plan, s: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Ventas.tag(), Stream::Row, s as u64);
    let c = core(plan, s);
    let _ = write!(rec.f(0), "OP-{}-{:06}", year_of(c.day), s + 1);
    if rng.chance(150) {
        push_date_time(
            rec.f(FECHA),
            c.day,
            rng.range(9, 19) as u32,
            rng.below(60) as u32,
        );
    } else {
        push_date(rec.f(FECHA), c.day);
    }
    codes::push_client_number(rec.f(CLIENTE), c.client, rng.chance(80));
    if rng.chance(850) {
        if let Some(v) = plan.vendor(&mut rng) {
            codes::push_user_code(rec.f(VENDEDOR), plan.seed, v);
        }
    }
    if rng.chance(800) {
        if let Some(b) = plan.branch_sales(&mut rng) {
            codes::push_branch_code(rec.f(4), b);
        }
    }
    let new = rng.chance(600);
    rec.f(5).push_str(if new { "0km" } else { "Usado" });
    let usd = rng.chance(150);
    let cents = match (new, usd) {
        (true, false) => rng.range(15_000_000, 85_000_000) * 100 + rng.below(100),
        (false, false) => rng.range(4_000_000, 45_000_000) * 100 + rng.below(100),
        (true, true) => rng.range(14_000, 70_000) * 100,
        (false, true) => rng.range(4_000, 38_000) * 100,
    };
    push_amount(rec.f(IMPORTE), cents);
    rec.f(7).push_str(if usd { "USD" } else { "ARS" });
    let estado = *rng.weighted(&[
        ("Reservada", 10),
        ("Facturada", 25),
        ("Entregada", 55),
        ("Anulada", 10),
    ]);
    rec.f(ESTADO).push_str(estado);
}

/// Changes row `s`: the sale moves on (Reservada → Facturada → Entregada) or its amount is revised.
pub(super) fn change(plan: &Plan, s: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Ventas.tag(), Stream::Change, s as u64);
    let next = match rec.get(ESTADO) {
        "Reservada" => Some("Facturada"),
        "Facturada" => Some("Entregada"),
        "Entregada" if rng.chance(300) => Some("Anulada"),
        _ => None,
    };
    match next {
        Some(estado) => rec.set(ESTADO, estado),
        None => {
            let old = parse_amount(rec.get(IMPORTE)).unwrap_or(0);
            let mut new = String::new();
            push_amount(&mut new, old + old / 20 + rng.range(1_000, 50_000) * 100);
            rec.set(IMPORTE, &new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_year_matches_the_date() {
        let plan = Plan::new(2, 1000, false);
        let mut rec = Entity::Ventas.new_record();
        for s in 0..plan.sizes.sales {
            Entity::Ventas.fill(&plan, s, &mut rec);
            let year = &rec.get(0)[3..7];
            assert_eq!(&rec.get(FECHA)[6..10], year);
            let mut id = String::new();
            push_id(&mut id, &plan, s);
            assert_eq!(id, rec.get(0));
            let before = rec.clone();
            change(&plan, s, &mut rec);
            assert!(
                before.get(ESTADO) != rec.get(ESTADO) || before.get(IMPORTE) != rec.get(IMPORTE)
            );
            assert_eq!(before.get(CLIENTE), rec.get(CLIENTE));
        }
    }
}
