//! What differs between the six exports beyond their names: file name, header row, row count,
//! the ID range reserved for dirty rows, and how each entity's own file fills and changes a row.

use super::entity::Entity;
use super::plan::{Plan, Sizes};
use super::record::Record;
use super::{clientes, servicios, sucursales, unidades, usuarios, ventas, UnitFormat};

impl Entity {
    /// The file this entity is written to.
    pub(super) fn file_name(self, units: UnitFormat) -> &'static str {
        match (self, units) {
            (Entity::Usuarios, _) => "usuarios.csv",
            (Entity::Sucursales, _) => "sucursales.csv",
            (Entity::Clientes, _) => "clientes.csv",
            (Entity::Ventas, _) => "ventas.csv",
            (Entity::Unidades, UnitFormat::Xml) => "unidades.xml",
            (Entity::Unidades, UnitFormat::Csv) => "unidades.csv",
            (Entity::Servicios, _) => "servicios.csv",
        }
    }

    /// Base row count.
    pub(super) fn base_count(self, sizes: &Sizes) -> usize {
        match self {
            Entity::Usuarios => sizes.users,
            Entity::Sucursales => sizes.branches,
            Entity::Clientes => sizes.clients,
            Entity::Ventas => sizes.sales,
            Entity::Unidades => sizes.units,
            Entity::Servicios => sizes.services,
        }
    }

    /// Header row exactly as the contract spells it; `sloppy` gives the variant with stray spaces and
    /// case changes that dirty drops use (only usuarios has one).
    pub(super) fn headers(self, sloppy: bool) -> &'static [&'static str] {
        match self {
            Entity::Usuarios if sloppy => &usuarios::HEADERS_SLOPPY,
            Entity::Usuarios => &usuarios::HEADERS,
            Entity::Sucursales => &sucursales::HEADERS,
            Entity::Clientes => &clientes::HEADERS,
            Entity::Ventas => &ventas::HEADERS,
            Entity::Unidades => &unidades::HEADERS,
            Entity::Servicios => &servicios::HEADERS,
        }
    }

    /// First row index of the dirty rows: their IDs derive from it and sit far above any base or
    /// added row (clients are capped so this holds), so nothing references them by accident.
    pub(super) fn dirty_offset(self) -> usize {
        match self {
            Entity::Usuarios => usuarios::DIRTY_OFFSET,
            Entity::Sucursales => sucursales::DIRTY_OFFSET,
            Entity::Clientes => clientes::DIRTY_OFFSET,
            Entity::Ventas => ventas::DIRTY_OFFSET,
            Entity::Unidades => unidades::DIRTY_OFFSET,
            Entity::Servicios => servicios::DIRTY_OFFSET,
        }
    }

    /// A record of the right width.
    pub(super) fn new_record(self) -> Record {
        Record::new(self.headers(false).len())
    }

    /// Fills `rec` with row `i` (base, added or dirty-template row).
    pub(super) fn fill(self, plan: &Plan, i: usize, rec: &mut Record) {
        rec.reset();
        match self {
            Entity::Usuarios => usuarios::fill(plan, i, rec),
            Entity::Sucursales => sucursales::fill(plan, i, rec),
            Entity::Clientes => clientes::fill(plan, i, rec),
            Entity::Ventas => ventas::fill(plan, i, rec),
            Entity::Unidades => unidades::fill(plan, i, rec),
            Entity::Servicios => servicios::fill(plan, i, rec),
        }
    }

    /// Applies the next snapshot's change to row `i` (already filled): one clearly different value
    /// in a field that is neither the ID, a reference, nor create-only.
    pub(super) fn change(self, plan: &Plan, i: usize, rec: &mut Record) {
        match self {
            Entity::Usuarios => usuarios::change(plan, i, rec),
            Entity::Sucursales => sucursales::change(plan, i, rec),
            Entity::Clientes => clientes::change(plan, i, rec),
            Entity::Ventas => ventas::change(plan, i, rec),
            Entity::Unidades => unidades::change(plan, i, rec),
            Entity::Servicios => servicios::change(plan, i, rec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_offsets_clear_the_largest_drop() {
        // clients is capped at 10M; added rows may double an entity.
        let s = Sizes::for_clients(super::super::MAX_CLIENTS);
        for e in Entity::ALL {
            assert!(2 * e.base_count(&s) < e.dirty_offset(), "{e:?}");
        }
    }

    #[test]
    fn tags_are_distinct() {
        let mut tags: Vec<u8> = Entity::ALL.iter().map(|e| e.tag()).collect();
        tags.dedup();
        assert_eq!(tags.len(), 6);
    }
}
