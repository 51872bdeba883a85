//! Who is what: the kind of each branch and the role of each user, and the codes that follow
//! from them (`SUC-01`, `V0012`, client numbers). The plan picks branches and users by kind
//! and role, and every entity file writes these codes, so they live here rather than in one
//! entity's file.

use std::fmt::Write;

use super::entity::Entity;
use super::rng::{Rng, Stream};

/// The three kinds of branch the contract names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BranchKind {
    Sucursal,
    Taller,
    Deposito,
}

/// Kind of branch `j`: they rotate, so the first three are one of each.
pub(super) fn branch_kind(j: usize) -> BranchKind {
    match j % 3 {
        0 => BranchKind::Sucursal,
        1 => BranchKind::Taller,
        _ => BranchKind::Deposito,
    }
}

/// Appends the code of branch `j`: `SUC-01`, `TAL-01`, `DEP-01`, numbered within each kind.
pub(super) fn push_branch_code(out: &mut String, j: usize) {
    let prefix = match branch_kind(j) {
        BranchKind::Sucursal => "SUC",
        BranchKind::Taller => "TAL",
        BranchKind::Deposito => "DEP",
    };
    let _ = write!(out, "{prefix}-{:02}", j / 3 + 1);
}

/// What a user does; the prefix of the code follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Vendedor,
    Asesor,
    Gerente,
    Administrativo,
}

impl Role {
    pub(super) fn label(self) -> &'static str {
        match self {
            Role::Vendedor => "Vendedor",
            Role::Asesor => "Asesor de Servicio",
            Role::Gerente => "Gerente",
            Role::Administrativo => "Administrativo",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Role::Vendedor => "V",
            Role::Asesor => "A",
            Role::Gerente => "G",
            Role::Administrativo => "AD",
        }
    }
}

/// Role of user `i`. The first ten are fixed so that even a 5-user dealer, after setting aside its
/// unreferenced rows, has salespeople and advisors for sales and services to point at.
pub(super) fn role(seed: u64, i: usize) -> Role {
    use Role::*;
    const FIXED: [Role; 10] = [
        Vendedor,
        Asesor,
        Gerente,
        Administrativo,
        Vendedor,
        Asesor,
        Vendedor,
        Asesor,
        Vendedor,
        Asesor,
    ];
    if i < FIXED.len() {
        return FIXED[i];
    }
    let mut rng = Rng::for_row(seed, Entity::Usuarios.tag(), Stream::Core, i as u64);
    *rng.weighted(&[
        (Vendedor, 50),
        (Asesor, 25),
        (Gerente, 8),
        (Administrativo, 17),
    ])
}

/// Appends the code of user `i` (`V0012`).
pub(super) fn push_user_code(out: &mut String, seed: u64, i: usize) {
    let _ = write!(out, "{}{:04}", role(seed, i).prefix(), i + 1);
}

/// Appends client number `c + 1`, zero-padded (always at least one leading zero) when `padded`.
pub(super) fn push_client_number(out: &mut String, c: usize, padded: bool) {
    let n = c + 1;
    if padded {
        let digits = n.to_string().len();
        let _ = write!(out, "{n:0width$}", width = (digits + 1).max(6));
    } else {
        let _ = write!(out, "{n}");
    }
}
