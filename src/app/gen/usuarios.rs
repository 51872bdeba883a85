//! usuarios.csv: the dealer's salespeople, service advisors, managers and clerks.

use std::fmt::Write;

use super::codes;
use super::entity::Entity;
use super::plan::Plan;
use super::record::Record;
use super::rng::{Rng, Stream};
use super::values::{person, push_first_last, push_folded};
use super::vocab::DEALER_DOMAIN;

/// Contract header.
pub(super) const HEADERS: [&str; 6] = [
    "Código",
    "Nombre y Apellido",
    "Email",
    "Rol",
    "Sucursal",
    "Activo",
];
/// The same header as a sloppy export writes it (stray spaces, other case): not an error.
pub(super) const HEADERS_SLOPPY: [&str; 6] = [
    "Código",
    "NOMBRE Y APELLIDO",
    " Email ",
    "Rol",
    "Sucursal",
    "Activo",
];
/// Column of the ID.
pub(super) const CODIGO: usize = 0;
/// Column of the e-mail.
pub(super) const EMAIL: usize = 2;
/// Column of the yes/no flag.
pub(super) const ACTIVO: usize = 5;
/// Dirty rows use user numbers from here (`V900001`...).
pub(super) const DIRTY_OFFSET: usize = 900_000;

/// Fills row `i`.
pub(super) fn fill(plan: &Plan, i: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Usuarios.tag(), Stream::Row, i as u64);
    codes::push_user_code(rec.f(CODIGO), plan.seed, i);
    let p = person(&mut rng);
    push_first_last(rec.f(1), &p);
    let email = rec.f(EMAIL);
    push_folded(
        email,
        &p.first[..p.first.chars().next().map_or(0, char::len_utf8)],
    );
    push_folded(email, p.last);
    let _ = write!(email, "@{DEALER_DOMAIN}");
    if rng.chance(150) {
        // "JPerez@..." typed by hand.
        let first = email[..1].to_ascii_uppercase();
        email.replace_range(..1, &first);
        if let Some(c) = email.get(1..2).map(str::to_ascii_uppercase) {
            email.replace_range(1..2, &c);
        }
    }
    if rng.chance(50) {
        email.push(' ');
    }
    rec.f(3).push_str(codes::role(plan.seed, i).label());
    if rng.chance(850) {
        if let Some(b) = plan.branch_any(&mut rng) {
            codes::push_branch_code(rec.f(4), b);
        }
    }
    let active = rng.chance(900);
    let long = rng.chance(200);
    rec.f(ACTIVO).push_str(match (active, long) {
        (true, false) => "S",
        (true, true) => "Si",
        (false, false) => "N",
        (false, true) => "No",
    });
}

/// Changes row `i`: flips Activo or moves the user to another mailbox.
pub(super) fn change(plan: &Plan, i: usize, rec: &mut Record) {
    let mut rng = Rng::for_row(plan.seed, Entity::Usuarios.tag(), Stream::Change, i as u64);
    if rng.chance(500) {
        let flipped = match rec.get(ACTIVO) {
            "S" => "N",
            "Si" => "No",
            "N" => "S",
            _ => "Si",
        };
        rec.set(ACTIVO, flipped);
    } else {
        let old = rec.get(EMAIL).trim().to_ascii_lowercase();
        let local = old.split('@').next().unwrap_or("usuario").to_string();
        let new = format!("{local}{}@{DEALER_DOMAIN}", rng.range(2, 98));
        rec.set(EMAIL, &new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_roles() {
        let mut s = String::new();
        codes::push_user_code(&mut s, 1, 0);
        s.push('|');
        codes::push_user_code(&mut s, 1, 1);
        assert_eq!(s, "V0001|A0002");
    }

    #[test]
    fn rows_have_a_work_email_and_a_flag() {
        let plan = Plan::new(3, 2000, false);
        let mut rec = Entity::Usuarios.new_record();
        for i in 0..plan.sizes.users {
            Entity::Usuarios.fill(&plan, i, &mut rec);
            assert!(rec
                .get(EMAIL)
                .to_ascii_lowercase()
                .trim()
                .ends_with(DEALER_DOMAIN));
            assert!(["S", "N", "Si", "No"].contains(&rec.get(ACTIVO)));
            let before = rec.clone();
            change(&plan, i, &mut rec);
            let differs = before.get(ACTIVO) != rec.get(ACTIVO)
                || !before
                    .get(EMAIL)
                    .trim()
                    .eq_ignore_ascii_case(rec.get(EMAIL).trim());
            assert!(differs);
        }
    }
}
