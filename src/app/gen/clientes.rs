//! clientes.csv: people and companies that bought a car or brought one to the workshop.

use super::calendar::{days_from_civil, push_date};
use super::codes;
use super::entity::Entity;
use super::plan::{base_day, Plan};
use super::record::Record;
use super::rng::{Rng, Stream};
use super::values::{
    person, place, push_address, push_client_email, push_company, push_company_email,
    push_company_id, push_folded, push_landline, push_last_first, push_mobile, push_person_id,
    push_postal_code,
};
use super::vocab::{MAIL_DOMAINS, PLACES};

/// Contract header.
pub(super) const HEADERS: [&str; 12] = [
    "Nro Cliente",
    "Razón Social / Nombre",
    "Tipo",
    "CUIT/DNI",
    "Email",
    "Teléfono",
    "Celular",
    "Domicilio",
    "Localidad",
    "Provincia",
    "Código Postal",
    "Fecha Alta",
];
/// Column of the ID.
pub(super) const NRO: usize = 0;
/// Column of the name.
pub(super) const NOMBRE: usize = 1;
/// Column of the e-mail.
pub(super) const EMAIL: usize = 4;
/// Column of the landline.
pub(super) const TELEFONO: usize = 5;
/// Column of the street address.
pub(super) const DOMICILIO: usize = 7;
/// Column of the town.
pub(super) const LOCALIDAD: usize = 8;
/// Column of the create-only date.
pub(super) const FECHA_ALTA: usize = 11;
/// Dirty rows use client numbers from 880000001 on.
pub(super) const DIRTY_OFFSET: usize = 880_000_000;

/// Fills row `i`.
pub(super) fn fill(plan: &Plan, i: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Clientes.tag(), Stream::Row, i as u64);
    codes::push_client_number(rec.f(NRO), i, rng.chance(100));
    let company = rng.chance(200);
    let p = place(&mut rng);
    if company {
        let name = push_company(rec.f(NOMBRE), &mut rng);
        if rng.chance(10) {
            // Nicknames in quotes: `Transportes "La Esperanza" S.A.`, so the writer must double them.
            let s = rec.get(NOMBRE).replacen(name, &format!("\"{name}\""), 1);
            rec.set(NOMBRE, &s);
        }
        rec.f(2).push_str("Empresa");
        push_company_id(rec.f(3), &mut rng);
        push_company_email(rec.f(EMAIL), &mut rng, name);
    } else {
        let who = person(&mut rng);
        push_last_first(rec.f(NOMBRE), &who);
        rec.f(2).push_str("Persona");
        push_person_id(rec.f(3), &mut rng);
        push_client_email(rec.f(EMAIL), &mut rng, who.first, who.last);
    }
    if rng.chance(750) {
        push_landline(rec.f(TELEFONO), &mut rng, p);
    }
    if rng.chance(if company { 400 } else { 850 }) {
        push_mobile(rec.f(6), &mut rng, p);
    }
    push_address(rec.f(DOMICILIO), &mut rng);
    let (localidad, provincia, _, _) = PLACES[p];
    rec.f(LOCALIDAD).push_str(localidad);
    rec.f(9).push_str(provincia);
    if rng.chance(920) {
        push_postal_code(rec.f(10), &mut rng, p);
    }
    let added = i >= plan.sizes.clients && i < DIRTY_OFFSET;
    let alta = if added {
        Some(base_day() + 1)
    } else if rng.chance(980) {
        Some(rng.range(days_from_civil(2005, 1, 1) as u64, base_day() as u64) as i32)
    } else {
        None
    };
    if let Some(day) = alta {
        push_date(rec.f(FECHA_ALTA), day);
    }
}

fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Changes row `i`: a new e-mail, phone, street address or town (never Fecha Alta, which is create-only).
pub(super) fn change(plan: &Plan, i: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Clientes.tag(), Stream::Change, i as u64);
    match rng.below(4) {
        0 => {
            let old = rec.get(EMAIL).trim().to_ascii_lowercase();
            let new = match old.split_once('@') {
                Some((local, domain)) => format!("{local}{}@{domain}", rng.range(2, 98)),
                None => {
                    let mut local = String::new();
                    push_folded(&mut local, rec.get(NOMBRE));
                    format!("{local}@{}", rng.pick(MAIL_DOMAINS))
                }
            };
            rec.set(EMAIL, &new);
        }
        1 => {
            let p = PLACES
                .iter()
                .position(|pl| pl.0 == rec.get(LOCALIDAD))
                .unwrap_or(0);
            let old = digits_of(rec.get(TELEFONO));
            loop {
                let mut new = String::new();
                push_landline(&mut new, &mut rng, p);
                if digits_of(&new) != old {
                    rec.set(TELEFONO, &new);
                    break;
                }
            }
        }
        2 => {
            let old = rec.get(DOMICILIO).trim().to_lowercase();
            loop {
                let mut new = String::new();
                push_address(&mut new, &mut rng);
                if new.trim().to_lowercase() != old {
                    rec.set(DOMICILIO, &new);
                    break;
                }
            }
        }
        _ => {
            let old = rec.get(LOCALIDAD).to_string();
            let mut p = place(&mut rng);
            while PLACES[p].0 == old {
                p = (p + 1) % PLACES.len();
            }
            let (localidad, provincia, _, _) = PLACES[p];
            rec.set(LOCALIDAD, localidad);
            rec.set(9, provincia);
            let mut cp = String::new();
            push_postal_code(&mut cp, &mut rng, p);
            rec.set(10, &cp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_numbers_keep_their_value() {
        let mut s = String::new();
        codes::push_client_number(&mut s, 122, true);
        s.push('|');
        codes::push_client_number(&mut s, 122, false);
        s.push('|');
        codes::push_client_number(&mut s, 123_455, true);
        assert_eq!(s, "000123|123|0123456");
    }

    #[test]
    fn people_are_last_comma_first_and_changes_skip_fecha_alta() {
        let plan = Plan::new(11, 2000, false);
        let mut rec = Entity::Clientes.new_record();
        let (mut people, mut companies) = (0, 0);
        for i in 0..plan.sizes.clients {
            Entity::Clientes.fill(&plan, i, &mut rec);
            match rec.get(2) {
                "Persona" => {
                    people += 1;
                    assert!(rec.get(NOMBRE).contains(", "), "{}", rec.get(NOMBRE));
                }
                _ => companies += 1,
            }
            let before = rec.clone();
            change(&plan, i, &mut rec);
            assert_eq!(before.get(FECHA_ALTA), rec.get(FECHA_ALTA));
            assert_eq!(before.get(NRO), rec.get(NRO));
            assert_ne!(before, rec);
        }
        assert!(people > companies && companies > 0);
    }
}
