//! unidades.xml / unidades.csv: vehicles, optionally linked to the client, sale and branch.

use std::fmt::Write;

use super::calendar::year_of;
use super::codes;
use super::entity::Entity;
use super::plan::Plan;
use super::record::Record;
use super::rng::{Rng, Stream};
use super::values::{parse_thousands, push_thousands};
use super::ventas;
use super::vocab::{BRANDS, COLORS};

/// Contract header of the CSV variant; the XML uses the same names (the first is the `id` attribute).
pub(super) const HEADERS: [&str; 12] = [
    "id", "VIN", "Dominio", "Marca", "Modelo", "Version", "Anio", "Color", "Km", "Cliente",
    "Venta", "Sucursal",
];
/// Column of the model year (optional integer).
pub(super) const ANIO: usize = 6;
/// Column of the colour.
pub(super) const COLOR: usize = 7;
/// Column of the odometer (optional integer).
pub(super) const KM: usize = 8;
/// Column of the client link (optional).
pub(super) const CLIENTE: usize = 9;
/// Column of the sale link (optional).
pub(super) const VENTA: usize = 10;
/// Column of the branch link (optional).
pub(super) const SUCURSAL: usize = 11;
/// Dirty rows use unit numbers from 99000001 on.
pub(super) const DIRTY_OFFSET: usize = 99_000_000;

/// A unit's links, which services need too (a service's client is its unit's owner).
#[derive(Debug, Clone, Copy)]
pub(super) struct UnitCore {
    /// The sale that sold this unit, if recorded.
    pub sale: Option<usize>,
    /// The owner, if recorded (the sale's client when there is a sale).
    pub client: Option<usize>,
}

/// Computes [`UnitCore`] of unit `u`.
pub(super) fn core(plan: &Plan, u: usize) -> UnitCore {
    let mut rng = Rng::for_row(plan.seed, Entity::Unidades.tag(), Stream::Core, u as u64);
    if rng.chance(600) {
        let sale = plan.sale(&mut rng);
        UnitCore {
            sale: Some(sale),
            client: Some(ventas::core(plan, sale).client),
        }
    } else if rng.chance(300) {
        UnitCore {
            sale: None,
            client: Some(plan.client(&mut rng)),
        }
    } else {
        UnitCore {
            sale: None,
            client: None,
        }
    }
}

/// Appends the ID of unit `u` (`U000123`).
pub(super) fn push_id(out: &mut String, u: usize) {
    let _ = write!(out, "U{:06}", u + 1);
}

const VIN_CHARS: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";

/// Leaves an optional link out: mostly by dropping the element, sometimes as `<Venta/>`.
fn leave_out(rec: &mut Record, col: usize, rng: &mut Rng) {
    if rng.chance(700) {
        rec.mark_absent(col);
    }
}

/// Fills row `u`.
pub(super) fn fill(plan: &Plan, u: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Unidades.tag(), Stream::Row, u as u64);
    push_id(rec.f(0), u);
    let (marca, wmi, models) = rng.pick(BRANDS);
    let (modelo, versions) = rng.pick(models);
    let vin = rec.f(1);
    vin.push_str(wmi);
    for _ in 0..14 {
        vin.push(rng.pick(VIN_CHARS) as char);
    }
    let links = core(plan, u);
    // A sold unit is at most a few years older than its sale.
    let anio = match links.sale {
        Some(s) => {
            let sold = year_of(ventas::core(plan, s).day) as u64;
            rng.range(sold.saturating_sub(6).max(2008), sold)
        }
        None => rng.range(2008, 2026),
    };
    let dominio = rec.f(2);
    let letter = |r: &mut Rng| (b'A' + r.below(26) as u8) as char;
    if anio >= 2016 {
        let (a, b) = (letter(&mut rng), letter(&mut rng));
        let _ = write!(
            dominio,
            "{a}{b}{:03}{}{}",
            rng.below(1000),
            letter(&mut rng),
            letter(&mut rng)
        );
    } else {
        let (a, b, c) = (letter(&mut rng), letter(&mut rng), letter(&mut rng));
        let _ = write!(dominio, "{a}{b}{c}{:03}", rng.below(1000));
    }
    rec.f(3).push_str(marca);
    rec.f(4).push_str(modelo);
    rec.f(5).push_str(rng.pick(versions));
    let _ = write!(rec.f(ANIO), "{anio}");
    rec.f(COLOR).push_str(rng.pick(COLORS));
    let km = if anio == 2026 {
        rng.below(60)
    } else {
        (2026 - anio) * rng.range(5_000, 25_000) + rng.below(1000)
    };
    push_thousands(rec.f(KM), km);
    match links.client {
        Some(c) => codes::push_client_number(rec.f(CLIENTE), c, rng.chance(100)),
        None => leave_out(rec, CLIENTE, &mut rng),
    }
    match links.sale {
        Some(s) => ventas::push_id(rec.f(VENTA), plan, s),
        None => leave_out(rec, VENTA, &mut rng),
    }
    let branch = if rng.chance(500) {
        plan.branch_stock(&mut rng)
    } else {
        None
    };
    match branch {
        Some(b) => codes::push_branch_code(rec.f(SUCURSAL), b),
        None => leave_out(rec, SUCURSAL, &mut rng),
    }
}

/// Changes row `u`: repainted, or more km on the clock.
pub(super) fn change(plan: &Plan, u: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Unidades.tag(), Stream::Change, u as u64);
    if rng.chance(500) {
        let old = rec.get(COLOR).to_string();
        let mut k = rng.below(COLORS.len() as u64) as usize;
        while COLORS[k] == old {
            k = (k + 1) % COLORS.len();
        }
        rec.set(COLOR, COLORS[k]);
    } else {
        let old = parse_thousands(rec.get(KM)).unwrap_or(0);
        let mut new = String::new();
        push_thousands(&mut new, old + rng.range(1_000, 20_000));
        rec.set(KM, &new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_have_a_vin_and_consistent_links() {
        let plan = Plan::new(4, 1000, false);
        let mut rec = Entity::Unidades.new_record();
        for u in 0..plan.sizes.units {
            Entity::Unidades.fill(&plan, u, &mut rec);
            assert_eq!(rec.get(1).len(), 17);
            let links = core(&plan, u);
            if let Some(s) = links.sale {
                let mut id = String::new();
                ventas::push_id(&mut id, &plan, s);
                assert_eq!(rec.get(VENTA), id);
                let owner: usize = rec.get(CLIENTE).parse().unwrap();
                assert_eq!(owner, ventas::core(&plan, s).client + 1);
            }
            let before = rec.clone();
            change(&plan, u, &mut rec);
            assert!(before.get(COLOR) != rec.get(COLOR) || before.get(KM) != rec.get(KM));
        }
    }
}
