//! sucursales.csv: the dealer's showrooms, workshops and depots.

use std::fmt::Write;

use super::codes;
use super::entity::Entity;
use super::plan::Plan;
use super::record::Record;
use super::rng::{Rng, Stream};
use super::values::{place, push_address, push_landline};
use super::vocab::PLACES;

/// Contract header.
pub(super) const HEADERS: [&str; 7] = [
    "Código Sucursal",
    "Nombre",
    "Tipo",
    "Dirección",
    "Localidad",
    "Provincia",
    "Teléfono",
];
/// Column of the address.
const DIRECCION: usize = 3;
/// Column of the phone.
const TELEFONO: usize = 6;
/// Not used for dirty rows (sucursales stays clean), kept for a uniform entity table.
pub(super) const DIRTY_OFFSET: usize = 90_000;

/// Fills row `j`.
pub(super) fn fill(plan: &Plan, j: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Sucursales.tag(), Stream::Row, j as u64);
    codes::push_branch_code(rec.f(0), j);
    let p = place(&mut rng);
    let (localidad, provincia, _, _) = PLACES[p];
    let (name, tipo) = match codes::branch_kind(j) {
        codes::BranchKind::Sucursal if j == 0 => ("Casa Central", "Sucursal"),
        codes::BranchKind::Sucursal => ("Sucursal", "Sucursal"),
        codes::BranchKind::Taller => ("Taller", "Taller"),
        codes::BranchKind::Deposito => ("Depósito", "Depósito"),
    };
    if j == 0 {
        rec.f(1).push_str(name);
    } else {
        let _ = write!(rec.f(1), "{name} {localidad}");
    }
    rec.f(2).push_str(tipo);
    push_address(rec.f(DIRECCION), &mut rng);
    rec.f(4).push_str(localidad);
    rec.f(5).push_str(provincia);
    push_landline(rec.f(TELEFONO), &mut rng, p);
}

/// Changes row `j`: a new phone line or a move within town (never the Tipo, which services rely on).
pub(super) fn change(plan: &Plan, j: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(
        plan.seed,
        Entity::Sucursales.tag(),
        Stream::Change,
        j as u64,
    );
    let col = if rng.chance(500) { TELEFONO } else { DIRECCION };
    let p = PLACES.iter().position(|pl| pl.0 == rec.get(4)).unwrap_or(0);
    let old = rec.get(col).to_string();
    loop {
        let mut new = String::new();
        if col == TELEFONO {
            push_landline(&mut new, &mut rng, p);
        } else {
            push_address(&mut new, &mut rng);
        }
        if new.trim().to_lowercase() != old.trim().to_lowercase() {
            rec.set(col, &new);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_number_within_kind() {
        let mut s = String::new();
        for j in 0..7 {
            codes::push_branch_code(&mut s, j);
            s.push(' ');
        }
        assert_eq!(s, "SUC-01 TAL-01 DEP-01 SUC-02 TAL-02 DEP-02 SUC-03 ");
    }

    #[test]
    fn tipo_matches_the_code() {
        let plan = Plan::new(5, 20_000, false);
        let mut rec = Entity::Sucursales.new_record();
        for j in 0..plan.sizes.branches {
            Entity::Sucursales.fill(&plan, j, &mut rec);
            let expected = match &rec.get(0)[..3] {
                "SUC" => "Sucursal",
                "TAL" => "Taller",
                _ => "Depósito",
            };
            assert_eq!(rec.get(2), expected);
        }
    }
}
